#![no_main]
//! A member's SDP offer of any text into the plugin's own SDP handling (the audio parameters
//! it negotiates on, the bundle-transport fix-up applied before the WebRTC stack sees it): it
//! must answer or refuse, never panic. The WebRTC stack's own parser gets mutated offers in
//! `tests/voice_peer.rs` (`mutated_offers_are_refused_not_panicked`).

use libfuzzer_sys::fuzz_target;
use obs_psn_party::voice::peer::sdp::{audio_params, unify_bundle_transport};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = audio_params(&text);
    let unified = unify_bundle_transport(&text);
    let _ = audio_params(&unified);
});
