#![no_main]
//! PSN's error bodies, the sign-in redirect, token claims, trace redaction, .env (obs_psn_party::fuzz_bodies::psn_text_parsers).
//! The body is shared with tests/fuzz_brief.rs, which runs it briefly on stable in `cargo test`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| obs_psn_party::fuzz_bodies::psn_text_parsers(data));
