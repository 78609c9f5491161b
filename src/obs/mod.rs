//! Everything that touches libobs, and the only place with `unsafe`.

pub mod cause_text;
mod guard;
// The libobs test host drives a real libobs (Linux's); Windows is tested under wine through
// tests/windows/ instead.
#[cfg(all(unix, feature = "test-host"))]
pub mod host;
mod log;
pub mod module;
mod party_owner;
mod properties;
mod settings;
pub mod source;
pub mod sys;
mod thread_priority;
mod typed_secrets;
mod websocket_vendor;
