//! obs-psn-party: PlayStation Network party voice as OBS audio sources.
//!
//! Module wiring only; each concern lives in its own folder:
//! - `obs`: the only place with `unsafe` and libobs types (entry points, sources, logging, locale)
//! - `audio`: ring buffers between the producer and OBS, the sample clock, the pump
//! - `runtime`: the one tokio runtime the module shares

pub mod audio;
pub mod obs;
pub mod runtime;
pub mod voice;
