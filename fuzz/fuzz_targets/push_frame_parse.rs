#![no_main]
//! The push frame parser on any text: it must return, never panic.

use libfuzzer_sys::fuzz_target;
use obs_psn_party::psn::push::parse_frame;

fuzz_target!(|data: &[u8]| {
    let _ = parse_frame(&String::from_utf8_lossy(data));
});
