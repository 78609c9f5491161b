#![no_main]
//! Every typed JSON answer the PSN client decodes (obs_psn_party::fuzz_bodies::psn_json_answers).
//! The body is shared with tests/fuzz_brief.rs, which runs it briefly on stable in `cargo test`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| obs_psn_party::fuzz_bodies::psn_json_answers(data));
