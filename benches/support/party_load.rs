//! A party in libobs under a given load, measured: the plugin's threads' CPU time and wake-ups,
//! OBS's audio buffering, the timestamps OBS's capture callbacks saw, memory, and the packets
//! the members sent in the window, decoded again by bare libopus as the reference.
//! benches/party_obs.rs runs its scenarios (steady, pair, silent, wake, stress) through it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use obs_psn_party::obs::host::{Captured, ObsHost};
use psn_sim::voice::{MemberSpec, VoiceSpec};

use crate::bare_decode::{self, MemberPackets};
use crate::support::libobs::EndParty;
use crate::support::{self, ensure};
use crate::thread_stats::{self, ThreadSample, Usage};
use crate::{first_audible, AUDIBLE, TONES};

/// OBS's output rate in the test host (src/obs/host.rs).
const RATE: u64 = 48_000;
/// A capture callback whose timestamp is this far from where the previous block ended is a
/// jump (the pump re-anchored its clock, or OBS reset the source's timing).
const JUMP_NS: i64 = 1_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Talk {
    /// Talkspurts of 0.5..1.1 s, pauses of 0.7..1.5 s, different per member.
    Spurts,
    Continuous,
    /// Connected, nobody talking: digital silence, so libopus sends only DTX refreshes.
    Silent,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    /// Also the members' online id prefix.
    pub name: &'static str,
    pub members: usize,
    pub clock_rate: u32,
    pub ptime_ms: u32,
    pub talk: Talk,
    pub seconds: u64,
    /// Capture every member source too (timestamps of each), not only the mix. The capture
    /// callbacks run in the plugin's pump threads, so this is off where CPU is the figure.
    pub capture_members: bool,
    /// `stress-ng --cpu 2` runs during the window.
    pub stress: bool,
}

impl Scenario {
    /// `members` voices as a PS5 sends them (a 16 kHz Opus clock, 40 ms packets), talking as
    /// `talk` for `seconds`; only the mix is captured, nothing else loads the machine.
    pub fn ps5(name: &'static str, members: usize, talk: Talk, seconds: u64) -> Scenario {
        Scenario {
            name,
            members,
            clock_rate: 16_000,
            ptime_ms: 40,
            talk,
            seconds,
            capture_members: false,
            stress: false,
        }
    }

    pub fn voice(&self, i: usize) -> (VoiceSpec, f64) {
        let tone = TONES[i % TONES.len()];
        let mut voice = VoiceSpec {
            tone_hz: Some(tone),
            clock_rate: self.clock_rate,
            ptime_ms: self.ptime_ms,
            ..VoiceSpec::default()
        };
        match self.talk {
            Talk::Spurts => {
                voice.talk_ms = Some(500 + 41 * i as u64);
                voice.silence_ms = Some(700 + 53 * i as u64);
            }
            Talk::Continuous => {}
            Talk::Silent => voice.amplitude = 0.0,
        }
        (voice, tone)
    }

    fn online_id(&self, i: usize) -> String {
        format!("{}{i:02}_ps", self.prefix())
    }

    fn prefix(&self) -> String {
        format!("{}_", self.name)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} members {}, Opus {} kHz RTP clock, {} ms packets{}",
            self.members,
            match self.talk {
                Talk::Spurts => "talking in spurts",
                Talk::Continuous => "talking continuously",
                Talk::Silent => "silent (DTX)",
            },
            self.clock_rate / 1000,
            self.ptime_ms,
            if self.stress {
                ", under stress-ng --cpu 2"
            } else {
                ""
            }
        )
    }
}

#[derive(Debug, Default)]
pub struct Measured {
    pub seconds: f64,
    /// All the plugin's threads (`psn-…`).
    pub plugin: Usage,
    /// CPU seconds and voluntary switches by thread group.
    pub groups: BTreeMap<&'static str, Usage>,
    /// Bare libopus decoding the window's packets, thread CPU time.
    pub bare: Duration,
    pub packets: u64,
    /// OBS grew its audio buffering after the first second of audio.
    pub late_buffering: usize,
    /// OBS's own timing resets of a source (TS_SMOOTHING, "jumped by", restarts).
    pub obs_resets: usize,
    pub quiet_windows: usize,
    pub windows: usize,
    /// Timestamp jumps in the capture callbacks (all captured sources), and the worst.
    pub jumps: u64,
    /// New runs after a member's silence (not jumps: nothing was heard in between).
    pub resumes: u64,
    pub worst_jump_ms: f64,
    pub callbacks: u64,
    pub rss_before_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
}

