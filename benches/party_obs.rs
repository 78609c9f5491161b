//! Benchmarks 2, 4 and 5 of issue 7 and the libobs rows of issue 21, in real libobs (under
//! Xvfb) against psn-sim's WebRTC members on loopback, and the OBS side of benchmark 3 (role
//! `obs-process`).
//!
//! `cargo bench --features test-host --bench party_obs [-- NAME]` (tools/bench.sh runs it);
//! NAME picks one of `startup`, `latency`, `steady`, `pair`, `silent`, `wake`, `stress`, or
//! `compare` (benchmark 3). Environment: `BENCH_STEADY_SECONDS` (600), `BENCH_PAIR_SECONDS`
//! (600), `BENCH_SILENT_SECONDS` (120), `BENCH_WAKE_SECONDS` (120), `BENCH_STRESS_SECONDS`
//! (600), `BENCH_LATENCY_SECONDS` (30), `BENCH_STARTUP_RUNS` (6), `BENCH_PACKETS_DIR` (keep
//! the packets of each window there, for `party_obs bare-decode FILE` under callgrind).
//!
//! - startup (4): a full party (14 voices) is running; the time from `obs_source_create` of the mix
//!   source to the first audible sample in OBS's capture callback. The first run signs in
//!   with the NPSSO; the later ones are "signed in" (token store), as a streamer adding the
//!   source again.
//! - latency (2): the 14 voice members talk in spurts; psn-sim notes when it writes the first packet of
//!   every talkspurt to the socket (after its jitter delay); the time to the OBS capture
//!   callback that first carries that talkspurt's sound, per member source. 0 and 30 ms jitter.
//! - steady (5, and issue 21's first row): 14 voices talking in spurts, each in a source of its
//!   own plus the mix on an output channel; OBS must not grow its audio buffering after the
//!   first second of audio. The plugin's threads' CPU against bare libopus decoding the same
//!   packets (benches/support/party_load.rs, bare_decode.rs).
//! - pair, silent, wake, stress (issue 21): the same ratio for 2 members; the plugin's CPU per
//!   silent member; CPU and wake-ups with 8 (and 2) members on a 48 kHz clock in 20 ms packets;
//!   timestamp jumps (re-anchors) under `stress-ng --cpu 2`.
//! - role `obs-process` (3, run by `compare`): only libobs and the plugin in this process,
//!   against a psn-sim in another; prints this process's CPU and memory.
//! - role `bare-decode FILE`: decodes packets a run saved, for callgrind's instruction count.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "support/bare_decode.rs"]
mod bare_decode;
#[path = "support/party_load.rs"]
mod party_load;
#[path = "support/thread_stats.rs"]
mod thread_stats;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use obs_psn_party::obs::host::{Captured, ObsHost};
use party_load::{row, Measured, Scenario, Talk};
use psn_sim::voice::{MemberSpec, VoiceSpec};
use support::libobs::{EndParty, LibobsRun};
use support::{ensure, Runner};

/// Voice members in the party: PSN parties hold 16 members, and two of them are the
/// streamer's own console and the plugin's MOBILE_APP member (psn-sim refuses a 17th).
const MEMBERS: usize = 14;
const TONES: [f64; 16] = [
    300.0, 470.0, 730.0, 1030.0, 330.0, 510.0, 770.0, 1090.0, 360.0, 550.0, 810.0, 1150.0, 390.0,
    590.0, 850.0, 1210.0,
];
/// A sample this loud is sound (the voices peak near 0.3).
const AUDIBLE: f32 = 0.02;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "bare-decode") {
        bare_decode_file(args.get(i + 1).map(String::as_str).unwrap_or(""));
        return;
    }
    support::ensure_display();
    if std::env::args().any(|a| a == "obs-process") {
        obs_process();
        return;
    }
    if std::env::args().any(|a| a == "compare") {
        compare();
        return;
    }
    let run = LibobsRun::prepare("bench");
    let sim = run.start_sim_on(sim_runtime(), psn_sim::SimConfig::default());
    let mut runner = Runner::new();
    let host = run.start_host_with_plugin(&mut runner);
    runner.run("startup", || startup(&sim, &host));
    runner.run("latency", || {
        let seconds = env_u64("BENCH_LATENCY_SECONDS", 30);
        let quiet = latency(&sim, &host, 0, seconds)?;
        let jittery = latency(&sim, &host, 30, seconds)?;
        row(
            "latency median, socket -> OBS (0 / 30 ms jitter)",
            &format!(
                "**{:.1} / {:.1} ms** (p99 {:.1} / {:.1} ms, {seconds} s each)",
                quiet.0, jittery.0, quiet.1, jittery.1
            ),
            "no worse (issue 7: 27 / 18 ms; bound 60 / 120 ms)",
        );
        ensure(quiet.0 <= 60.0 && jittery.0 <= 120.0, || {
            format!(
                "median latency {:.1} ms (0 jitter, goal 60), {:.1} ms (30 ms jitter, goal 120)",
                quiet.0, jittery.0
            )
        })
    });
    runner.run("steady", || steady(&sim, &host));
    runner.run("pair", || pair(&sim, &host));
    runner.run("silent", || silent(&sim, &host));
    runner.run("wake", || wake(&sim, &host));
    runner.run("stress", || stress(&sim, &host));
    run.finish(host, runner);
}

