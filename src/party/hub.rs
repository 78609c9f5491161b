//! `PartyHub`: the state every source shares (one connection per account,
//! however many sources exist). Created by the first source, gone with the
//! last, like the runtime: it owns the playout clock and runs the party
//! session on the runtime.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::session::{self, PartyChoice, PlayoutControl, SessionContext};
use super::status::HubStatus;
use super::voice_links::VoicePath;
use crate::audio::playout::{MemberAudio, MemberInfo, Playout, SubscriptionId, Target};
use crate::audio::ring::RingWriter;
use crate::psn::client::{ClientOptions, PsnClient};
use crate::psn::config::{is_loopback_host, PsnConfig};
use crate::runtime::RuntimeRef;

static SHARED: Mutex<Weak<PartyHub>> = Mutex::new(Weak::new());

/// How long the last source's destroy waits for the session to leave the party.
/// With the runtime's own 500 ms shutdown bound, destroy stays under 1 s.
const SESSION_STOP_TIMEOUT: Duration = Duration::from_millis(400);

/// The playout, shared by the hub (for subscriptions) and the session (for members).
struct SharedPlayout(Mutex<Playout>);

impl SharedPlayout {
    fn with<R>(&self, f: impl FnOnce(&Playout) -> R) -> R {
        let playout = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&playout)
    }
}

impl PlayoutControl for SharedPlayout {
    fn add_member(&self, info: MemberInfo, audio: Box<dyn MemberAudio>) {
        self.with(|p| p.add_member(info, audio));
    }
    fn remove_member(&self, account_id: &str) {
        self.with(|p| p.remove_member(account_id));
    }
    fn epoch(&self) -> Instant {
        self.with(|p| p.epoch())
    }
}

/// The running party session: stop it and wait for it to leave.
struct SessionTask {
    stop: watch::Sender<bool>,
    done: std::sync::mpsc::Receiver<()>,
}

pub struct PartyHub {
    playout: Arc<SharedPlayout>,
    status: Arc<Mutex<HubStatus>>,
    session: Mutex<Option<SessionTask>>,
    runtime: RuntimeRef,
    party: PartyChoice,
    voice_path: VoicePath,
}

impl PartyHub {
    /// The module's hub, started if no source holds it. `config_dir` is the
    /// plugin's config directory (token store, `.env`).
    ///
    /// One hub follows one party: the first source's `party` setting decides;
    /// a later source that asks for another party is told so in the log.
    pub fn shared(
        config_dir: Option<PathBuf>,
        party: PartyChoice,
        voice_path: VoicePath,
    ) -> std::io::Result<Arc<PartyHub>> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hub) = shared.upgrade() {
            if hub.voice_path != voice_path {
                log::warn!("this source's voice_path differs from the one in use; the first source's applies");
            }
            if hub.party != party {
                log::warn!(
                    "this source's party setting differs from the party already followed; \
                     all sources follow one party (remove the other sources to switch)"
                );
            }
            return Ok(hub);
        }
        let hub = Arc::new(PartyHub {
            playout: Arc::new(SharedPlayout(Mutex::new(Playout::start()?))),
            status: Arc::default(),
            session: Mutex::new(None),
            runtime: RuntimeRef::acquire()?,
            party,
            voice_path,
        });
        hub.start_session(config_dir);
        *shared = Arc::downgrade(&hub);
        log::debug!("party hub started");
        Ok(hub)
    }

    /// Reads the configuration and, if it is usable, starts following the party.
    fn start_session(&self, config_dir: Option<PathBuf>) {
        let client = PsnConfig::from_env(config_dir.as_deref())
            .and_then(|config| PsnClient::new(config, ClientOptions::default()));
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                log::warn!("PSN is not configured: {e}");
                self.status.lock().unwrap_or_else(|e| e.into_inner()).error = Some(e.to_string());
                return;
            }
        };
        let loopback = client
            .config()
            .endpoints
            .api
            .host()
            .is_some_and(|h| is_loopback_host(&h));
        let context = SessionContext {
            party: self.party.clone(),
            client,
            playout: self.playout.clone(),
            status: self.status.clone(),
            include_own_console: false,
            // Against the simulator everything is on loopback, and so must the
            // voice candidates be; otherwise every interface.
            udp_addrs: vec![if loopback { "127.0.0.1:0" } else { "0.0.0.0:0" }.into()],
            voice_path: self.voice_path,
        };
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            session::run(context, stop_rx).await;
            let _ = done_tx.send(());
        });
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(SessionTask { stop, done });
    }

    pub fn runtime(&self) -> &RuntimeRef {
        &self.runtime
    }

    /// A copy of what the hub knows, for display.
    pub fn status(&self) -> HubStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Feeds `writer` from `target` until the returned guard is dropped.
    pub fn subscribe(self: &Arc<Self>, target: Target, writer: RingWriter) -> Subscription {
        let id = self.playout.with(|p| p.subscribe(target, writer));
        Subscription {
            hub: self.clone(),
            id,
        }
    }

    pub fn add_member(&self, info: MemberInfo, audio: Box<dyn MemberAudio>) {
        self.playout.add_member(info, audio);
    }

    pub fn remove_member(&self, account_id: &str) {
        self.playout.remove_member(account_id);
    }
}

impl Drop for PartyHub {
    fn drop(&mut self) {
        let session = self
            .session
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(session) = session {
            let _ = session.stop.send(true);
            if session.done.recv_timeout(SESSION_STOP_TIMEOUT).is_err() {
                log::warn!("the party session did not stop in time");
            }
        }
        self.playout
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop();
        log::debug!("party hub stopped");
    }
}

/// A source's place in the playout; dropping it stops the feed.
pub struct Subscription {
    hub: Arc<PartyHub>,
    id: SubscriptionId,
}

impl Subscription {
    /// Points the feed at another member (or the mix) without a new ring.
    pub fn retarget(&self, target: Target) {
        self.hub.playout.with(|p| p.retarget(self.id, target));
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.playout.with(|p| p.unsubscribe(self.id));
    }
}
