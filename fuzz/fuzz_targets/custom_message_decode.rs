#![no_main]
//! The customMessage decoder on any bytes and any payload string: it must return, never panic,
//! and whatever it accepts must encode back to the same bytes.

use libfuzzer_sys::fuzz_target;
use obs_psn_party::psn::custom_message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = custom_message::decode(data) {
        // Accepted input re-encodes to a message that decodes the same.
        let again = custom_message::encode(&m);
        assert_eq!(custom_message::decode(&again).as_ref(), Ok(&m));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = custom_message::decode_payload(s);
    }
});