impl Measured {
    /// Plugin CPU seconds per minute of audio.
    pub fn plugin_s_per_min(&self) -> f64 {
        self.plugin.cpu_s / self.seconds * 60.0
    }

    pub fn bare_s_per_min(&self) -> f64 {
        self.bare.as_secs_f64() / self.seconds * 60.0
    }

    pub fn wakeups_per_s(&self) -> f64 {
        self.plugin.voluntary as f64 / self.seconds
    }

    pub fn core_percent(&self) -> f64 {
        self.plugin.cpu_s / self.seconds * 100.0
    }
}

/// Which part a thread belongs to.
pub fn thread_group(name: &str) -> &'static str {
    if name.starts_with("psn-pump") || name.starts_with("psn-delivery") {
        "plugin: pumps, delivery (into obs_source_output_audio)"
    } else if name.starts_with("psn-playout") {
        "plugin: playout (jitter, decode, mix, rings)"
    } else if name.starts_with("psn-rt") {
        "plugin: network (WebRTC peers, PSN)"
    } else if thread_stats::is_plugin_thread(name) {
        "plugin: other psn-* threads"
    } else if name.starts_with("sim-rt") {
        "psn-sim (the senders: encode, SRTP)"
    } else if name.contains("audio") {
        "OBS audio thread"
    } else {
        "other (OBS video/graphics, bench)"
    }
}

/// Timestamp continuity of one capture, kept across the windows it is cleared in.
#[derive(Default)]
struct Continuity {
    /// The previous block: timestamp, frames, and whether it was silent.
    last: Option<(u64, u32, bool)>,
    jumps: u64,
    /// Forward steps after a silent block: a member who stopped talking outputs nothing
    /// (decision 0010) and starts a new run when they talk again. Not heard, not a re-anchor.
    resumes: u64,
    worst_ns: i64,
    callbacks: u64,
}

/// Below this (-40 dBFS) a block is silence: psn-sim's voices talk at about -18 dBFS.
const SILENT_PEAK: f32 = 0.01;

impl Continuity {
    fn scan(&mut self, c: &Captured) {
        let mut next = 0usize;
        for &(ts, frames) in &c.blocks {
            let block = c.samples.iter().skip(next).take(frames as usize);
            let silent = block.fold(0.0f32, |peak, s| peak.max(s.abs())) < SILENT_PEAK;
            next += frames as usize;
            if let Some((t0, f0, was_silent)) = self.last {
                let expected = t0 as i64 + i64::from(f0) * 1_000_000_000 / RATE as i64;
                let step = ts as i64 - expected;
                if step > JUMP_NS && was_silent {
                    self.resumes += 1;
                } else {
                    self.worst_ns = self.worst_ns.max(step.abs());
                    self.jumps += u64::from(step.abs() > JUMP_NS);
                }
            }
            self.last = Some((ts, frames, silent));
            self.callbacks += 1;
        }
    }
}

/// `stress-ng --cpu 2` for the window; ended by its pid when dropped.
struct Stress(std::process::Child);

