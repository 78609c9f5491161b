//! The plugin offers first (PROTOCOL.md section 7) and reaches members another way when
//! peer-to-peer fails: real libobs against psn-sim, members that never offer.
//!
//! `cargo test --features test-producer --test libobs_offer` (re-runs itself under xvfb-run
//! when there is no X display; a name filter runs one check).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use obs_psn_party::audio::analysis::tone_dbfs;
use obs_psn_party::obs::host::Captured;
use psn_sim::bridge_voice::BridgeAudio;
use psn_sim::voice::{MemberSpec, VoiceSpec};
use support::ensure;
use support::libobs::{
    captured_member, member_sources, tone_member, tone_separation, wait_all_connected,
    CapturedSource, EndParty, LibobsRun, RATE,
};

fn main() {
    let (run, sim, host, mut runner) = LibobsRun::start_with_sim("offer");

    runner.run(
        "members_that_never_offer_get_our_offer_and_each_is_in_their_own_source",
        || {
            let names = ["quiet_a", "quiet_b", "quiet_c"];
            let tones = [300.0, 470.0, 730.0];
            // Two members at the recorded 16 kHz Opus clock, one at 48 kHz: the answer decides.
            let clocks = [16_000, 16_000, 48_000];
            let specs: Vec<MemberSpec> = names
                .iter()
                .zip(tones.iter().zip(clocks))
                .map(|(name, (&hz, clock))| {
                    let voice = VoiceSpec {
                        tone_hz: Some(hz),
                        offers: false,
                        clock_rate: clock,
                        ..VoiceSpec::default()
                    };
                    MemberSpec::with_voice(name, "PS5", voice)
                })
                .collect();
            let leaves = sim.count("leave");
            let party = sim.start_party_with("Quiet night", &specs);
            let _end = EndParty(&sim, party.session_id.clone());
            let members = member_sources(&host, &names, "")?;
            wait_all_connected(&sim, names.len(), Duration::from_secs(20))?;
            for v in sim.voice_status() {
                println!(
                    "    {}: offers received {}, answers sent {}, offers sent {}, packets sent {}",
                    v.online_id, v.offers_received, v.answers_sent, v.offers_sent, v.packets_sent
                );
                ensure(
                    v.offers_sent == 0 && v.offers_received >= 1 && v.answers_sent >= 1,
                    || format!("{} did not connect by our offer: {v:?}", v.online_id),
                )?;
            }
            std::thread::sleep(Duration::from_millis(700));
            let sent: Vec<u64> = sim.voice_status().iter().map(|v| v.packets_sent).collect();
            println!("    packets sent so far: {sent:?}");
            println!(
                "    status: {:?}",
                members[0].0.property_description("status")
            );
            for (_, audio) in &members {
                audio.lock().unwrap().clear();
            }
            std::thread::sleep(Duration::from_secs(3));
            let labels: Vec<String> = names
                .iter()
                .zip(clocks)
                .map(|(name, clock)| format!("{name} ({clock} Hz clock)"))
                .collect();
            separation_check(&members, &labels, &tones)?;
            ensure(sim.rejections().is_empty(), || {
                format!("sim rejections: {:?}", sim.rejections())
            })?;
            hub_gone(&sim, leaves, members)
        },
    );

    runner.run(
        "voice_path_bridge_brings_each_named_member_into_their_own_source",
        || {
            sim.set_bridge_audio(BridgeAudio::PerMember);
            let names = ["br_a", "br_b"];
            let tones = [300.0, 730.0];
            let specs: Vec<MemberSpec> = names
                .iter()
                .zip(tones)
                .map(|(name, hz)| tone_member(name, hz))
                .collect();
            let leaves = sim.count("leave");
            let party = sim.start_party_with("Bridge night", &specs);
            let _end = EndParty(&sim, party.session_id.clone());
            let mut mix =
                host.create_source("psn_party", "bridge-mix", r#"{"voice_path": "bridge"}"#)?;
            let mix_audio = mix.start_capture();
            let members = member_sources(&host, &names, r#", "voice_path": "bridge""#)?;
            let connected = support::wait_for(Duration::from_secs(15), || {
                sim.bridge_status().iter().any(|b| b.state == "connected")
            });
            println!(
                "    bridge connected after {connected:?}: {:?}",
                sim.bridge_status()
            );
            ensure(connected.is_some(), || {
                format!(
                    "bridge: {:?}, counts {:?}",
                    sim.bridge_status(),
                    sim.counts()
                )
            })?;
            for endpoint in ["createBridge", "linkBridge", "addPeer", "answer"] {
                ensure(sim.count(endpoint) == 1, || {
                    format!("{endpoint}: {:?}", sim.counts())
                })?;
            }
            std::thread::sleep(Duration::from_millis(1200));
            ensure(
                sim.voice_status().iter().all(|v| v.answers_received == 0),
                || {
                    format!(
                        "peer-to-peer was answered on voice_path=bridge: {:?}",
                        sim.voice_status()
                    )
                },
            )?;
            for (_, audio) in &members {
                audio.lock().unwrap().clear();
            }
            mix_audio.lock().unwrap().clear();
            std::thread::sleep(Duration::from_secs(2));
            separation_check(&members, &names, &tones)?;
            let levels: Vec<f64> = tones
                .iter()
                .map(|&hz| tone_dbfs(&mix_audio.lock().unwrap().samples, RATE, hz))
                .collect();
            println!("    mix: {levels:.1?} dB");
            ensure(levels.iter().all(|&l| l > -30.0), || {
                format!("mix lacks a member: {levels:?}")
            })?;
            hub_gone(&sim, leaves, (members, mix))?;
            // Leaving the party deletes our bridge peer and the bridge (after the leave call:
            // wait for it, a loaded machine takes its time).
            let deleted = support::wait_for(Duration::from_secs(5), || {
                sim.count("deleteBridge") == 1
                    && sim.bridge_status().iter().all(|b| b.state == "closed")
            });
            ensure(deleted.is_some(), || {
                format!(
                    "bridge not deleted: {:?} {:?}",
                    sim.counts(),
                    sim.bridge_status()
                )
            })?;
            ensure(sim.rejections().is_empty(), || {
                format!("sim rejections: {:?}", sim.rejections())
            })
        },
    );

    runner.run("an_unnamed_bridge_stream_is_the_party_bridge_member_and_in_the_mix", || {
        sim.set_bridge_audio(BridgeAudio::Mix);
        let tones = [470.0, 1030.0];
        let specs: Vec<MemberSpec> = ["mx_a", "mx_b"]
            .iter()
            .zip(tones)
            .map(|(name, hz)| tone_member(name, hz))
            .collect();
        let leaves = sim.count("leave");
        let old_bridges: Vec<String> = sim.bridge_status().into_iter().map(|b| b.peer_id).collect();
        let party = sim.start_party_with("Mixed bridge", &specs);
        let _end = EndParty(&sim, party.session_id.clone());
        let mut mix = host.create_source("psn_party", "bridge-mix2", r#"{"voice_path": "bridge"}"#)?;
        let mix_audio = mix.start_capture();
        let (bridge_src, bridge_audio) = captured_member(&host, "bridge", r#"{"member": "bridge", "voice_path": "bridge"}"#)?;
        let (named, named_audio) = captured_member(&host, "mx_a", r#"{"member": "mx_a", "voice_path": "bridge"}"#)?;
        let connected = support::wait_for(Duration::from_secs(15), || {
            sim.bridge_status().iter().any(|b| b.state == "connected" && b.streams == ["-"] && !old_bridges.contains(&b.peer_id))
        });
        ensure(connected.is_some(), || format!("bridge: {:?}", sim.bridge_status()))?;
        std::thread::sleep(Duration::from_millis(1200));
        for a in [&mix_audio, &bridge_audio, &named_audio] {
            a.lock().unwrap().clear();
        }
        std::thread::sleep(Duration::from_secs(2));
        let level = |a: &Arc<Mutex<Captured>>, hz: f64| tone_dbfs(&a.lock().unwrap().samples, RATE, hz);
        let in_bridge: Vec<f64> = tones.iter().map(|&hz| level(&bridge_audio, hz)).collect();
        let in_mix: Vec<f64> = tones.iter().map(|&hz| level(&mix_audio, hz)).collect();
        let in_named = level(&named_audio, tones[0]);
        println!("    \"bridge\" source {in_bridge:.1?} dB, mix {in_mix:.1?} dB, mx_a's own source {in_named:.1} dB");
        ensure(in_bridge.iter().all(|&l| l > -30.0), || format!("bridge source: {in_bridge:?}"))?;
        ensure(in_mix.iter().all(|&l| l > -30.0), || format!("mix: {in_mix:?}"))?;
        ensure(in_named < -60.0, || format!("an unnamed stream reached a member's source: {in_named:.1} dB"))?;
        // "Capture only members I allow": the unnamed stream is silent until its own row is ticked.
        mix.update(r#"{"only_allowed_members": true}"#)?;
        let names = mix.all_property_names();
        let ticked = mix.bool_setting("allow_party-bridge");
        std::thread::sleep(Duration::from_millis(300));
        for a in [&mix_audio, &bridge_audio] {
            a.lock().unwrap().clear();
        }
        std::thread::sleep(Duration::from_secs(2));
        let (off_bridge, off_mix) = (level(&bridge_audio, tones[0]), level(&mix_audio, tones[0]));
        mix.update(r#"{"allow_party-bridge": true}"#)?;
        std::thread::sleep(Duration::from_millis(300));
        bridge_audio.lock().unwrap().clear();
        std::thread::sleep(Duration::from_secs(1));
        let allowed = level(&bridge_audio, tones[0]);
        let row = mix.property_description("allow_party-bridge").unwrap_or_default();
        println!("    only allowed: \"bridge\" source {off_bridge:.1} dB, mix {off_mix:.1} dB, row {row:?} (ticked: {ticked}); ticked: {allowed:.1} dB");
        mix.update(r#"{"only_allowed_members": false}"#)?;
        ensure(names.iter().any(|n| n == "members/allow_party-bridge") && !ticked, || format!("no unticked row for the bridge stream: {names:?}"))?;
        ensure(off_bridge < -60.0 && off_mix < -60.0, || format!("not allowed, yet heard: bridge {off_bridge:.1} dB, mix {off_mix:.1} dB"))?;
        ensure(allowed > -30.0, || format!("allowed by its row, yet silent: {allowed:.1} dB"))?;
        sim.set_bridge_audio(BridgeAudio::PerMember);
        hub_gone(&sim, leaves, (mix, bridge_src, named))
    });

    runner.run(
        "auto_falls_back_to_the_bridge_for_a_member_p2p_fails_with",
        || {
            sim.set_bridge_audio(BridgeAudio::PerMember);
            let tones = [300.0, 730.0];
            let specs = [
                tone_member("ok_ps", tones[0]),
                MemberSpec::with_voice(
                    "nat_ps",
                    "PS5",
                    VoiceSpec {
                        tone_hz: Some(tones[1]),
                        p2p: false,
                        ..VoiceSpec::default()
                    },
                ),
            ];
            let leaves = sim.count("leave");
            let old_bridges: Vec<String> =
                sim.bridge_status().into_iter().map(|b| b.peer_id).collect();
            let party = sim.start_party_with("Strict NAT", &specs);
            let _end = EndParty(&sim, party.session_id.clone());
            let names = ["ok_ps", "nat_ps"];
            let members = member_sources(&host, &names, "")?;
            let bridged = support::wait_for(Duration::from_secs(20), || {
                sim.bridge_status()
                    .iter()
                    .any(|b| b.state == "connected" && !old_bridges.contains(&b.peer_id))
            });
            println!(
                "    bridge connected after {bridged:?}; voice {:?}",
                sim.voice_status()
                    .iter()
                    .map(|v| (&v.online_id, &v.state))
                    .collect::<Vec<_>>()
            );
            ensure(bridged.is_some(), || {
                format!("no bridge: {:?} {:?}", sim.bridge_status(), sim.counts())
            })?;
            let ok_connected = sim
                .voice_status()
                .iter()
                .any(|v| v.online_id == "ok_ps" && v.state == "connected");
            ensure(ok_connected, || "ok_ps should stay peer-to-peer".into())?;
            std::thread::sleep(Duration::from_millis(1200));
            for (_, audio) in &members {
                audio.lock().unwrap().clear();
            }
            std::thread::sleep(Duration::from_secs(2));
            separation_check(&members, &names, &tones)?;
            hub_gone(&sim, leaves, members)
        },
    );

    run.finish(host, runner);
}

/// Drops a check's sources and waits until the hub has left the party, so that the next
/// check's sources start a new hub (with their own `voice_path`).
fn hub_gone<T>(sim: &psn_sim::SimHandle, leaves_before: u64, sources: T) -> Result<(), String> {
    drop(sources);
    let left = support::wait_for(Duration::from_secs(5), || {
        sim.count("leave") > leaves_before
    });
    ensure(left.is_some(), || "the hub did not leave the party".into())
}

/// Each member source carries its own tone at least 30 dB above the others'.
fn separation_check(
    members: &[CapturedSource],
    names: &[impl std::fmt::Display],
    tones: &[f64],
) -> Result<(), String> {
    for (i, (_, audio)) in members.iter().enumerate() {
        let audio = audio.lock().unwrap();
        let (own, others) = tone_separation(&audio.samples, tones, i);
        println!(
            "    {}: own tone {own:.1} dB, loudest other {others:.1} dB, separation {:.1} dB",
            names[i],
            own - others
        );
        ensure(own > -30.0 && own - others >= 30.0, || {
            format!("{}: own {own:.1} dB, others {others:.1} dB", names[i])
        })?;
    }
    Ok(())
}
