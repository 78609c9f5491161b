//! Secret values (NPSSO, access and refresh tokens, client secret, bridge token).
//!
//! A [`Secret`] prints as `[redacted]` through `Debug` and `Display`, has no `Serialize`, and can
//! only be read through [`Secret::expose`], so a secret reaching a log line, a trace or a panic
//! message takes a deliberate call that a reviewer can find with grep. Its bytes are zeroed when
//! it is dropped (the `zeroize` crate), so a freed secret does not linger in the heap for a core
//! dump or a later allocation to show.

use std::fmt;

use serde::Deserialize;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// What every secret prints as.
pub const REDACTED: &str = "[redacted]";

/// A string that must never be logged, traced or shown.
/// Deserialize reads it straight from PSN's JSON answers, so the raw string never sits in a
/// `Debug` type of its own.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Zeros the bytes (the whole buffer) and empties the string.
    fn wipe(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl ZeroizeOnDrop for Secret {}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's value, for the one place that puts it on the wire or in the token store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{s}"), REDACTED);
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret,
        }
        let h = Holder { token: s.clone() };
        assert!(!format!("{h:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn zeroed_on_drop() {
        // Compile-time: Secret promises to zero itself when dropped.
        fn zeroes_on_drop<T: ZeroizeOnDrop>() {}
        zeroes_on_drop::<Secret>();
        // And what Drop runs clears it (zeroize writes zeros over the whole buffer first).
        let mut s = Secret::new("hunter2-token");
        s.wipe();
        assert!(s.is_empty());
    }
}
