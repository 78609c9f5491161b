//! The demo: a party of four speaking members in psn-sim, the plugin loaded
//! into headless libobs the way OBS loads it, about ten seconds recorded from
//! one PSN Party Member source per member and from the PSN Party mix.
//!
//! Writes `member-<n>-<online id>.wav` and `mix.wav`, `waveforms.png`, and
//! prints a table (member, source, level, dominant frequency, latency). No PSN
//! account and no network are needed: everything runs on 127.0.0.1.
//!
//! Usage: psn-party-demo --plugin target/release/libobs_psn_party.so [--out DIR] [--seconds N]

mod party;
mod plot;
mod wav;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use obs_psn_party::audio::analysis::{dominant_hz, onsets, rms_dbfs};
use obs_psn_party::obs::host::{obs_now_ns, Captured, ObsHost};
use party::{MEMBERS, RATE};

struct Options {
    plugin: PathBuf,
    out: PathBuf,
    seconds: u64,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        plugin: PathBuf::from("target/release/libobs_psn_party.so"),
        out: PathBuf::from("target/demo"),
        seconds: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--plugin" => options.plugin = PathBuf::from(value()?),
            "--out" => options.out = PathBuf::from(value()?),
            "--seconds" => {
                options.seconds = value()?.parse().map_err(|_| "--seconds takes a number")?
            }
            "--help" | "-h" => {
                return Err(
                    "usage: psn-party-demo [--plugin PATH] [--out DIR] [--seconds N]".into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

/// Copies the module and its data into `<dir>/obs-psn-party/` as OBS installs it.
fn stage(plugin: &Path, dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    let root = dir.join("obs-psn-party");
    let bin = root.join("bin/64bit");
    std::fs::create_dir_all(&bin)?;
    let binary = bin.join("obs-psn-party.so");
    std::fs::copy(plugin, &binary)?;
    let data = root.join("data/locale");
    std::fs::create_dir_all(&data)?;
    let source_data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/locale/en-US.ini");
    std::fs::copy(source_data, data.join("en-US.ini"))?;
    Ok((binary, root.join("data")))
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    obs_psn_party::obs::host::ensure_display();
    if let Err(message) = run(&options) {
        eprintln!("demo: {message}");
        std::process::exit(1);
    }
}

fn run(options: &Options) -> Result<(), String> {
    if !options.plugin.exists() {
        return Err(format!(
            "{} is missing: build it with cargo build --release --lib",
            options.plugin.display()
        ));
    }
    std::fs::create_dir_all(&options.out).map_err(|e| e.to_string())?;
    // Under tools/test.sh the run's OBS log, settings and trace are kept for the suite's
    // secret scan (tools/secret-scan.py); otherwise all of it goes at the end.
    let artefacts = std::env::var_os("PSN_PARTY_SUITE_ARTEFACTS").map(PathBuf::from);
    let scratch = artefacts
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("psn-party-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let (binary, data) =
        stage(&options.plugin, &scratch.join("plugins")).map_err(|e| e.to_string())?;

    // psn-sim on loopback, with a party of four members who speak (a tone each,
    // in talkspurts, so the waveforms show who talks when).
    let sim = party::start_sim("Demo party", true)?;

    // The plugin reads its configuration from the environment, as from a .env (voice on
    // loopback, no STUN server: nothing leaves the machine, docs/network.md).
    for (key, value) in sim.plugin_env() {
        std::env::set_var(key, value);
    }

    let host = ObsHost::start(&scratch.join("config"))?;
    host.load_module(&binary, &data)?;
    let mut mix = host.create_source("psn_party", "PSN Party", "{}")?;
    mix.set_output_channel(1);
    let mix_audio = mix.start_capture();
    let mut members = Vec::new();
    for (i, (name, _)) in MEMBERS.iter().enumerate() {
        let settings = format!(r#"{{"member": "slot:{}"}}"#, i + 1);
        let mut source = host.create_source("psn_party_member", name, &settings)?;
        let audio = source.start_capture();
        members.push((source, audio));
    }
    let added = Instant::now();
    party::wait_connected(&sim, added, Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_millis(500));
    for (_, audio) in &members {
        audio.lock().unwrap().clear();
    }
    mix_audio.lock().unwrap().clear();
    println!("recording {} s ...", options.seconds);
    std::thread::sleep(Duration::from_secs(options.seconds));
    // OBS's clock against the wall clock the simulator stamps talkspurt onsets with.
    let obs_to_wall = unix_now_ns() as i128 - obs_now_ns() as i128;
    let sent_onsets: Vec<Vec<u64>> = MEMBERS
        .iter()
        .map(|(name, _)| {
            sim.voice_status()
                .into_iter()
                .find(|v| v.online_id == *name)
                .map(|v| v.talk_onsets_unix_ns)
                .unwrap_or_default()
        })
        .collect();

    let mut tracks = Vec::new();
    let mut problems = Vec::new();
    println!();
    println!(
        "{:<14} {:<8} {:>10} {:>12} {:>10} {:>12} {:>14}",
        "member", "source", "level", "dominant", "expected", "own/others", "latency"
    );
    for (i, ((name, hz), (_, audio))) in MEMBERS.iter().zip(&members).enumerate() {
        let samples = audio.lock().unwrap().samples.clone();
        let latencies =
            talkspurt_latencies_ms(&audio.lock().unwrap(), &sent_onsets[i], obs_to_wall);
        let latency = match median(&latencies) {
            Some(ms) => format!("{ms:.0} ms (n={})", latencies.len()),
            None => "-".into(),
        };
        let (own, others) = party::own_and_others(&samples, i);
        println!(
            "{:<14} {:<8} {:>7.1} dB {:>9.0} Hz {:>7.0} Hz {:>9.1} dB {:>14}",
            name,
            format!("slot:{}", i + 1),
            rms_dbfs(&samples),
            dominant_hz(&samples, RATE, 100, 2000),
            hz,
            own - others,
            latency
        );
        if latencies.is_empty() {
            problems.push(format!(
                "no talkspurt onset of {name} was matched in the capture"
            ));
        }
        if !party::carries_alone(&samples, i) {
            problems.push(format!("{name}'s source does not carry {name} alone"));
        }
        let path = options.out.join(format!("member-{}-{}.wav", i + 1, name));
        wav::write_mono_16(&path, RATE, &samples).map_err(|e| e.to_string())?;
        tracks.push((name.to_string(), samples));
    }
    let mix_samples = mix_audio.lock().unwrap().samples.clone();
    println!(
        "{:<14} {:<8} {:>7.1} dB {:>12} {:>10} {:>12} {:>14}",
        "(everyone)",
        "mix",
        rms_dbfs(&mix_samples),
        "-",
        "-",
        "-",
        "-"
    );
    println!(
        "latency: median over talkspurts, from the member's first packet of a talkspurt leaving\n\
         psn-sim (wall clock) to the talkspurt's first sample in the source's OBS capture (OBS\n\
         timestamp); the first frame of a talkspurt is 40 ms of audio, encoded when it is sent."
    );
    wav::write_mono_16(&options.out.join("mix.wav"), RATE, &mix_samples)
        .map_err(|e| e.to_string())?;
    tracks.push(("mix".into(), mix_samples));
    plot::waveforms(&options.out.join("waveforms.png"), &tracks).map_err(|e| e.to_string())?;
    println!();
    println!(
        "wrote {} WAVs and waveforms.png to {}",
        tracks.len(),
        options.out.display()
    );

    drop(members);
    drop(mix);
    let report = host.shutdown();
    println!(
        "OBS shut down in {:?}; Number of memory leaks: {}",
        report.took, report.leaks
    );
    if artefacts.is_some() {
        let _ = obs_psn_party::obs::host::write_captured_log(&scratch.join("obs.log"));
        let _ = std::fs::remove_dir_all(scratch.join("plugins"));
    } else {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if report.leaks != 0 {
        problems.push(format!("{} libobs allocations leaked", report.leaks));
    }
    problems.extend(what_the_release_module_sent(&sim));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The release module must send what the tests send, byte for byte: every JSON body in the
/// recorded key order (psn-sim checks each, src/key_order.rs there), one device id, signalling
/// within the rules, and the user's console's links with the members left alone.
fn what_the_release_module_sent(sim: &psn_sim::SimHandle) -> Vec<String> {
    let mut problems = Vec::new();
    let unexpected = sim.unexpected();
    if !unexpected.is_empty() {
        problems.push(format!(
            "fields or key order outside the recorded shapes: {unexpected:?}"
        ));
    }
    let joins = sim.request_bodies("join");
    let recorded = r#"{"members":[{"accountId":"me","platform":"me","customData4":""#;
    if joins.is_empty() || !joins.iter().all(|b| b.starts_with(recorded.as_bytes())) {
        problems.push(format!(
            "join bodies are not in the recorded key order: {:?}",
            joins
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
        ));
    }
    let devices = sim.device_ids();
    if devices.len() != 1 {
        problems.push(format!("{} device ids sent on authorize", devices.len()));
    }
    let violations = sim.signal_violations();
    if !violations.is_empty() {
        problems.push(format!("signalling broke psn-sim's rules: {violations:?}"));
    }
    let console = sim.console_status();
    let connected = console
        .links
        .iter()
        .filter(|l| l.state == "connected" && l.packets_received > 0)
        .count();
    println!(
        "release module: {} bodies in the recorded key order, {} device id, the console's links: {connected} of {} connected, {} disturbed",
        sim.request_bodies("customMessage").len() + joins.len(),
        devices.len(),
        MEMBERS.len(),
        console.disturbances.len()
    );
    if !console.disturbances.is_empty() {
        problems.push(format!(
            "the console's links were disturbed: {:?}",
            console.disturbances
        ));
    }
    if connected != MEMBERS.len() {
        problems.push(format!("the console's links: {:?}", console.links));
    }
    problems
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// For every talkspurt onset in a capture (sound after 200 ms of silence), the time from the
/// sender's onset before it (within 1 s) to the captured onset, in ms. The capture's sample
/// times come from OBS's block timestamps; `obs_to_wall` turns them into wall-clock ns.
fn talkspurt_latencies_ms(
    captured: &Captured,
    sent_unix_ns: &[u64],
    obs_to_wall: i128,
) -> Vec<f64> {
    let found = onsets(&captured.samples, 0.02, RATE as usize / 5);
    let mut latencies = Vec::new();
    for index in found {
        let Some(obs_ns) = sample_time_ns(&captured.blocks, index) else {
            continue;
        };
        let heard = obs_ns as i128 + obs_to_wall;
        let sent = sent_unix_ns
            .iter()
            .map(|&s| s as i128)
            .filter(|&s| s <= heard && heard - s < 1_000_000_000)
            .max();
        if let Some(sent) = sent {
            latencies.push((heard - sent) as f64 / 1e6);
        }
    }
    latencies
}

/// The OBS timestamp of sample `index` of a capture made of `blocks` (timestamp, frames).
fn sample_time_ns(blocks: &[(u64, u32)], index: usize) -> Option<u64> {
    let mut start = 0usize;
    for &(ts, frames) in blocks {
        let end = start + frames as usize;
        if index < end {
            let offset = (index - start) as u64 * 1_000_000_000 / u64::from(RATE);
            return Some(ts + offset);
        }
        start = end;
    }
    None
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}
