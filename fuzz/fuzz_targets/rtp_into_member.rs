#![no_main]
//! RTP and Opus into one member's receive path (obs_psn_party::fuzz_bodies::rtp_into_member).
//! The body is shared with tests/fuzz_brief.rs, which runs it briefly on stable in `cargo test`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| obs_psn_party::fuzz_bodies::rtp_into_member(data));
