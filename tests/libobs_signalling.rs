//! Signalling that is safe in a real party (issue 15), with the plugin in real libobs against
//! psn-sim: the streamer's own PS5 is a voice peer every member offers to first, and the plugin
//! never answers those offers (the console's links stay undisturbed) while every member is
//! still heard in their own source; an impostor member and an account outside the party get no
//! link and no audio anywhere; a membership left behind by a crash is replaced on rejoining; a
//! member on the PlayStation App is heard and shown "(PS App)".
//!
//! `cargo test --features test-producer --test libobs_signalling` (re-runs itself under
//! xvfb-run when there is no X display).

mod support;

use std::time::Duration;

use obs_psn_party::audio::analysis::tone_dbfs;
use obs_psn_party::obs::host::Captured;
use support::libobs::{member_sources, tone_separation, CapturedSource, EndParty, LibobsRun, RATE};

type Audio = std::sync::Arc<std::sync::Mutex<Captured>>;
use psn_sim::voice::{MemberSpec, VoiceSpec};
use support::ensure;

/// A tone this far down is not there (the members' tones sit around -15 dBFS).
const ABSENT_DB: f64 = -60.0;

fn main() {
    let (run, sim, host, mut runner) = LibobsRun::start_with_sim("signalling");
    // Every member negotiates voice with the streamer's own PS5 too, offering to it first.
    sim.set_console_voice(true);

    runner.run(
        "members_offer_to_the_console_first_the_plugin_leaves_those_alone",
        || {
            let names = ["ann_ps", "ben_ps", "cat_ps4"];
            let tones = [300.0, 470.0, 730.0];
            let specs = vec![
                voice(names[0], "PS5", tones[0], true),
                voice(names[1], "PS5", tones[1], false),
                voice(names[2], "PS4", tones[2], true),
            ];
            let party = sim.start_party_with("Console night", &specs);
            let _end = EndParty(&sim, party.session_id.clone());
            let sources = member_sources(&host, &names, "")?;
            let consoles = support::wait_for(Duration::from_secs(20), || {
                let c = sim.console_status();
                c.links
                    .iter()
                    .filter(|l| l.state == "connected" && l.packets_received > 0)
                    .count()
                    == names.len()
            });
            println!(
                "    the console's links: {:?} after {consoles:?}",
                sim.console_status().links
            );
            ensure(consoles.is_some(), || {
                format!("console: {:?}", sim.console_status())
            })?;
            let heard = hear_each_own(&sources, &names, &tones)?;
            println!("    each member in their own source: {heard}");
            let c = sim.console_status();
            ensure(c.disturbances.is_empty(), || {
                format!("the console's links were disturbed: {:?}", c.disturbances)
            })?;
            ensure(
                c.links
                    .iter()
                    .all(|l| l.state == "connected" && l.answers_sent == 1),
                || format!("console links renegotiated or lost: {:?}", c.links),
            )?;
            let violations = sim.signal_violations();
            ensure(violations.is_empty(), || {
                format!("signalling rules broken: {violations:?}")
            })?;
            // Our answers went only to offers made to us: one per member that offered to us.
            let answers = sim
                .received_messages()
                .iter()
                .filter(|m| m.session_id == party.session_id)
                .filter_map(|m| psn_sim::cmsg::decode(&m.payload).ok())
                .filter(|s| s.kind == "answer")
                .count();
            ensure(answers == 2, || {
                format!("{answers} answers sent (2 members offered to us)")
            })?;
            Ok(())
        },
    );

    runner.run("an_impostor_and_an_outsider_get_no_link_and_no_audio", || {
        let ann = voice("ann_real", "PS5", 300.0, true);
        // Mallory is in the party and poses as Ann; Oscar is not in the party at all.
        let mallory = MemberSpec::with_voice(
            "mallory",
            "PS5",
            VoiceSpec { tone_hz: Some(1030.0), pose_as: Some("ann_real".into()), ..VoiceSpec::default() },
        );
        let oscar = MemberSpec::with_voice(
            "oscar_out",
            "PS5",
            VoiceSpec { tone_hz: Some(610.0), outsider: true, ..VoiceSpec::default() },
        );
        let party = sim.start_party_with("Impostors", &[ann, mallory, oscar]);
        let _end = EndParty(&sim, party.session_id.clone());
        let mut mix = host.create_source("psn_party", "mix", "{}")?;
        mix.set_output_channel(1);
        let mix_audio = mix.start_capture();
        let sources = member_sources(&host, &["ann_real", "mallory"], "")?;
        // Ann connects; Mallory's and Oscar's offers and answers are dropped. Long enough for
        // the plugin's own offers to Mallory (after 3 s) and their answers to come and go.
        let ann_heard = support::wait_for(Duration::from_secs(15), || {
            tone_dbfs(&sources[0].1.lock().unwrap().samples, RATE, 300.0) > -30.0
        });
        ensure(ann_heard.is_some(), || "Ann is not heard".into())?;
        std::thread::sleep(Duration::from_secs(6));
        for (_, audio) in &sources {
            audio.lock().unwrap().clear();
        }
        mix_audio.lock().unwrap().clear();
        std::thread::sleep(Duration::from_secs(3));
        let level = |audio: &Audio, hz: f64| tone_dbfs(&audio.lock().unwrap().samples, RATE, hz);
        let (ann_own, ann_fake, ann_out) =
            (level(&sources[0].1, 300.0), level(&sources[0].1, 1030.0), level(&sources[0].1, 610.0));
        let (mal_own, mix_fake, mix_out) =
            (level(&sources[1].1, 1030.0), level(&mix_audio, 1030.0), level(&mix_audio, 610.0));
        println!(
            "    Ann's source: Ann {ann_own:.1} dB, Mallory {ann_fake:.1} dB, Oscar {ann_out:.1} dB; \
             Mallory's source {mal_own:.1} dB; mix: Mallory {mix_fake:.1} dB, Oscar {mix_out:.1} dB"
        );
        ensure(ann_own > -30.0, || format!("Ann's own voice at {ann_own:.1} dB"))?;
        ensure(
            [ann_fake, ann_out, mal_own, mix_fake, mix_out].iter().all(|&l| l < ABSENT_DB),
            || "an impostor's or outsider's voice got through".into(),
        )?;
        drop(mix);
        Ok(())
    });

    runner.run(
        "a_membership_left_by_a_crash_is_replaced_on_rejoining",
        || {
            let party =
                sim.start_party_with("After a crash", &[voice("dee_ps", "PS5", 300.0, true)]);
            let _end = EndParty(&sim, party.session_id.clone());
            // A first run joins and goes (so this device is known to PSN) ...
            let first = member_sources(&host, &["dee_ps"], "")?;
            // Heard: the join is done (a source dropped while the join is under way goes
            // without leaving, which leaves a stale membership too).
            let joined = support::wait_for(Duration::from_secs(15), || {
                tone_dbfs(&first[0].1.lock().unwrap().samples, RATE, 300.0) > -30.0
            });
            ensure(joined.is_some(), || "the first run never heard Dee".into())?;
            let leaves = sim.count("leave");
            drop(first);
            let left = support::wait_for(Duration::from_secs(3), || sim.count("leave") > leaves);
            ensure(left.is_some(), || "never left".into())?;
            // ... and then dies in the party: PSN still has its membership.
            ensure(sim.place_stale_membership(&party.session_id), || {
                "no device seen".into()
            })?;
            let leaves = sim.count("leave");
            let sources = member_sources(&host, &["dee_ps"], "")?;
            let heard = support::wait_for(Duration::from_secs(15), || {
                tone_dbfs(&sources[0].1.lock().unwrap().samples, RATE, 300.0) > -30.0
            });
            let memberships = sim.user_app_memberships(&party.session_id);
            println!(
                "    heard after {heard:?}; {} leave(s); our memberships now {}",
                sim.count("leave") - leaves,
                memberships.len()
            );
            ensure(heard.is_some(), || {
                format!("not heard; rejections {:?}", sim.rejections())
            })?;
            ensure(sim.count("leave") == leaves + 1, || {
                "the stale membership was not left".into()
            })?;
            ensure(memberships.len() == 1, || {
                format!("memberships: {memberships:?}")
            })?;
            Ok(())
        },
    );

    runner.run(
        "a_member_on_the_playstation_app_is_heard_and_shown_ps_app",
        || {
            let specs = vec![
                voice("phil_phone", "MOBILE_APP", 470.0, true),
                voice("pia_quiet", "MOBILE_APP", 730.0, false),
            ];
            let party = sim.start_party_with("Phones", &specs);
            let _end = EndParty(&sim, party.session_id.clone());
            let mix = host.create_source("psn_party", "mix", "{}")?;
            let sources = member_sources(&host, &["phil_phone", "pia_quiet"], "")?;
            let heard = hear_each_own(&sources, &["phil_phone", "pia_quiet"], &[470.0, 730.0])?;
            println!("    {heard}");
            let shown = support::wait_for(Duration::from_secs(5), || {
                mix.property_description("status")
                    .is_some_and(|t| t.matches("(PS App)").count() == 2)
            });
            let line = mix.property_description("status").unwrap_or_default();
            println!("    properties: {line}");
            ensure(shown.is_some(), || format!("not shown as (PS App): {line}"))?;
            let violations = sim.signal_violations();
            ensure(violations.is_empty(), || {
                format!("signalling rules broken: {violations:?}")
            })?;
            Ok(())
        },
    );

    run.finish(host, runner);
}