/// Decodes the packets a run saved (`BENCH_PACKETS_DIR`) as the run's reference did: for
/// `valgrind --tool=callgrind --toggle-collect='*decode_window*'` (tools/bench.sh).
fn bare_decode_file(path: &str) {
    let members = bare_decode::load(std::path::Path::new(path)).expect("packet file");
    let cpu = bare_decode::decode_cpu(&members);
    let packets: usize = members.iter().map(|m| m.window.len()).sum();
    println!(
        "bare-decode: {packets} packets of {} members in {:.1} ms thread CPU",
        members.len(),
        cpu.as_secs_f64() * 1e3
    );
}

/// psn-sim's runtime: two named workers, so the CPU figures can tell its threads from OBS's.
fn sim_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sim-rt")
        .enable_all()
        .build()
        .expect("tokio runtime for psn-sim")
}

fn voices(prefix: &str, spurts: bool, jitter_ms: u64) -> Vec<MemberSpec> {
    voices_at(prefix, spurts, jitter_ms, 16_000)
}

/// Voices with Opus on an RTP clock of `clock_rate` (16000 as PS5s send; 48000 per RFC 7587,
/// the only one browsers take).
fn voices_at(prefix: &str, spurts: bool, jitter_ms: u64, clock_rate: u32) -> Vec<MemberSpec> {
    (0..MEMBERS)
        .map(|i| {
            let voice = VoiceSpec {
                tone_hz: Some(TONES[i]),
                jitter_ms,
                clock_rate,
                // Spurts of 0.5..1.1 s and pauses of 0.7..1.5 s, different per member.
                talk_ms: spurts.then_some(500 + 41 * i as u64),
                silence_ms: spurts.then_some(700 + 53 * i as u64),
                ..VoiceSpec::default()
            };
            MemberSpec::with_voice(&format!("{prefix}{i:02}_ps"), "PS5", voice)
        })
        .collect()
}

fn all_connected(sim: &psn_sim::SimHandle, prefix: &str) -> bool {
    sim.voice_status()
        .iter()
        .filter(|v| v.online_id.starts_with(prefix) && v.state == "connected")
        .count()
        == MEMBERS
}

