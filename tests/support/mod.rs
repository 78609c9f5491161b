//! What the integration tests (and benches/party_obs.rs) share, a file per concern:
//! - `libobs`: one libobs end-to-end run: the staged plugin, psn-sim pointed at by the
//!   environment, the test host, and the leak check every run ends with
//! - `plugin`: the built module staged the way OBS installs it
//! - `scratch`: a run's folder (kept in the suite's artefact folder when there is one)
//! - `runner`: the named checks of a `harness = false` test, `ensure`, `wait_for`
//! - `process`: figures of this process (threads, memory)
//! - `psn`: psn-sim plus a PSN client pointed at it, and the secret checks (psn_* tests)
//! - `voice`: a scripted member and network on virtual time (voice_* tests)
//! - `mutate`: mutations of valid inputs for the brief stable fuzzing
//! - `counting_alloc`: the allocator that counts allocations per thread
#![allow(dead_code, unused_imports)]

pub mod counting_alloc;
#[cfg(feature = "test-host")]
pub mod libobs;
pub mod mutate;
pub mod plugin;
pub mod process;
pub mod psn;
pub mod runner;
pub mod scratch;
pub mod voice;

#[cfg(feature = "test-host")]
pub use obs_psn_party::obs::host::ensure_display;
pub use plugin::{stage_plugin, StagedPlugin};
pub use process::{plugin_threads, rss_kib, thread_count, thread_usage};
pub use runner::{ensure, wait_for, Runner};
pub use scratch::{finish_scratch, scratch_dir, ARTEFACTS_VAR};
