//! The one tokio runtime the module shares.
//!
//! Created on first use and kept alive by the `RuntimeRef`s of the sources
//! (and tasks) that use it; it shuts down when the last one goes. This follows
//! `obs_shutdown`'s order (destroy queue, then module unload, then any late
//! destroys): no source can ever find the runtime gone, because holding a
//! source means holding the runtime.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// How long a shutting-down runtime waits for its tasks.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(500);

/// Scheduler rounds per pass: each round runs every task that is ready and then reads what
/// the sockets and timers have for it without waiting. A voice packet is through the WebRTC
/// stack and in its member's ring within two; the rest is room for chains of wakes.
const ROUNDS_PER_PASS: usize = 6;

static SHARED: Mutex<Weak<SharedRuntime>> = Mutex::new(Weak::new());

struct SharedRuntime {
    handle: Handle,
    stop: Arc<AtomicBool>,
    driver: Option<ThreadHandle<()>>,
}

impl Drop for SharedRuntime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(driver) = self.driver.take() else {
            return;
        };
        driver.thread().unpark();
        if std::thread::current().id() == driver.thread().id() || Handle::try_current().is_ok() {
            // Dropped from inside one of its own tasks (a thread cannot join itself), or from
            // its blocking pool (the shutdown would wait for this very task): the driver ends
            // its pass, sees the stop and shuts the runtime down itself.
            return;
        }
        let _ = driver.join();
        log::debug!("tokio runtime shut down");
    }
}

/// The one thread that runs the runtime: a pass every 10 ms, just before the playout's tick
/// ([`crate::cadence`]), asleep in between (docs/decisions/0013-network-in-passes.md).
///
/// A runtime that waits on its sockets wakes for every packet: 14 voices at 25 packets a
/// second each, plus the stack's timers, woke its thread 260-420 times a second. Packets that
/// wait in the socket's buffer until the next pass cost one wake for all of them, and the work
/// on them is the same.
fn drive(runtime: Runtime, stop: Arc<AtomicBool>) {
    let mut previous = Instant::now();
    while !stop.load(Ordering::Acquire) {
        let begins = Instant::now();
        crate::cadence::network_pass_begins(previous);
        previous = begins;
        runtime.block_on(async {
            for _ in 0..ROUNDS_PER_PASS {
                tokio::task::yield_now().await;
            }
        });
        // Behind (a long pass, a busy machine): the next pass is still the next one due,
        // never passes back to back.
        let now = Instant::now();
        std::thread::park_timeout(crate::cadence::next_network_pass(now) - now);
    }
    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
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
        // One thread: the plugin's network side is 14 x 24 kb/s of voice, some PSN calls and a
        // few timers, well inside one thread (3-4 % of a core); a second worker bought no CPU
        // and cost wake-ups (docs/decisions/0011-network-side.md). Nothing on it blocks: waits
        // that may take long go to spawn_blocking.
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let driver = std::thread::Builder::new().name("psn-rt".into()).spawn({
            let stop = stop.clone();
            move || drive(runtime, stop)
        })?;
        log::debug!("tokio runtime started");
        let fresh = Arc::new(SharedRuntime {
            handle,
            stop,
            driver: Some(driver),
        });
        *shared = Arc::downgrade(&fresh);
        Ok(RuntimeRef(fresh))
    }

    pub fn handle(&self) -> &Handle {
        &self.0.handle
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