/// When the first audible sample reached the capture callback, if it did.
fn first_audible(c: &Captured, from_sample: usize) -> Option<Instant> {
    let i = from_sample
        + c.samples
            .get(from_sample..)?
            .iter()
            .position(|s| s.abs() > AUDIBLE)?;
    c.arrivals
        .iter()
        .find(|(_, total)| *total > i)
        .map(|(at, _)| *at)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median_p99(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    (q(0.5), q(0.99))
}

// ---------------------------------------------------------------- 4: startup

fn startup(sim: &psn_sim::SimHandle, host: &ObsHost) -> Result<(), String> {
    let runs = env_u64("BENCH_STARTUP_RUNS", 6);
    let mut signed_in = Vec::new();
    for run in 0..runs {
        let prefix = format!("st{run}_");
        let party = sim.start_party_with(&format!("Startup {run}"), &voices(&prefix, false, 0));
        let _end = EndParty(sim, party.session_id.clone());
        let joins = sim.count("join");
        let t0 = Instant::now();
        let mut source = host.create_source("psn_party", &format!("startup{run}"), "{}")?;
        let audio = source.start_capture();
        let created = t0.elapsed();
        let mut joined = None;
        let mut connected = None;
        let heard = support::wait_for(Duration::from_secs(10), || {
            if joined.is_none() && sim.count("join") > joins {
                joined = Some(t0.elapsed());
            }
            if connected.is_none()
                && sim
                    .voice_status()
                    .iter()
                    .any(|v| v.online_id.starts_with(&prefix) && v.state == "connected")
            {
                connected = Some(t0.elapsed());
            }
            first_audible(&audio.lock().unwrap(), 0).is_some()
        });
        let at = first_audible(&audio.lock().unwrap(), 0);
        drop(source);
        let Some(at) = at.filter(|_| heard.is_some()) else {
            return Err(format!("run {run}: nothing audible within 10 s"));
        };
        let total = at.duration_since(t0);
        println!(
            "    run {run}: source created in {:.1} ms, joined +{:.0} ms, first member connected +{:.0} ms, first audible sample in OBS +{:.0} ms{}",
            ms(created),
            joined.map_or(f64::NAN, ms),
            connected.map_or(f64::NAN, ms),
            ms(total),
            if run == 0 { " (first sign-in, NPSSO)" } else { "" }
        );
        if run > 0 {
            signed_in.push(ms(total));
        }
        // The hub leaves the party and stops when its last source goes.
        support::wait_for(Duration::from_secs(3), || sim.count("leave") > run);
        std::thread::sleep(Duration::from_millis(300));
    }
    if signed_in.is_empty() {
        return Ok(());
    }
    let (median, _) = median_p99(&mut signed_in);
    let worst = signed_in.last().copied().unwrap_or(f64::NAN);
    row(
        "source added (signed in) -> first audible member (issue 7)",
        &format!(
            "median {median:.0} ms, worst {worst:.0} ms over {} runs",
            signed_in.len()
        ),
        "< 1.5 s",
    );
    println!(
        "RESULT startup: source added (signed in) -> first audible member in OBS: median {median:.0} ms, worst {worst:.0} ms over {} runs (goal < 1500 ms)",
        signed_in.len()
    );
    ensure(median < 1500.0, || format!("median startup {median:.0} ms"))
}

// ---------------------------------------------------------------- 2: latency

/// Median and p99 latency (ms) from a talkspurt's first packet on the wire to OBS.
fn latency(
    sim: &psn_sim::SimHandle,
    host: &ObsHost,
    jitter_ms: u64,
    seconds: u64,
) -> Result<(f64, f64), String> {
    let prefix = format!("lat{jitter_ms}_");
    let party = sim.start_party_with(
        &format!("Latency {jitter_ms}"),
        &voices(&prefix, true, jitter_ms),
    );
    let _end = EndParty(sim, party.session_id.clone());
    let mut mix = host.create_source("psn_party", &format!("latmix{jitter_ms}"), "{}")?;
    mix.set_output_channel(1);
    let mut sources = Vec::new();
    for i in 0..MEMBERS {
        let settings = format!(r#"{{"member": "{prefix}{i:02}_ps"}}"#);
        let mut source =
            host.create_source("psn_party_member", &format!("{prefix}{i}"), &settings)?;
        let audio = source.start_capture();
        sources.push((source, audio));
    }
    let connected = support::wait_for(Duration::from_secs(30), || all_connected(sim, &prefix));
    ensure(connected.is_some(), || {
        format!("not all connected: {:?}", sim.voice_status().len())
    })?;
    // Let every jitter buffer see a few talkspurts.
    std::thread::sleep(Duration::from_secs(3));
    for (_, audio) in &sources {
        audio.lock().unwrap().clear();
    }
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let end = Instant::now();
    let status = sim.voice_status();
    let mut latencies = Vec::new();
    let mut missed = 0;
    for (i, (_, audio)) in sources.iter().enumerate() {
        let name = format!("{prefix}{i:02}_ps");
        let Some(v) = status.iter().find(|v| v.online_id == name) else {
            continue;
        };
        let captured = audio.lock().unwrap();
        for &onset in &v.talk_onsets {
            if onset < start + Duration::from_millis(200) || onset + Duration::from_secs(1) > end {
                continue;
            }
            // Everything delivered before the packet was sent belongs to earlier audio.
            let from = captured
                .arrivals
                .iter()
                .take_while(|(at, _)| *at < onset)
                .last()
                .map_or(0, |(_, total)| *total);
            // The pause before must be quiet, or this is not a fresh onset in the capture.
            let quiet_before = captured.samples[from.saturating_sub(4800)..from]
                .iter()
                .all(|s| s.abs() < AUDIBLE);
            match first_audible(&captured, from) {
                Some(at) if quiet_before && at.duration_since(onset) < Duration::from_secs(1) => {
                    latencies.push(ms(at.duration_since(onset)));
                }
                _ => missed += 1,
            }
        }
    }
    drop(sources);
    drop(mix);
    ensure(latencies.len() >= 20, || {
        format!(
            "only {} talkspurt onsets measured ({missed} missed)",
            latencies.len()
        )
    })?;
    let n = latencies.len();
    let (median, p99) = median_p99(&mut latencies);
    println!(
        "RESULT latency at {jitter_ms} ms jitter: packet on the wire -> OBS capture callback: median {median:.1} ms, p99 {p99:.1} ms, min {:.1} ms ({n} talkspurts of {MEMBERS} members, {missed} not matched; goal median <= {} ms)",
        latencies[0],
        if jitter_ms == 0 { 60 } else { 120 }
    );
    Ok((median, p99))
}

// ---------------------------------------------------------------- 5 and issue 21: parties under load

/// A scenario's window: `BENCH_<NAME>_SECONDS`, else `default`.
fn seconds(name: &str, default: u64) -> u64 {
    env_u64(&format!("BENCH_{}_SECONDS", name.to_uppercase()), default)
}

/// "x.xx (a / b CPU s per min)": the plugin in libobs against bare libopus on the same packets.
fn ratio_text(m: &Measured) -> String {
    format!(
        "**{:.2}x** ({:.2} / {:.3} CPU s per min of audio, {:.0} s)",
        m.plugin.cpu_s / m.bare.as_secs_f64(),
        m.plugin_s_per_min(),
        m.bare_s_per_min(),
        m.seconds
    )
}

/// 5b and the first row of issue 21: 14 voices in spurts (16 kHz clock, 40 ms, as PS5s send)
/// for `BENCH_STEADY_SECONDS` (600); OBS must not grow its audio buffering after the first
/// second of audio, the mix must never be silent for 5 s.
fn steady(sim: &psn_sim::SimHandle, host: &ObsHost) -> Result<(), String> {
    let sc = Scenario::ps5("steady", MEMBERS, Talk::Spurts, seconds("steady", 600));
    let m = party_load::run(sim, host, &sc)?;
    row(
        &format!("plugin CPU in libobs (all its threads) / bare libopus decode of the same packets, {MEMBERS} voices"),
        &ratio_text(&m),
        "<= 3x (issue 7: ~11x)",
    );
    let group = |g: &str| {
        m.groups
            .iter()
            .filter(|(name, _)| name.starts_with(g))
            .map(|(_, u)| u.cpu_s / m.seconds * 60.0)
            .sum::<f64>()
    };
    row(
        "plugin CPU by part, 14 voices (issue 7 row): network / playout / pumps / total",
        &format!(
            "{:.2} / {:.2} / {:.2} / {:.2} CPU s per min",
            group("plugin: network"),
            group("plugin: playout"),
            group("plugin: pumps"),
            m.plugin_s_per_min()
        ),
        "(issue 7: 1.90 / 1.83 / 1.88 / 5.62)",
    );
    row(
        "OBS audio buffering growth after the first second (issue 7)",
        &format!(
            "{} times in {:.0} s; {} of {} 5 s windows of the mix silent",
            m.late_buffering, m.seconds, m.quiet_windows, m.windows
        ),
        "never",
    );
    ensure(m.late_buffering == 0, || {
        format!("OBS grew its audio buffering {} times", m.late_buffering)
    })?;
    ensure(m.quiet_windows == 0, || {
        format!("{} silent windows", m.quiet_windows)
    })
}

/// A party of two talking members, the common case: the same ratio.
fn pair(sim: &psn_sim::SimHandle, host: &ObsHost) -> Result<(), String> {
    let sc = Scenario::ps5("pair", 2, Talk::Spurts, seconds("pair", 600));
    let m = party_load::run(sim, host, &sc)?;
    row(
        "same, a party of 2 talking members",
        &ratio_text(&m),
        "<= 3x",
    );
    Ok(())
}

/// The party silent (connected, nobody talking: only DTX refreshes arrive), 14 members and 2:
/// the plugin's CPU per member is the difference over the 12 members between the two.
fn silent(sim: &psn_sim::SimHandle, host: &ObsHost) -> Result<(), String> {
    let window = seconds("silent", 120);
    let runs = [("silent14", MEMBERS), ("silent2", 2)]
        .into_iter()
        .map(|(name, members)| {
            party_load::run(
                sim,
                host,
                &Scenario::ps5(name, members, Talk::Silent, window),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (many, few) = (&runs[0], &runs[1]);
    let per_member_ms =
        (many.plugin_s_per_min() - few.plugin_s_per_min()) / (MEMBERS - 2) as f64 * 1e3;
    row(
        "plugin CPU when the party is silent (DTX), per member",
        &format!(
            "**{per_member_ms:.1} ms CPU per min per member** (all threads: {:.3} s/min with {MEMBERS} silent members, {:.3} with 2; {:.0} / {:.0} wake-ups/s; {:.0} s each)",
            many.plugin_s_per_min(),
            few.plugin_s_per_min(),
            many.wakeups_per_s(),
            few.wakeups_per_s(),
            many.seconds
        ),
        "~0 (no per-member work while nothing arrives)",
    );
    Ok(())
}

/// 8 members talking with Opus on a 48 kHz clock in 20 ms packets (and 2 the same way): the
/// plugin's threads' CPU and wake-ups.
fn wake(sim: &psn_sim::SimHandle, host: &ObsHost) -> Result<(), String> {
    let window = seconds("wake", 120);
    let runs = [("wake8", 8), ("wake2", 2)]
        .into_iter()
        .map(|(name, members)| {
            let sc = Scenario {
                clock_rate: 48_000,
                ptime_ms: 20,
                ..Scenario::ps5(name, members, Talk::Continuous, window)
            };
            party_load::run(sim, host, &sc)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (eight, two) = (&runs[0], &runs[1]);
    row(
        "plugin threads' CPU, 8 members talking (48 kHz, 20 ms packets), from /proc",
        &format!(
            "**{:.2} % of a core** (2 members: {:.2} %; {:.0} s each; plugin / bare libopus {:.2}x)",
            eight.core_percent(),
            two.core_percent(),
            eight.seconds,
            eight.plugin.cpu_s / eight.bare.as_secs_f64()
        ),
        "<= 3 % (issue 21 before: 8.1 %)",
    );
    row(
        "plugin threads' voluntary wake-ups per second, same run",
        &format!(
            "**{:.0}/s** (2 members: {:.0}/s; {} / {} threads)",
            eight.wakeups_per_s(),
            two.wakeups_per_s(),
            eight.plugin.threads,
            two.plugin.threads
        ),
        "<= 400/s (issue 21 before: 1761/s, 2 members 535/s)",
    );
    Ok(())
}

/// 14 voices with `stress-ng --cpu 2` busy on both cores: re-anchors, seen as timestamp jumps
/// in the capture callbacks of every source (a pump that fell behind restarts its clock), and
/// OBS's own timing resets and buffering growth.
fn stress(sim: &psn_sim::SimHandle, host: &ObsHost) -> Result<(), String> {
    let sc = Scenario {
        capture_members: true,
        stress: true,
        ..Scenario::ps5("stress", MEMBERS, Talk::Spurts, seconds("stress", 600))
    };
    let m = party_load::run(sim, host, &sc)?;
    let per_10min = |n: f64| n * 600.0 / m.seconds;
    row(
        "re-anchors per 10 min under load (`stress-ng --cpu 2`), 14 voices, all 15 sources",
        &format!(
            "**{:.1}** ({} timestamp jumps > 1 ms in {:.0} s over {} capture callbacks, worst {:.1} ms, besides {} new runs after a member's silence; OBS: {} timing resets, audio buffering grew {} times)",
            per_10min(m.jumps as f64),
            m.jumps,
            m.seconds,
            m.callbacks,
            m.worst_jump_ms,
            m.resumes,
            m.obs_resets,
            m.late_buffering
        ),
        "0",
    );
    Ok(())
}

// ---------------------------------------------------------------- 3: the OBS process

/// CPU seconds (user + system) of this whole process so far.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let close = stat.rfind(')').unwrap_or(0);
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let t = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (t(11) + t(12)) / 100.0
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// libobs with the plugin, against the psn-sim named by the environment (PSN_* as from
/// `.env`; tools/bench/compare.sh starts it): the mix source on an output channel and one
/// source per member, until `BENCH_SECONDS` of audio have played. Prints one `OBS ...` line.
fn obs_process() {
    let seconds = env_u64("BENCH_SECONDS", 60);
    let run = LibobsRun::prepare("obs-process");
    let host = run.start_host();
    run.load_plugin(&host).expect("module loads");
    // Let libobs settle, then take the baseline: OBS running, our module loaded, no source.
    std::thread::sleep(Duration::from_secs(2));
    // OBS's own cost with nothing of ours running (video and audio threads of the host).
    let idle0 = process_cpu_seconds();
    let idle_t = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let idle = (process_cpu_seconds() - idle0) / idle_t.elapsed().as_secs_f64() * 60.0;
    let rss_base = status_kib("VmRSS:");
    let cpu_base = process_cpu_seconds();
    let mut mix = host
        .create_source("psn_party", "mix", "{}")
        .expect("mix source");
    mix.set_output_channel(1);
    let audio = mix.start_capture();
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        let settings = format!(r#"{{"member": "slot:{}"}}"#, i + 1);
        members.push(
            host.create_source("psn_party_member", &format!("m{i}"), &settings)
                .unwrap(),
        );
    }
    let heard = support::wait_for(Duration::from_secs(30), || {
        first_audible(&audio.lock().unwrap(), 0).is_some()
    });
    // Everything connects within a few seconds; measure a steady window after that. The
    // capture is emptied every 500 ms meanwhile, as in the window: 5 s of it kept would be
    // 2 MiB of the bench's own in the figure (heaptrack showed it).
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        audio.lock().unwrap().clear();
    }
    let cpu0 = process_cpu_seconds();
    let t0 = Instant::now();
    let mut rss_peak = status_kib("VmRSS:");
    let mut audible = 0usize;
    while t0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(500));
        rss_peak = rss_peak.max(status_kib("VmRSS:"));
        let mut a = audio.lock().unwrap();
        audible += a.samples.iter().filter(|s| s.abs() > AUDIBLE).count();
        a.clear();
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu0;
    println!(
        "OBS cpu_s={cpu:.3} wall_s={wall:.2} idle_cpu_s_per_min={idle:.3} cpu_s_per_min={:.3} rss_base_kib={rss_base} rss_peak_kib={rss_peak} added_mib={:.1} startup_cpu_s={:.3} heard={} audible_samples={audible}",
        cpu / wall * 60.0,
        (rss_peak.saturating_sub(rss_base)) as f64 / 1024.0,
        cpu0 - cpu_base,
        heard.is_some()
    );
    drop(members);
    drop(mix);
    let report = host.shutdown();
    println!("OBS leaks={}", report.leaks);
    support::finish_scratch(&run.work);
}

// ---------------------------------------------------------------- 3: OBS versus Chromium

/// The page's side of the comparison: one RTCPeerConnection per member offer, every remote
/// track played through WebAudio (as the Electron party clients do), with an analyser each
/// so the bench can see the audio really is decoded.
const PAGE_JS: &str = r#"
window.bench = { pcs: [], ctx: new AudioContext(), analysers: [], sinks: [] };
window.answerOffer = async (sdp) => {
  const b = window.bench;
  if (b.ctx.state !== 'running') { try { await b.ctx.resume(); } catch (e) {} }
  const pc = new RTCPeerConnection({});
  b.pcs.push(pc);
  pc.ontrack = (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    // Chromium feeds WebAudio from a remote stream only while a media element plays it too.
    const el = new Audio(); el.srcObject = stream; el.play().catch(() => {});
    b.sinks.push(el);
    const src = b.ctx.createMediaStreamSource(stream);
    const an = b.ctx.createAnalyser();
    src.connect(an); an.connect(b.ctx.destination);
    b.analysers.push(an);
  };
  await pc.setRemoteDescription({ type: 'offer', sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  if (pc.iceGatheringState !== 'complete') {
    await new Promise((r) => {
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') r(); };
      setTimeout(r, 3000);
    });
  }
  return pc.localDescription.sdp;
};
window.benchState = async () => {
  const buf = new Float32Array(2048);
  const levels = window.bench.analysers.map((an) => {
    an.getFloatTimeDomainData(buf);
    let m = 0; for (const x of buf) m = Math.max(m, Math.abs(x));
    return m;
  });
  // What WebRTC itself decoded (NetEq): samples out and their level, per connection.
  const decoded = [], rtcLevels = [];
  for (const pc of window.bench.pcs) {
    const stats = await pc.getStats();
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        decoded.push(r.totalSamplesReceived || 0);
        rtcLevels.push(r.audioLevel || 0);
      }
    });
  }
  return JSON.stringify({ ctx: window.bench.ctx.state,
    states: window.bench.pcs.map((pc) => pc.connectionState), levels, decoded, rtcLevels });
};
'done'
"#;

/// A minimal DevTools protocol client: one page, `Runtime.evaluate`.
struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Cdp {
    async fn evaluate(&mut self, expression: &str) -> Result<serde_json::Value, String> {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        self.next_id += 1;
        let id = self.next_id;
        let request = serde_json::json!({"id": id, "method": "Runtime.evaluate",
            "params": {"expression": expression, "awaitPromise": true, "returnByValue": true}});
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        while let Some(message) = self.ws.next().await {
            let Ok(Message::Text(text)) = message else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if v["id"].as_u64() == Some(id) {
                if let Some(ex) = v["result"].get("exceptionDetails") {
                    return Err(format!("page: {ex}"));
                }
                return Ok(v["result"]["result"]["value"].clone());
            }
        }
        Err("DevTools connection closed".into())
    }
}

/// The page target's DevTools WebSocket URL (plain HTTP GET of /json/list; the server
/// keeps the connection open, so read until the body parses).
fn page_ws_url(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    // The server builds the WebSocket URLs from the Host header: name the port too.
    let request =
        format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let list: serde_json::Value = loop {
        let n = s.read(&mut buf).ok()?;
        bytes.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&bytes);
        if let Some(body) = text.find("\r\n\r\n").map(|i| &text[i + 4..]) {
            if let Ok(v) = serde_json::from_str(body) {
                break v;
            }
        }
        if n == 0 {
            return None;
        }
    };
    list.as_array()?
        .iter()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .map(str::to_owned)
}

/// Every process in the tree under `root` (itself included).
fn process_tree(root: u32) -> Vec<u32> {
    let mut parent = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let close = stat.rfind(')').unwrap_or(0);
        let ppid = stat[close + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0);
        parent.insert(pid, ppid);
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent.iter().filter(|(_, &pp)| pp == p).map(|(&c, _)| c));
        i += 1;
    }
    tree
}

/// CPU seconds (user + system) of `pid`, and its Pss and Rss in KiB.
fn proc_usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let close = stat.rfind(')').unwrap_or(0);
    let fields: Vec<&str> = stat
        .get(close + 2..)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let t = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let kib = |name: &str| thread_stats::proc_field(&rollup, name);
    ((t(11) + t(12)) / 100.0, kib("Pss:"), kib("Rss:"))
}

