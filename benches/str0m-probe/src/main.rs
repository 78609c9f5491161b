//! Issue 21's probe: the plugin's webrtc-rs receive peer against a str0m receive peer (one
//! socket, one thread, sans-IO), in one process, on the same psn-sim voices.
//!
//! `str0m-probe [--seconds 60] [--rounds 2] [--loads 14x40,8x20]`: for each load (voices x
//! packet ms, talking in spurts; `14x40s`: connected and silent, only DTX refreshes), `rounds`
//! rounds of three runs one after the other (webrtc-rs, str0m, str0m on a 10 ms tick), so a
//! busy machine's load falls on every side. Each run is a fresh party of psn-sim voice members
//! (a child process, `senders`) whose offers the side answers. A run measures its side's
//! threads over `seconds` once every member is connected and heard: CPU time (schedstat),
//! voluntary switches (wake-ups), packets taken into the rings, and the heap and RSS the side
//! added. A run counts only if its side received exactly the packets the members sent
//! (psn-sim's counters, after the members stop): otherwise it is printed as VOID and left out.
//! docs/decisions/0012-str0m-or-webrtc-rs.md has the figures and what they decide.

mod rings;
mod senders;
mod str0m_side;
mod webrtc_side;

#[allow(dead_code)]
#[path = "../../support/thread_stats.rs"]
mod thread_stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_psn_party::obs::host::heap_in_use_bytes;

use rings::{MemberFeed, Rings};
use senders::{wait_connected, Load, Offer, Senders};
use str0m_side::Str0mSide;
use webrtc_side::WebrtcSide;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    WebrtcRs,
    Str0m,
    /// str0m, its thread waking once every 10 ms (the playout's pace) to read what came.
    Str0mTicked,
}

/// Every side, in the order each round runs them.
const KINDS: [Kind; 3] = [Kind::WebrtcRs, Kind::Str0m, Kind::Str0mTicked];

/// How often the ticked str0m side wakes.
const TICK: Duration = Duration::from_millis(10);

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::WebrtcRs => "webrtc-rs",
            Kind::Str0m => "str0m",
            Kind::Str0mTicked => "str0m-tick10ms",
        }
    }

    fn counts_thread(self, name: &str) -> bool {
        match self {
            Kind::WebrtcRs => webrtc_side::is_side_thread(name),
            Kind::Str0m | Kind::Str0mTicked => name == str0m_side::THREAD,
        }
    }
}

enum Side {
    WebrtcRs(WebrtcSide),
    Str0m(Str0mSide),
}

impl Side {
    fn start(kind: Kind) -> Result<Self, String> {
        Ok(match kind {
            Kind::WebrtcRs => Side::WebrtcRs(WebrtcSide::start()?),
            Kind::Str0m => Side::Str0m(Str0mSide::start(None)?),
            Kind::Str0mTicked => Side::Str0m(Str0mSide::start(Some(TICK))?),
        })
    }

    fn answer(&mut self, offer: &Offer, feed: Arc<MemberFeed>) -> Result<String, String> {
        match self {
            Side::WebrtcRs(s) => s.answer(offer, feed),
            Side::Str0m(s) => s.answer(offer, feed),
        }
    }

    /// Closes the side; what it has to say for the report.
    fn close(self) -> Result<String, String> {
        match self {
            Side::WebrtcRs(s) => {
                let note = format!("unrouted={}", s.unrouted());
                s.close();
                Ok(note)
            }
            Side::Str0m(s) => {
                let st = s.close()?;
                if st.rtc_errors > 0 {
                    return Err(format!("str0m peers failed: {st:?}"));
                }
                Ok(format!(
                    "recv_calls={} datagrams={} per_call={:.2} not_accepted={} disconnects={}",
                    st.recv_calls,
                    st.datagrams,
                    st.datagrams as f64 / st.recv_calls.max(1) as f64,
                    st.not_accepted,
                    st.disconnects
                ))
            }
        }
    }
}

