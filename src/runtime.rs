//! The one tokio runtime the module shares.
//!
//! Created on first use and kept alive by the `RuntimeRef`s of the sources
//! (and tasks) that use it; it shuts down when the last one goes. This follows
//! `obs_shutdown`'s order (destroy queue, then module unload, then any late
//! destroys): no source can ever find the runtime gone, because holding a
//! source means holding the runtime.

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// How long a shutting-down runtime waits for its tasks.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(500);

static SHARED: Mutex<Weak<SharedRuntime>> = Mutex::new(Weak::new());

struct SharedRuntime {
    runtime: Option<Runtime>,
}

impl Drop for SharedRuntime {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        if Handle::try_current().is_ok() {
            // Dropped from inside one of its own tasks: a runtime cannot shut
            // itself down from there, so do it from a thread of its own.
            let _ = std::thread::Builder::new()
                .name("psn-rt-exit".into())
                .spawn(move || runtime.shutdown_timeout(SHUTDOWN_TIMEOUT));
        } else {
            runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
        }
        log::debug!("tokio runtime shut down");
    }
}

/// A counted reference to the module's runtime.
#[derive(Clone)]
pub struct RuntimeRef(Arc<SharedRuntime>);

impl RuntimeRef {
    /// Returns the running runtime, starting it if nobody holds it.
    pub fn acquire() -> std::io::Result<RuntimeRef> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = shared.upgrade() {
            return Ok(RuntimeRef(existing));
        }
        // One worker: the plugin's network side is 14 x 24 kb/s of voice, some PSN calls and a
        // few timers, well inside one thread (3-4 % of a core). The second worker bought no
        // CPU and cost wake-ups: 449 -> 281 voluntary switches/s and 105 -> 9 involuntary ones
        // with 14 voices (docs/decisions/0011-network-side.md). Nothing on it blocks: waits that
        // may take long go to spawn_blocking.
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("psn-rt")
            .enable_all()
            .build()?;
        log::debug!("tokio runtime started");
        let fresh = Arc::new(SharedRuntime {
            runtime: Some(runtime),
        });
        *shared = Arc::downgrade(&fresh);
        Ok(RuntimeRef(fresh))
    }

    pub fn handle(&self) -> &Handle {
        self.0
            .runtime
            .as_ref()
            .expect("runtime present until drop")
            .handle()
    }

    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(future)
    }

    /// True if `self` and `other` are the same runtime.
    pub fn same_as(&self, other: &RuntimeRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// True while some part of the module holds the runtime.
pub fn is_running() -> bool {
    SHARED
        .lock()
        .map(|shared| shared.strong_count() > 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test, because the runtime is process-wide state.
    #[test]
    fn shared_while_held_and_gone_when_released() {
        let a = RuntimeRef::acquire().unwrap();
        let b = RuntimeRef::acquire().unwrap();
        assert!(a.same_as(&b));
        let answer = std::sync::mpsc::channel();
        let tx = answer.0;
        a.spawn(async move { tx.send(42).unwrap() });
        assert_eq!(answer.1.recv_timeout(Duration::from_secs(5)), Ok(42));
        drop(a);
        assert!(is_running());

        // The last holder dropped from inside a task does not panic.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let handle = b.handle().clone();
        handle.spawn(async move {
            drop(b);
            done_tx.send(()).unwrap();
        });
        done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(!is_running());
        let c = RuntimeRef::acquire().unwrap();
        assert!(is_running());
        drop(c);
    }
}