/// Sum over the tree: CPU seconds, Pss KiB, Rss KiB. Processes that exited are not counted,
/// so the CPU is read over long-lived processes (Chromium's are).
fn tree_usage(root: u32) -> (f64, u64, u64) {
    process_tree(root)
        .into_iter()
        .map(proc_usage)
        .fold((0.0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
}

fn user_signal(sim: &psn_sim::SimHandle, to: &str, kind: &str, sdp: String) -> String {
    use psn_sim::cmsg::{encode, platform_code, Signal};
    let me = sim.config().account_id;
    encode(&Signal {
        from_account: me.clone(),
        from_platform: platform_code("MOBILE_APP"),
        to_account: to.into(),
        to_platform: platform_code("PS5"),
        media_account: me,
        media_platform: platform_code("MOBILE_APP"),
        kind: kind.into(),
        sdp,
        global_seq_num: 1,
        sdp_sequence_number: "1".into(),
    })
}

/// Headless Chromium answering the members' offers in a page, measured like the OBS
/// process. Returns (cpu s/min, peak Pss MiB, Pss MiB added by the party, audible members).
fn chromium_side(
    runtime: &tokio::runtime::Runtime,
    sim: &psn_sim::SimHandle,
    seconds: u64,
) -> Result<(f64, f64, f64, usize), String> {
    let profile = support::scratch_dir("chromium-profile");
    let browser = std::env::var("BENCH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let mut child = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--autoplay-policy=no-user-gesture-required",
            // Loopback only: let ICE use it, with plain addresses instead of mDNS names.
            "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("{browser}: {e}"))?;
    let pid = child.id();
    let result = (|| {
        let port_file = profile.join("DevToolsActivePort");
        support::wait_for(Duration::from_secs(20), || port_file.exists());
        let port: u16 = std::fs::read_to_string(&port_file)
            .map_err(|e| format!("no DevToolsActivePort: {e}"))?
            .lines()
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or("bad DevToolsActivePort")?;
        let mut url = None;
        support::wait_for(Duration::from_secs(10), || {
            url = page_ws_url(port);
            url.is_some()
        });
        let url = url.ok_or("no page target")?;
        println!("    DevTools page: {url}");
        let mut cdp = runtime.block_on(async {
            let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(Cdp { ws, next_id: 0 })
        })?;
        runtime.block_on(cdp.evaluate(PAGE_JS))?;
        std::thread::sleep(Duration::from_secs(2));
        let (_, pss_base, _) = tree_usage(pid);

        let prefix = "web_";
        let party = sim.start_party_with("Browser", &voices_at(prefix, true, 0, 48_000));
        let _end = EndParty(sim, party.session_id.clone());
        let mut taps = sim.user_messages();
        sim.user_join(&party.session_id);
        let mut answered = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while answered.len() < MEMBERS && Instant::now() < deadline {
            let next = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), taps.recv()).await
            });
            let Ok(Some(message)) = next else { continue };
            let Ok(signal) = psn_sim::cmsg::decode(&message.payload) else {
                continue;
            };
            if signal.kind != "offer" || answered.contains(&signal.from_account) {
                continue;
            }
            let expression = format!("answerOffer({})", serde_json::Value::from(signal.sdp));
            let answer = runtime.block_on(cdp.evaluate(&expression))?;
            let answer = answer.as_str().ok_or("no answer SDP")?.to_owned();
            let payload = user_signal(sim, &signal.from_account, "answer", answer);
            sim.user_send_custom_message(
                &party.session_id,
                &signal.from_account,
                "miranda:12",
                &payload,
            )?;
            answered.insert(signal.from_account);
        }
        let connected = support::wait_for(Duration::from_secs(30), || all_connected(sim, prefix));
        ensure(connected.is_some(), || {
            format!(
                "Chromium: {} answers, members not all connected",
                answered.len()
            )
        })?;
        // Settle as on the OBS side, then measure.
        std::thread::sleep(Duration::from_secs(5));
        let (cpu0, _, _) = tree_usage(pid);
        let t0 = Instant::now();
        let mut pss_peak = 0;
        let mut audible = [false; MEMBERS];
        while t0.elapsed() < Duration::from_secs(seconds) {
            std::thread::sleep(Duration::from_millis(500));
            let (_, pss, _) = tree_usage(pid);
            pss_peak = pss_peak.max(pss);
            if let Ok(state) = runtime.block_on(cdp.evaluate("benchState()")) {
                let state: serde_json::Value =
                    serde_json::from_str(state.as_str().unwrap_or("{}")).unwrap_or_default();
                let rtc = state["rtcLevels"].as_array().into_iter().flatten();
                for (i, level) in state["levels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(rtc)
                    .enumerate()
                {
                    let i = i % MEMBERS;
                    if level.as_f64().unwrap_or(0.0) > f64::from(AUDIBLE) && i < MEMBERS {
                        audible[i] = true;
                    }
                }
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let (cpu1, _, _) = tree_usage(pid);
        let state = runtime
            .block_on(cdp.evaluate("benchState()"))
            .unwrap_or_default();
        println!(
            "    Chromium page: {}",
            state
                .as_str()
                .unwrap_or("?")
                .chars()
                .take(900)
                .collect::<String>()
        );
        sim.user_leave(&party.session_id);
        Ok((
            (cpu1 - cpu0) / wall * 60.0,
            pss_peak as f64 / 1024.0,
            pss_peak.saturating_sub(pss_base) as f64 / 1024.0,
            audible.iter().filter(|a| **a).count(),
        ))
    })();
    // Chromium is this bench's own child: end it by its pid.
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&profile);
    result
}

/// The OBS side of the comparison, in a process of its own (this binary, role `obs-process`).
fn obs_side(sim: &psn_sim::SimHandle, seconds: u64) -> Result<BTreeMap<String, String>, String> {
    let party = sim.start_party_with("OBS", &voices_at("obs_", true, 0, 48_000));
    let _end = EndParty(sim, party.session_id.clone());
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // `BENCH_OBS_WRAPPER="heaptrack -o FILE"` runs the OBS process under a tool (what its
    // memory is: docs/performance.md, "Memory added to OBS").
    let wrapper = std::env::var("BENCH_OBS_WRAPPER").unwrap_or_default();
    let mut command: Vec<std::ffi::OsString> = wrapper.split_whitespace().map(Into::into).collect();
    command.push(exe.into());
    let output = std::process::Command::new(&command[0])
        .args(&command[1..])
        .arg("obs-process")
        .envs(sim.plugin_env())
        .env("BENCH_SECONDS", seconds.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("OBS cpu_s="))
        .ok_or_else(|| {
            format!(
                "the OBS process said: {text}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    Ok(line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// Benchmark 3: run by `party_obs compare` (tools/bench.sh).
fn compare() {
    let seconds = env_u64("BENCH_COMPARE_SECONDS", 60);
    let runtime = sim_runtime();
    let sim = runtime
        .block_on(psn_sim::start(psn_sim::SimConfig::default()))
        .expect("psn-sim starts");
    let _context = runtime.enter();
    let obs = if std::env::var("BENCH_COMPARE_SKIP_OBS").is_ok() {
        Err("skipped".to_string())
    } else {
        obs_side(&sim, seconds)
    };
    let web = chromium_side(&runtime, &sim, seconds);
    let mut ok = true;
    let obs_cpu = match &obs {
        Ok(o) => {
            let get = |k: &str| {
                o.get(k)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN)
            };
            println!(
                "RESULT compare: OBS + plugin (libobs host process): {:.2} CPU s per min of audio, {:.1} MiB added to the process (peak {:.0} MiB RSS), heard={}",
                get("cpu_s_per_min"),
                get("added_mib"),
                get("rss_peak_kib") / 1024.0,
                o.get("heard").map_or("?", String::as_str)
            );
            let added = get("cpu_s_per_min") - get("idle_cpu_s_per_min");
            println!(
                "RESULT compare:   of which OBS alone (same process, no party source, before): {:.2} CPU s per min; the plugin's part: {added:.2}",
                get("idle_cpu_s_per_min")
            );
            ok &= get("added_mib") <= 30.0;
            row(
                &format!("memory added to OBS, {MEMBERS} voices"),
                &format!(
                    "**{:.1} MiB** (peak RSS {:.0} MiB; {seconds} s)",
                    get("added_mib"),
                    get("rss_peak_kib") / 1024.0
                ),
                "<= 15 MiB (issue 7: 29 MiB)",
            );
            (get("cpu_s_per_min"), added)
        }
        Err(e) => {
            println!("RESULT compare: the OBS side failed: {e}");
            ok = false;
            (f64::NAN, f64::NAN)
        }
    };
    match &web {
        Ok((cpu, pss_peak, pss_added, audible)) => {
            println!(
                "RESULT compare: headless Chromium (all processes): {cpu:.2} CPU s per min of audio, peak {pss_peak:.0} MiB PSS ({pss_added:.0} MiB added by the party), {audible}/{MEMBERS} members audible in the page"
            );
            println!(
                "RESULT compare: CPU (OBS process with the party)/Chromium = {:.2}; (the plugin's part)/Chromium = {:.2} (goal <= 0.5)",
                obs_cpu.0 / cpu,
                obs_cpu.1 / cpu
            );
            ok &= obs_cpu.1 / cpu <= 0.5;
            row(
                "vs headless Chromium receiving the same voices (CPU)",
                &format!(
                    "**{:.2}x** (the plugin's part {:.2} / Chromium {cpu:.2} CPU s per min; whole OBS process {:.2}x)",
                    obs_cpu.1 / cpu,
                    obs_cpu.1,
                    obs_cpu.0 / cpu
                ),
                "<= 0.25x (issue 7: 0.47x)",
            );
        }
        Err(e) => {
            println!("RESULT compare: the Chromium side failed: {e}");
            ok = false;
        }
    }
    drop(sim);
    println!(
        "compare: {}",
        if ok { "goals met" } else { "goals NOT met" }
    );
}