fn voice(name: &str, platform: &str, hz: f64, offers: bool) -> MemberSpec {
    MemberSpec::with_voice(
        name,
        platform,
        VoiceSpec {
            tone_hz: Some(hz),
            offers,
            ..VoiceSpec::default()
        },
    )
}

/// Waits until every member's own tone is in their source, then checks 2 s of each for the
/// own tone standing 30 dB above the others'.
fn hear_each_own(
    sources: &[CapturedSource],
    names: &[&str],
    tones: &[f64],
) -> Result<String, String> {
    let all = support::wait_for(Duration::from_secs(20), || {
        sources
            .iter()
            .zip(tones)
            .all(|((_, a), &hz)| tone_dbfs(&a.lock().unwrap().samples, RATE, hz) > -30.0)
    });
    ensure(all.is_some(), || {
        format!("not every member was heard in {:?}", names)
    })?;
    std::thread::sleep(Duration::from_millis(500));
    for (_, audio) in sources {
        audio.lock().unwrap().clear();
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut out = Vec::new();
    for (i, (_, audio)) in sources.iter().enumerate() {
        let (own, others) = tone_separation(&audio.lock().unwrap().samples, tones, i);
        ensure(own - others >= 30.0, || {
            format!("{}: own {own:.1} dB, others {others:.1} dB", names[i])
        })?;
        out.push(format!("{} {own:.1} dB (+{:.1})", names[i], own - others));
    }
    Ok(out.join(", "))
}
