#![no_main]
//! The customMessage decoder (obs_psn_party::fuzz_bodies::custom_message_decode).
//! The body is shared with tests/fuzz_brief.rs, which runs it briefly on stable in `cargo test`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| obs_psn_party::fuzz_bodies::custom_message_decode(data));
