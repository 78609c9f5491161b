//! Keeps panics from crossing into OBS.
//!
//! Every `extern "C"` callback runs its body through `guarded`: a panic is
//! caught, logged once with what was running, and the callback returns a
//! harmless fallback. Unwinding into C is undefined behaviour and would take
//! the streamer's OBS down with it.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`; if it panics, logs `what` and returns `fallback`.
pub fn guarded<R>(what: &'static str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let reason = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            // Panic messages are our own text, never a secret (see docs/security.md).
            log::error!("internal error in {what}: {reason}");
            fallback
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_fallback() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let value = guarded("test", 7, || -> i32 { panic!("boom") });
        std::panic::set_hook(prev);
        assert_eq!(value, 7);
        assert_eq!(guarded("test", 7, || 3), 3);
    }
}
