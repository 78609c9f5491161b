//! The demo's party, shared by the Linux demo and the Windows (wine) demo: four members, each a
//! tone that is not harmonically related to the others (psn-sim's voices carry weak harmonics),
//! talking in talkspurts of their own length; psn-sim with that party, and the isolation
//! analysis both demos make of each member's source.

use std::time::{Duration, Instant};

use obs_psn_party::audio::analysis::{dominant_hz, tone_dbfs};
use psn_sim::voice::{MemberSpec, VoiceSpec};
use psn_sim::SimHandle;

/// The sample rate OBS outputs.
pub const RATE: u32 = 48_000;

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

/// psn-sim on 127.0.0.1 with the party of [`MEMBERS`] named `name` started. With
/// `console_voice` the streamer's own PS5 is a voice peer too: every member offers to it first,
/// and the plugin must leave those links alone (issue 15). The simulator's runtime stays
/// entered on this thread until the process ends.
pub fn start_sim(name: &str, console_voice: bool) -> Result<SimHandle, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(runtime));
    let sim = runtime
        .block_on(psn_sim::start(psn_sim::SimConfig::default()))
        .map_err(|e| format!("psn-sim: {e}"))?;
    std::mem::forget(runtime.enter());
    if console_voice {
        sim.set_console_voice(true);
    }
    let party = sim.start_party_with(name, &member_specs());
    println!(
        "psn-sim on {} with party {}",
        sim.base_url(),
        party.session_id
    );
    Ok(sim)
}

/// Waits up to `limit` until every member's voice is connected, and says how long that took
/// after the sources were `added`.
pub fn wait_connected(sim: &SimHandle, added: Instant, limit: Duration) -> Result<(), String> {
    while sim
        .voice_status()
        .iter()
        .filter(|v| v.state == "connected")
        .count()
        < MEMBERS.len()
    {
        if added.elapsed() > limit {
            return Err(format!("members did not connect: {:?}", sim.voice_status()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "all {} members connected {:.2} s after the sources were added",
        MEMBERS.len(),
        added.elapsed().as_secs_f64()
    );
    Ok(())
}

/// In member `i`'s source (`samples`): the level of their tone and that of the loudest other
/// member's, in dB.
pub fn own_and_others(samples: &[f32], i: usize) -> (f64, f64) {
    let own = tone_dbfs(samples, RATE, MEMBERS[i].1);
    let others = MEMBERS
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, (_, other))| tone_dbfs(samples, RATE, *other))
        .fold(f64::NEG_INFINITY, f64::max);
    (own, others)
}

/// Member `i`'s source carries them alone: their tone is the dominant one, 30 dB above every
/// other member's.
pub fn carries_alone(samples: &[f32], i: usize) -> bool {
    let (own, others) = own_and_others(samples, i);
    (dominant_hz(samples, RATE, 100, 2000) - MEMBERS[i].1).abs() <= 2.0 && own - others >= 30.0
}
