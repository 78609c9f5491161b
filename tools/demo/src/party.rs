//! The demo's party, shared by the Linux demo and the Windows (wine) demo: four members, each a
//! tone that is not harmonically related to the others (psn-sim's voices carry weak harmonics),
//! talking in talkspurts of their own length.

use psn_sim::voice::{MemberSpec, VoiceSpec};

pub const MEMBERS: [(&str, f64); 4] = [
    ("Ann_Plays", 300.0),
    ("BenTheTank", 470.0),
    ("cat_speedrun", 730.0),
    ("dan-on-mic", 1030.0),
];

/// psn-sim's specs for [`MEMBERS`].
pub fn member_specs() -> Vec<MemberSpec> {
    MEMBERS
        .iter()
        .enumerate()
        .map(|(i, (name, hz))| {
            let voice = VoiceSpec {
                tone_hz: Some(*hz),
                talk_ms: Some(1200 + 300 * i as u64),
                silence_ms: Some(600 + 200 * i as u64),
                ..VoiceSpec::default()
            };
            MemberSpec::with_voice(name, "PS5", voice)
        })
        .collect()
}
