//! The plugin offers first (PROTOCOL.md section 7) and reaches members another way when
//! peer-to-peer fails: real libobs against psn-sim, members that never offer.
//!
//! `cargo test --features test-producer --test libobs_offer` (re-runs itself under xvfb-run
//! when there is no X display; a name filter runs one check).

mod support;

use std::time::Duration;

use obs_psn_party::audio::analysis::tone_dbfs;
use psn_sim::voice::{MemberSpec, VoiceSpec};
use support::{ensure, Runner};

const RATE: u32 = 48_000;

fn main() {
    support::ensure_display();
    let work = support::scratch_dir("offer");
    let plugin = support::stage_plugin(&work);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime for psn-sim");
    let sim = runtime
        .block_on(psn_sim::start(psn_sim::SimConfig::default()))
        .expect("psn-sim starts");
    let _runtime_context = runtime.enter();
    for (key, value) in sim.plugin_env() {
        std::env::set_var(key, value);
    }
    let host =
        obs_psn_party::obs::host::ObsHost::start(&work.join("config")).expect("libobs starts");
    let mut runner = Runner::new();
    runner.run_always("module_loads", || {
        host.load_module(&plugin.binary, &plugin.data).map(|_| ())
    });

    runner.run("members_that_never_offer_get_our_offer_and_each_is_in_their_own_source", || {
        let names = ["quiet_a", "quiet_b", "quiet_c"];
        let tones = [300.0, 470.0, 730.0];
        // Two members at the recorded 16 kHz Opus clock, one at 48 kHz: the answer decides.
        let clocks = [16_000, 16_000, 48_000];
        let specs: Vec<MemberSpec> = names
            .iter()
            .zip(tones.iter().zip(clocks))
            .map(|(name, (&hz, clock))| {
                let voice = VoiceSpec { tone_hz: Some(hz), offers: false, clock_rate: clock, ..VoiceSpec::default() };
                MemberSpec::with_voice(name, "PS5", voice)
            })
            .collect();
        let party = sim.start_party_with("Quiet night", &specs);
        let _end = EndParty(&sim, party.session_id.clone());
        let mut members = Vec::new();
        for name in names {
            let mut source = host.create_source("psn_party_member", name, &format!(r#"{{"member": "{name}"}}"#))?;
            let audio = source.start_capture();
            members.push((source, audio));
        }
        let connected = support::wait_for(Duration::from_secs(20), || {
            sim.voice_status().iter().filter(|v| v.state == "connected").count() == names.len()
        });
        println!("    all {} members connected after {connected:?}", names.len());
        ensure(connected.is_some(), || format!("voice status: {:?}", sim.voice_status()))?;
        for v in sim.voice_status() {
            println!(
                "    {}: offers received {}, answers sent {}, offers sent {}, packets sent {}",
                v.online_id, v.offers_received, v.answers_sent, v.offers_sent, v.packets_sent
            );
            ensure(v.offers_sent == 0 && v.offers_received >= 1 && v.answers_sent >= 1, || {
                format!("{} did not connect by our offer: {v:?}", v.online_id)
            })?;
        }
        std::thread::sleep(Duration::from_millis(700));
        let sent: Vec<u64> = sim.voice_status().iter().map(|v| v.packets_sent).collect();
        println!("    packets sent so far: {sent:?}");
        println!("    status: {:?}", members[0].0.property_description("status"));
        for (_, audio) in &members {
            audio.lock().unwrap().clear();
        }
        std::thread::sleep(Duration::from_secs(3));
        for (i, (_, audio)) in members.iter().enumerate() {
            let audio = audio.lock().unwrap();
            let own = tone_dbfs(&audio.samples, RATE, tones[i]);
            let others = tones
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, &hz)| tone_dbfs(&audio.samples, RATE, hz))
                .fold(f64::NEG_INFINITY, f64::max);
            println!(
                "    {} ({} Hz clock): own tone {own:.1} dB, loudest other {others:.1} dB, separation {:.1} dB",
                names[i], clocks[i], own - others
            );
            ensure(own > -30.0 && own - others >= 30.0, || {
                format!("{}: own {own:.1} dB, others {others:.1} dB", names[i])
            })?;
        }
        ensure(sim.rejections().is_empty(), || format!("sim rejections: {:?}", sim.rejections()))?;
        Ok(())
    });

    let report = host.shutdown();
    println!("Number of memory leaks: {}", report.leaks);
    runner.run("obs_shutdown_is_leak_free", || {
        ensure(report.leaks == 0, || {
            format!("{} libobs allocations leaked", report.leaks)
        })
    });
    drop(sim);
    drop(_runtime_context);
    drop(runtime);
    let _ = std::fs::remove_dir_all(&work);
    runner.finish();
}

/// Ends a party when the check is over, passed or failed.
struct EndParty<'a>(&'a psn_sim::SimHandle, String);

impl Drop for EndParty<'_> {
    fn drop(&mut self) {
        self.0.end_party(&self.1);
    }
}
