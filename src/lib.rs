//! obs-psn-party: PlayStation Network party voice as OBS audio sources.
//!
//! Module wiring only; each concern lives in its own folder:
//! - `obs`: the only place with `unsafe` and libobs types (entry points, sources, logging, locale)
//! - `audio`: ring buffers between the producer and OBS, the sample clock, the pump
//! - `psn`: the PSN web client (sign-in, parties, push, customMessage, rtcBridge); no OBS types
//! - `party`: the hub every source shares: the party session, the playout, the status
//! - `overlay`: the speaking overlay page for a Browser Source (served on 127.0.0.1)
//! - `voice`: WebRTC peers, the jitter buffer, Opus decode
//! - `runtime`: the one tokio runtime the module shares
//! - `net_test`: the "Test network" button (NAT type 1/2/3 from two STUN servers)
//! - `platform`: the little that differs between operating systems (docs/porting.md)
//! - `fuzz_bodies`: what each fuzz target checks (fuzz/ and tests/fuzz_brief.rs share it)
//!
//! Test-only code (the libobs test host `obs::host`, `audio::analysis`, `fuzz_bodies`) is
//! compiled only with the `test-host` feature, which the release build does not enable.
//! `unsafe` is denied everywhere but in `obs`, the one module that talks to libobs.

#![deny(unsafe_code)]

pub mod audio;
pub mod cadence;
#[cfg(feature = "test-host")]
#[doc(hidden)]
pub mod fuzz_bodies;
pub mod net_test;
#[allow(unsafe_code)]
pub mod obs;
pub mod overlay;
pub mod party;
pub mod platform;
pub mod psn;
pub mod runtime;
pub mod voice;