impl Stress {
    fn start(seconds: u64) -> Result<Stress, String> {
        std::process::Command::new("stress-ng")
            .args(["--cpu", "2", "--timeout", &format!("{}s", seconds + 60)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(Stress)
            .map_err(|e| format!("stress-ng: {e} (tools/bench.sh installs it)"))
    }
}

impl Drop for Stress {
    fn drop(&mut self) {
        // SIGTERM, not kill()'s SIGKILL: stress-ng then ends its workers itself (a SIGKILL
        // would leave them running until the timeout).
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn all_connected(sim: &psn_sim::SimHandle, sc: &Scenario) -> bool {
    let prefix = sc.prefix();
    sim.voice_status()
        .iter()
        .filter(|v| v.online_id.starts_with(&prefix) && v.state == "connected")
        .count()
        == sc.members
}

/// Packets sent so far by each member of the scenario.
fn packets_sent(sim: &psn_sim::SimHandle, sc: &Scenario) -> Vec<u64> {
    let status = sim.voice_status();
    (0..sc.members)
        .map(|i| {
            let id = sc.online_id(i);
            status
                .iter()
                .find(|v| v.online_id == id)
                .map_or(0, |v| v.packets_sent)
        })
        .collect()
}

/// Runs `sc`: the party with a mix source on an output channel and one source per member,
/// settled, then measured for `sc.seconds`.
pub fn run(sim: &psn_sim::SimHandle, host: &ObsHost, sc: &Scenario) -> Result<Measured, String> {
    let rss_before = support::rss_kib();
    let specs: Vec<MemberSpec> = (0..sc.members)
        .map(|i| MemberSpec::with_voice(&sc.online_id(i), "PS5", sc.voice(i).0))
        .collect();
    let party = sim.start_party_with(sc.name, &specs);
    let end_party = EndParty(sim, party.session_id.clone());
    let mut mix = host.create_source("psn_party", &format!("{}-mix", sc.name), "{}")?;
    mix.set_output_channel(1);
    let mix_audio = mix.start_capture();
    let mut captures: Vec<Arc<Mutex<Captured>>> = vec![mix_audio.clone()];
    let mut members = Vec::new();
    for i in 0..sc.members {
        let settings = format!(r#"{{"member": "slot:{}"}}"#, i + 1);
        let mut source =
            host.create_source("psn_party_member", &format!("{}{i}", sc.name), &settings)?;
        if sc.capture_members {
            captures.push(source.start_capture());
        }
        members.push(source);
    }
    let connected = support::wait_for(Duration::from_secs(30), || all_connected(sim, sc));
    ensure(connected.is_some(), || {
        format!("{}: not all members connected", sc.name)
    })?;
    let audio_started = if sc.talk == Talk::Silent {
        Instant::now()
    } else {
        let heard = support::wait_for(Duration::from_secs(10), || {
            first_audible(&mix_audio.lock().unwrap(), 0).is_some()
        });
        ensure(heard.is_some(), || {
            format!("{}: the mix never became audible", sc.name)
        })?;
        first_audible(&mix_audio.lock().unwrap(), 0).unwrap()
    };
    let stress = if sc.stress {
        Some(Stress::start(sc.seconds)?)
    } else {
        None
    };
    // Settle: every jitter buffer has seen some packets (and stress-ng has its workers up).
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "    {}: measuring {} s of {}",
        sc.name,
        sc.seconds,
        sc.describe()
    );
    let mut continuity: Vec<Continuity> = captures.iter().map(|_| Continuity::default()).collect();
    for (c, k) in captures.iter().zip(&mut continuity) {
        // Only what comes in the window counts; the first block after the clear is the anchor.
        c.lock().unwrap().clear();
        k.last = None;
    }
    let sent0 = packets_sent(sim, sc);
    let threads0 = thread_stats::sample();
    let log_from = Instant::now();
    let start = Instant::now();
    let mut m = Measured {
        rss_before_kib: rss_before,
        rss_peak_kib: support::rss_kib(),
        ..Measured::default()
    };
    while start.elapsed() < Duration::from_secs(sc.seconds) {
        let left = Duration::from_secs(sc.seconds).saturating_sub(start.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(5)));
        for (i, (c, k)) in captures.iter().zip(&mut continuity).enumerate() {
            let mut audio = c.lock().unwrap();
            k.scan(&audio);
            if i == 0 && sc.talk != Talk::Silent {
                m.windows += 1;
                // Several voices in spurts: some are always talking within 5 s.
                if !audio.samples.iter().any(|s| s.abs() > AUDIBLE) {
                    m.quiet_windows += 1;
                }
            }
            audio.clear();
        }
        m.rss_peak_kib = m.rss_peak_kib.max(support::rss_kib());
    }
    let threads1 = thread_stats::sample();
    m.seconds = start.elapsed().as_secs_f64();
    let sent1 = packets_sent(sim, sc);
    drop(stress);
    m.rss_end_kib = support::rss_kib();
    m.plugin = thread_stats::usage(&threads0, &threads1, thread_stats::is_plugin_thread);
    m.groups = groups(&threads0, &threads1);
    for k in &continuity {
        m.jumps += k.jumps;
        m.resumes += k.resumes;
        m.callbacks += k.callbacks;
        m.worst_jump_ms = m.worst_jump_ms.max(k.worst_ns as f64 / 1e6);
    }
    drop(members);
    drop(mix);
    drop(end_party);
    let log = host.log_lines();
    let in_window = |l: &&obs_psn_party::obs::host::LogLine| l.at >= log_from;
    m.late_buffering = log
        .iter()
        .filter(|l| {
            l.text.contains("audio buffering") && l.at > audio_started + Duration::from_secs(1)
        })
        .count();
    m.obs_resets = log
        .iter()
        .filter(in_window)
        .filter(|l| {
            l.text.contains("TS_SMOOTHING")
                || l.text.contains("Restarting source audio")
                || l.text.contains("jumped by")
        })
        .count();
    for l in log.iter().filter(in_window).filter(|l| {
        l.text.contains("audio buffering")
            || l.text.contains("TS_SMOOTHING")
            || l.text.contains("jumped by")
    }) {
        println!(
            "    +{:.2} s: {}",
            l.at.duration_since(start).as_secs_f64(),
            l.text
        );
    }

    // The reference: the same packets through bare libopus, in this thread's CPU time.
    let packets: Vec<MemberPackets> = (0..sc.members)
        .map(|i| {
            let (voice, tone) = sc.voice(i);
            bare_decode::sent_packets(&voice, tone, sent0[i], sent1[i])
        })
        .collect();
    m.packets = packets.iter().map(|p| p.window.len() as u64).sum();
    let expected: u64 = sent0.iter().zip(&sent1).map(|(a, b)| b - a).sum();
    ensure(m.packets == expected, || {
        format!(
            "{}: made {} packets again, the members sent {expected}",
            sc.name, m.packets
        )
    })?;
    m.bare = bare_decode::decode_cpu(&packets);
    if let Some(dir) = std::env::var_os("BENCH_PACKETS_DIR") {
        let path = std::path::Path::new(&dir).join(format!("{}.packets", sc.name));
        let _ = std::fs::create_dir_all(&dir);
        match bare_decode::save(&path, &packets) {
            Ok(()) => println!("    packets of the window: {}", path.display()),
            Err(e) => println!("    packets not saved: {e}"),
        }
    }
    print(sc, &m);
    Ok(m)
}

fn groups(
    before: &BTreeMap<u32, ThreadSample>,
    after: &BTreeMap<u32, ThreadSample>,
) -> BTreeMap<&'static str, Usage> {
    let names: std::collections::BTreeSet<&'static str> =
        after.values().map(|t| thread_group(&t.name)).collect();
    names
        .into_iter()
        .map(|g| {
            (
                g,
                thread_stats::usage(before, after, |n| thread_group(n) == g),
            )
        })
        .collect()
}

/// The details of a run (the table's rows are printed by the scenarios).
fn print(sc: &Scenario, m: &Measured) {
    println!(
        "RESULT {}: {:.0} s of {}; by thread group: CPU s per minute of audio, wake-ups (voluntary switches) per s",
        sc.name,
        m.seconds,
        sc.describe()
    );
    for (group, u) in &m.groups {
        println!(
            "RESULT   {group:48} {:6.3} s/min {:7.0} wake-ups/s ({} threads)",
            u.cpu_s / m.seconds * 60.0,
            u.voluntary as f64 / m.seconds,
            u.threads
        );
    }
    println!(
        "RESULT   {:48} {:6.3} s/min {:7.0} wake-ups/s ({} threads; {:.2} % of a core; {:.0} timeslices/s, {:.0} preemptions/s)",
        "plugin total",
        m.plugin_s_per_min(),
        m.wakeups_per_s(),
        m.plugin.threads,
        m.core_percent(),
        m.plugin.timeslices as f64 / m.seconds,
        m.plugin.nonvoluntary as f64 / m.seconds
    );
    println!(
        "RESULT   {:48} {:6.3} s/min ({} packets of the window, one decoder per member, thread CPU time)",
        "bare libopus, the same packets",
        m.bare_s_per_min(),
        m.packets
    );
    println!(
        "RESULT   plugin / bare libopus = {:.2}; OBS audio buffering grew {} times after the first second; {} timing resets by OBS; {} timestamp jumps > 1 ms in {} capture callbacks (worst {:.1} ms); {} of {} 5 s windows of the mix silent",
        m.plugin.cpu_s / m.bare.as_secs_f64(),
        m.late_buffering,
        m.obs_resets,
        m.jumps,
        m.callbacks,
        m.worst_jump_ms,
        m.quiet_windows,
        m.windows
    );
    println!(
        "RESULT   resident memory {} MiB before the party, peak {} MiB, {} MiB at the end (this process holds psn-sim too)",
        m.rss_before_kib / 1024,
        m.rss_peak_kib / 1024,
        m.rss_end_kib / 1024
    );
}

/// One row of the issue's table: `RESULT | figure | measured | goal |` (a Markdown row).
pub fn row(figure: &str, measured: &str, goal: &str) {
    println!("RESULT | {figure} | {measured} | {goal} |");
}
