#![no_main]
//! Member SDP offers into the plugin's SDP handling (obs_psn_party::fuzz_bodies::sdp_offer).
//! The body is shared with tests/fuzz_brief.rs, which runs it briefly on stable in `cargo test`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| obs_psn_party::fuzz_bodies::sdp_offer(data));
