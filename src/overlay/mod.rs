//! The speaking overlay for a Browser Source: a page the plugin serves on 127.0.0.1, showing the
//! party's members with their avatars and names, lit while they talk (README "Show who is
//! talking"). The page is plain HTML/CSS/JS inside the binary; it follows the party over
//! Server-Sent Events and reconnects by itself.

pub mod config;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;

use config::OverlayConfig;

use crate::party::presence::Presence;

/// The running overlay server. Dropping it stops serving.
pub struct OverlayServer {
    config: OverlayConfig,
    task: tokio::task::JoinHandle<()>,
    stop: Arc<tokio::sync::Notify>,
    /// Says when the listener is closed, so a server started right after this one is dropped
    /// (a source removed and added again) gets the same port, and the pasted URL keeps working.
    closed: std::sync::mpsc::Receiver<()>,
}

/// How long dropping the server waits for its listener to close (a local step on the runtime).
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

impl OverlayServer {
    /// Serves on `port` (0: the port used last time, else any free one), with the token kept
    /// in `config_dir`. Binding is a local call; nothing here waits on the network.
    pub fn start(
        config_dir: Option<PathBuf>,
        port: u16,
        presence: &Presence,
        runtime: &tokio::runtime::Handle,
    ) -> std::io::Result<OverlayServer> {
        let mut config = OverlayConfig::load(config_dir.as_deref());
        let wanted = if port != 0 { port } else { config.port };
        let (listener, bound) = match server::bind(wanted) {
            Ok(bound) => bound,
            Err(e) if wanted != 0 => {
                // Usually our own server of a moment ago, still closing on the destroy queue
                // (a source removed and added again at once); the address then changes and the
                // properties show the new one. Info, not a warning: nothing is wrong with OBS.
                log::info!("overlay: port {wanted} is not free ({e}); serving on another");
                server::bind(0)?
            }
            Err(e) => return Err(e),
        };
        if bound != config.port {
            config.port = bound;
            config.save(config_dir.as_deref());
        }
        let state = Arc::new(server::ServerState {
            token: config.token.clone(),
            port: bound,
            snapshots: presence.snapshots(),
            avatars: presence.avatars(),
        });
        let stop = Arc::new(tokio::sync::Notify::new());
        let (closed_tx, closed) = std::sync::mpsc::channel();
        let task = runtime.spawn({
            let stop = stop.clone();
            async move {
                server::serve(listener, state, stop).await;
                let _ = closed_tx.send(());
            }
        });
        log::info!("overlay page served on 127.0.0.1:{bound}");
        Ok(OverlayServer {
            config,
            task,
            stop,
            closed,
        })
    }

    pub fn port(&self) -> u16 {
        self.config.port
    }

    /// The page's address, token included (for the properties; never logged).
    pub fn url(&self) -> String {
        self.config.url()
    }
}

impl Drop for OverlayServer {
    fn drop(&mut self) {
        // notify_one keeps the wake-up if the server is not waiting yet. Bounded: if the
        // runtime is gone or busy, the abort below closes the listener when it can.
        self.stop.notify_one();
        let _ = self.closed.recv_timeout(CLOSE_WAIT);
        self.task.abort();
    }
}