/// One run's figures.
#[derive(Debug, Clone)]
struct Run {
    cpu_s_per_min: f64,
    wakeups_per_s: f64,
    involuntary_per_s: f64,
    window_packets: u64,
    heap_added_mib: f64,
    rss_added_mib: f64,
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn heap_bytes() -> u64 {
    heap_in_use_bytes().unwrap_or(0) as u64
}

fn mib(delta: i128) -> f64 {
    delta as f64 / (1024.0 * 1024.0)
}

fn run_once(
    senders: &mut Senders,
    kind: Kind,
    load: Load,
    seconds: u64,
    name: &str,
) -> Result<Run, String> {
    let (heap0, rss0) = (heap_bytes(), rss_bytes());
    let mut rings = Rings::start();
    let mut side = Side::start(kind)?;
    senders.party(name, load)?;
    let mut answered = 0;
    while answered < load.members {
        let offer = senders.next_offer(Duration::from_secs(30))?;
        let feed = rings.member(&offer.account);
        let answer = side
            .answer(&offer, feed)
            .map_err(|e| format!("{}: answering {}: {e}", kind.name(), offer.account))?;
        if answered == 0 && std::env::var_os("STR0M_PROBE_SHOW_ANSWER").is_some() {
            eprintln!("--- {}'s answer ---\n{answer}", kind.name());
        }
        senders.answer(&offer.account, &answer)?;
        answered += 1;
    }
    wait_connected(senders, load.members, Duration::from_secs(30))?;
    let end = Instant::now() + Duration::from_secs(30);
    while rings.members_fed() < load.members {
        if Instant::now() > end {
            return Err(format!(
                "{}: only {} of {} members heard within 30 s",
                kind.name(),
                rings.members_fed(),
                load.members
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the connections' start (DTLS, first RTCP) pass before the window.
    std::thread::sleep(Duration::from_secs(3));

    let t0 = thread_stats::sample();
    let (received0, _) = rings.counts();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let t1 = thread_stats::sample();
    let (received1, _) = rings.counts();
    let elapsed = start.elapsed().as_secs_f64();
    let (heap1, rss1) = (heap_bytes(), rss_bytes());

    // The members stop; what they sent over the whole run must all have arrived.
    senders.mute()?;
    std::thread::sleep(Duration::from_secs(1));
    let (status, rejections) = senders.status()?;
    std::thread::sleep(Duration::from_millis(500));
    let sent: u64 = status.iter().map(|m| m.sent).sum();
    let (received, dropped) = rings.counts();
    senders.end_party()?;
    let note = side.close()?;

    let u = thread_stats::usage(&t0, &t1, |n| kind.counts_thread(n));
    // Every thread of the process that ran in the window, by name: nothing of a side's work may
    // hide in a thread its name filter does not count.
    let names: std::collections::BTreeSet<&str> = t1.values().map(|t| t.name.as_str()).collect();
    let threads: Vec<String> = names
        .iter()
        .map(|n| (n, thread_stats::usage(&t0, &t1, |m| m == *n).cpu_s))
        .filter(|(_, cpu)| *cpu > 0.0005)
        .map(|(n, cpu)| format!("{n}:{cpu:.3}s"))
        .collect();
    println!("THREADS side={} {}", kind.name(), threads.join(" "));
    let run = Run {
        cpu_s_per_min: u.cpu_s / (elapsed / 60.0),
        wakeups_per_s: u.voluntary as f64 / elapsed,
        involuntary_per_s: u.nonvoluntary as f64 / elapsed,
        window_packets: received1 - received0,
        heap_added_mib: mib(i128::from(heap1) - i128::from(heap0)),
        rss_added_mib: mib(i128::from(rss1) - i128::from(rss0)),
    };
    println!(
        "RUN side={} load={} cpu_s_per_min={:.3} wakeups_per_s={:.1} involuntary_per_s={:.1} \
         threads={} window_packets={} packets_per_s={:.1} total_received={received} total_sent={sent} \
         ring_dropped={dropped} heap_added_mib={:.2} rss_added_mib={:.2} {note}",
        kind.name(),
        load.label(),
        run.cpu_s_per_min,
        run.wakeups_per_s,
        run.involuntary_per_s,
        u.threads,
        run.window_packets,
        run.window_packets as f64 / elapsed,
        run.heap_added_mib,
        run.rss_added_mib,
    );
    if !rejections.is_empty() {
        return Err(format!("psn-sim rejected: {rejections:?}"));
    }
    if received != sent {
        // Which members, and whether their first packet was the one missing.
        let short: Vec<String> = status
            .iter()
            .filter_map(|m| {
                let feed = rings.members.iter().find(|f| f.account == m.account)?;
                (feed.received() != m.sent).then(|| {
                    format!(
                        "member {} sent {} received {} first_seq sent {} received {:?}",
                        m.index,
                        m.sent,
                        feed.received(),
                        Load::first_seq(m.index),
                        feed.first_seq()
                    )
                })
            })
            .collect();
        return Err(format!(
            "VOID: {} received {received} packets, the members sent {sent}: {}",
            kind.name(),
            short.join("; ")
        ));
    }
    Ok(run)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.3}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn report(load: Load, runs: &[(Kind, Run)]) {
    let mut med = vec![];
    for kind in KINDS {
        let of: Vec<&Run> = runs
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, r)| r)
            .collect();
        let col = |f: fn(&Run) -> f64| of.iter().map(|r| f(r)).collect::<Vec<f64>>();
        let cpu = col(|r| r.cpu_s_per_min);
        let wake = col(|r| r.wakeups_per_s);
        let heap = col(|r| r.heap_added_mib);
        let rss = col(|r| r.rss_added_mib);
        let packets: Vec<String> = of.iter().map(|r| r.window_packets.to_string()).collect();
        println!(
            "RESULT load={} side={} runs={} cpu_s_per_min={:.3} [{}] wakeups_per_s={:.1} [{}] \
             heap_added_mib={:.2} [{}] rss_added_mib={:.2} [{}] window_packets=[{}]",
            load.label(),
            kind.name(),
            of.len(),
            median(cpu.clone()),
            list(&cpu),
            median(wake.clone()),
            list(&wake),
            median(heap.clone()),
            list(&heap),
            median(rss.clone()),
            list(&rss),
            packets.join(","),
        );
        med.push((
            median(cpu),
            median(wake),
            median(heap),
            median(rss),
            of.len(),
        ));
    }
    let a = med[0];
    for (kind, b) in KINDS.iter().zip(&med).skip(1) {
        if a.4 == 0 || b.4 == 0 {
            println!(
                "RESULT load={} ratio {}/webrtc-rs: none (a side has no valid run)",
                load.label(),
                kind.name()
            );
            continue;
        }
        println!(
            "RESULT load={} ratio {}/webrtc-rs cpu={:.2} wakeups={:.2} heap_added={:.2} rss_added={:.2}",
            load.label(),
            kind.name(),
            b.0 / a.0,
            b.1 / a.1,
            b.2 / a.2,
            b.3 / a.3
        );
    }
}

struct Options {
    seconds: u64,
    rounds: usize,
    loads: Vec<Load>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        seconds: 60,
        rounds: 2,
        loads: vec![
            Load {
                members: 14,
                ptime_ms: 40,
                silent: false,
            },
            Load {
                members: 8,
                ptime_ms: 20,
                silent: false,
            },
        ],
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--rounds" => o.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--loads" => {
                o.loads = value()?
                    .split(',')
                    .map(|l| {
                        // NxMS, or NxMSs for a silent party.
                        let (m, p) = l.split_once('x').ok_or(format!("load {l}: NxMS"))?;
                        let silent = p.ends_with('s');
                        Ok(Load {
                            members: m.parse().map_err(|e| format!("load {l}: {e}"))?,
                            ptime_ms: p
                                .trim_end_matches('s')
                                .parse()
                                .map_err(|e| format!("load {l}: {e}"))?,
                            silent,
                        })
                    })
                    .collect::<Result<_, String>>()?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("senders") {
        if let Err(e) = senders::serve() {
            eprintln!("senders: {e}");
            std::process::exit(1);
        }
        return;
    }
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("str0m-probe: {e}");
            std::process::exit(2);
        }
    };
    let mut senders = match Senders::spawn() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("str0m-probe: {e}");
            std::process::exit(1);
        }
    };
    let mut void = 0;
    for (l, load) in o.loads.iter().enumerate() {
        let mut runs = vec![];
        for round in 0..o.rounds {
            for (k, kind) in KINDS.into_iter().enumerate() {
                // A fresh party per run, its members' online ids unique in the simulator.
                let name = format!("l{l}r{round}k{k}");
                senders.discard_pending();
                match run_once(&mut senders, kind, *load, o.seconds, &name) {
                    Ok(r) => runs.push((kind, r)),
                    Err(e) => {
                        void += 1;
                        // The party may still be there (a run that stopped half-way).
                        let _ = senders.end_party();
                        println!("VOID side={} load={}: {e}", kind.name(), load.label());
                    }
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        }
        report(*load, &runs);
    }
    if void > 0 {
        std::process::exit(1);
    }
}
