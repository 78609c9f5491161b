#![no_main]
//! The push frame parser (obs_psn_party::fuzz_bodies::push_frame_parse).
//! The body is shared with tests/fuzz_brief.rs, which runs it briefly on stable in `cargo test`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| obs_psn_party::fuzz_bodies::push_frame_parse(data));
