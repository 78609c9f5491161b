//! The audio threads (delivery, playout): how they start, and how commands
//! reach them from the threads that own them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::OnceLock;
use std::thread::JoinHandle;

/// Run on each audio thread when it starts (the OBS side raises its
/// priority where the platform lets an unprivileged process do so).
static THREAD_SETUP: OnceLock<fn()> = OnceLock::new();

/// Sets what the audio threads run first when they start (once per process).
pub fn set_thread_setup(setup: fn()) {
    let _ = THREAD_SETUP.set(setup);
}

/// Starts the audio thread `name`: the setup `set_thread_setup` gave, then
/// `body`. A panic in `body` ends the thread with `what` in the log rather
/// than unwinding into the OBS process.
pub fn spawn(
    name: &str,
    what: &'static str,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Some(setup) = THREAD_SETUP.get() {
                setup();
            }
            if catch_unwind(AssertUnwindSafe(body)).is_err() {
                log::error!("{what} stopped after an internal error");
            }
        })
}

/// Queues `command` for an audio thread. A full queue (256 commands) means
/// the thread is stuck in a call for now: wait rather than lose the command
/// (membership and source changes are not on the audio path). A thread that
/// is gone takes no more commands.
pub fn send<T>(commands: &SyncSender<T>, command: T) {
    match commands.try_send(command) {
        Ok(()) => {}
        Err(TrySendError::Full(command)) => {
            let _ = commands.send(command);
        }
        Err(TrySendError::Disconnected(_)) => {}
    }
}
