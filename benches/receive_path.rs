//! Benchmark 1 of issue 7: the receive path's CPU cost against libopus itself, and the audio
//! path's allocations per block (benchmark 5's in-process half).
//!
//! The same recorded party (benches/support/recorded.rs: 16 members, 10 s each) goes through
//!   (a) bare libopus: one decoder per member, `opus_decode_float` on every packet, nothing else;
//!   (b) the plugin's receive path on virtual time, every 10 ms as the playout clock runs it:
//!       each packet due is handed to its member's feed as the WebRTC peer hands it over
//!       (`PacketSender::send`: the lock-free packet ring), then `PlayoutEngine::tick` (drain
//!       the feed into `voice::MemberVoice`: RTP/TOC/VAD handling, jitter buffer, decode incl.
//!       concealment, the 10 ms pull), the mix and limiter, 17 audio rings (the mix and one per
//!       member, as with one OBS source each), and one `PumpStep` per ring (pop, timestamp,
//!       hand to the output; the output here is a sink: the libobs call
//!       `obs_source_output_audio` is measured in the libobs run, benches/party_obs.rs).
//! Both are timed in thread CPU time (the machine is shared), per run of the whole recording;
//! criterion prints its statistics, and this prints the medians and the ratio (b)/(a).
//!
//! `cargo bench --bench receive_path` (tools/bench.sh runs it). Environment:
//! `RECEIVE_PATH_ONLY=a|b` runs that side once, without criterion (for
//! `valgrind --tool=callgrind --toggle-collect='*run_once*'`, which tools/bench.sh does).

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/recorded.rs"]
mod recorded;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use counting_alloc::{thread_allocations, CountingAllocator};
use cpu_time::ThreadTime;
use criterion::{BatchSize, Criterion};
use obs_psn_party::audio::playout::{MemberInfo, MemberSelector, PlayoutEngine, Target};
use obs_psn_party::audio::pump::{BlockOutput, PumpStats, PumpStep};
use obs_psn_party::audio::ring::{audio_ring, RingReader, BLOCK_FRAMES, DEFAULT_CAPACITY_FRAMES};
use obs_psn_party::party::feed::{member_feed, PacketSender};
use obs_psn_party::voice::member::{MemberConfig, MemberVoice};
use obs_psn_party::voice::peer::RtpEvent;
use recorded::{Recording, CLOCK_RATE, OPUS_PT};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const MEMBERS: usize = 16;
const SECONDS: u64 = 10;
const TICK_NS: u64 = 10_000_000;

// ---------------------------------------------------------------- (a) bare libopus

struct Bare {
    decoders: Vec<opus::Decoder>,
    out: Vec<f32>,
}

fn bare() -> Bare {
    Bare {
        decoders: (0..MEMBERS)
            .map(|_| opus::Decoder::new(48_000, opus::Channels::Mono).unwrap())
            .collect(),
        out: vec![0.0; 5760],
    }
}

#[inline(never)]
fn run_once_bare(rec: &Recording, b: &mut Bare) -> f32 {
    let mut acc = 0.0;
    for p in &rec.packets {
        let n = b.decoders[p.member]
            .decode_float(&p.payload, &mut b.out, false)
            .unwrap();
        acc += b.out[n - 1];
    }
    acc
}

// ---------------------------------------------------------------- (b) the receive path

/// Stands in for `ObsAudioOutput` (src/obs/source.rs): same clock domain, no libobs call.
struct Sink {
    now_ns: u64,
    acc: f32,
}

impl BlockOutput for Sink {
    fn now_ns(&self) -> u64 {
        self.now_ns
    }
    fn output(&mut self, block: &[f32; BLOCK_FRAMES], timestamp_ns: u64) {
        self.acc += block[BLOCK_FRAMES - 1] + (timestamp_ns & 1) as f32;
    }
}

struct Path {
    origin: Instant,
    member_ids: Vec<Arc<str>>,
    senders: Vec<PacketSender>,
    engine: PlayoutEngine,
    pumps: Vec<(RingReader, PumpStep)>,
    stats: PumpStats,
    sink: Sink,
}

fn path() -> Path {
    let origin = Instant::now();
    let mut engine = PlayoutEngine::new();
    let mut senders = Vec::new();
    let mut member_ids = Vec::new();
    let mut pumps = Vec::new();
    for m in 0..MEMBERS {
        let member = MemberVoice::new(MemberConfig::new(CLOCK_RATE, OPUS_PT)).unwrap();
        let (tx, stream) = member_feed(member, origin);
        senders.push(tx);
        member_ids.push(Arc::from(format!("member{m}")));
        let info = MemberInfo {
            account_id: format!("{m}"),
            online_id: format!("member{m}"),
            in_mix: true,
            takes_slot: true,
        };
        engine.add_member(info, Box::new(stream));
    }
    // The mix and every member each in an OBS source of their own.
    for id in 0..=MEMBERS {
        let (writer, reader) = audio_ring(DEFAULT_CAPACITY_FRAMES);
        let target = if id == 0 {
            Target::Mix
        } else {
            Target::Member(MemberSelector::Slot(id))
        };
        engine.subscribe(id as u64, target, writer);
        pumps.push((reader, PumpStep::new()));
    }
    Path {
        origin,
        member_ids,
        senders,
        engine,
        pumps,
        stats: PumpStats::default(),
        sink: Sink {
            now_ns: 0,
            acc: 0.0,
        },
    }
}

/// The recording's packets, `loops` times over, with sequence numbers, timestamps and send
/// times carried on, so a longer run is one continuous stream per member.
fn packets_looped(
    rec: &Recording,
    loops: u64,
) -> impl Iterator<Item = recorded::RecordedPacket> + '_ {
    let sent = rec.sent_per_member();
    let ts_per_loop = (rec.duration_ns / 1_000_000 * u64::from(CLOCK_RATE) / 1000) as u32;
    (0..loops).flat_map(move |l| {
        let sent = sent.clone();
        rec.packets.iter().map(move |p| {
            let mut p = p.clone();
            p.seq = p.seq.wrapping_add((sent[p.member] as u64 * l) as u16);
            p.timestamp = p.timestamp.wrapping_add(ts_per_loop.wrapping_mul(l as u32));
            p.send_ns += rec.duration_ns * l;
            p
        })
    })
}

impl Path {
    fn hand_over(&mut self, p: &recorded::RecordedPacket) {
        let event = RtpEvent {
            member: self.member_ids[p.member].clone(),
            ssrc: p.member as u32,
            payload_type: OPUS_PT,
            seq: p.seq,
            timestamp: p.timestamp,
            marker: p.marker,
            payload: p.payload.clone(),
            arrival: self.origin + Duration::from_nanos(p.send_ns),
        };
        self.senders[p.member].send(&event);
    }

    /// One 10 ms block at `now`: the playout tick and every pump.
    fn block(&mut self, now: u64) {
        self.engine.tick(now);
        self.sink.now_ns = now;
        for (reader, pump) in &mut self.pumps {
            pump.run(reader, &mut self.sink, &self.stats);
        }
    }
}

#[inline(never)]
fn run_once_path(rec: &Recording, p: &mut Path) -> f32 {
    let mut packets = rec.packets.iter().peekable();
    let ticks = rec.duration_ns / TICK_NS + 10;
    for t in 0..ticks {
        let now = t * TICK_NS;
        while let Some(pkt) = packets.next_if(|pkt| pkt.send_ns <= now) {
            p.hand_over(pkt);
        }
        p.block(now);
    }
    p.sink.acc
}

// ---------------------------------------------------------------- the allocation count

/// Ten minutes of the party through the whole path on one thread, counting allocations per
/// 10 ms block (packets handed over + tick + pumps) after the first second.
fn allocations_per_block(rec: &Recording, minutes: u64) -> (u64, u64, u64) {
    let mut p = path();
    let loops = (minutes * 60_000_000_000).div_ceil(rec.duration_ns);
    let mut packets = packets_looped(rec, loops).peekable();
    let ticks = minutes * 60 * 100;
    let (mut blocks, mut allocating_blocks, mut allocations) = (0, 0, 0);
    // The packets due are taken from the recording before counting: making them is the
    // sender's business, handing them over and everything after is the audio path's.
    let mut due = Vec::with_capacity(256);
    for t in 0..ticks {
        let now = t * TICK_NS;
        due.clear();
        while let Some(pkt) = packets.next_if(|pkt| pkt.send_ns <= now) {
            due.push(pkt);
        }
        let before = thread_allocations();
        for pkt in &due {
            p.hand_over(pkt);
        }
        p.block(now);
        let n = thread_allocations() - before;
        if t >= 100 {
            blocks += 1;
            allocations += n;
            allocating_blocks += u64::from(n > 0);
        }
    }
    black_box(p.sink.acc);
    (blocks, allocating_blocks, allocations)
}

/// What each member's pipeline did with the recording (decodes, FEC, concealment).
fn member_stats(rec: &Recording) {
    let origin = Instant::now();
    for m in 0..MEMBERS {
        let member = MemberVoice::new(MemberConfig::new(CLOCK_RATE, OPUS_PT)).unwrap();
        let (mut tx, mut stream) = member_feed(member, origin);
        let id: Arc<str> = Arc::from("m");
        let mut packets = rec.packets.iter().filter(|p| p.member == m).peekable();
        let mut out = [0f32; BLOCK_FRAMES];
        for t in 0..rec.duration_ns / TICK_NS + 10 {
            let now = t * TICK_NS;
            while let Some(p) = packets.next_if(|p| p.send_ns <= now) {
                tx.send(&RtpEvent {
                    member: id.clone(),
                    ssrc: 1,
                    payload_type: OPUS_PT,
                    seq: p.seq,
                    timestamp: p.timestamp,
                    marker: p.marker,
                    payload: p.payload.clone(),
                    arrival: origin + Duration::from_nanos(p.send_ns),
                });
            }
            use obs_psn_party::audio::playout::MemberAudio;
            stream.pull_10ms(now, &mut out);
        }
        println!(
            "member {m}: {:?} {:?} sent {}",
            stream.member().decoder().stats(),
            stream.member().stats(),
            rec.sent_per_member()[m]
        );
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rec = Recording::encode(MEMBERS, SECONDS, 7);
    match std::env::var("RECEIVE_PATH_ONLY").as_deref() {
        Ok("a") => {
            black_box(run_once_bare(&rec, &mut bare()));
            return;
        }
        Ok("b") => {
            black_box(run_once_path(&rec, &mut path()));
            return;
        }
        Ok("stats") => {
            member_stats(&rec);
            return;
        }
        Ok("alloc") => {
            print_allocations(&rec);
            return;
        }
        _ => {}
    }
    let sent: usize = rec.packets.len();
    println!(
        "recording: {MEMBERS} members x {SECONDS} s, {sent} packets sent of {} frames ({:.0} % DTX)",
        rec.frames * MEMBERS as u64,
        100.0 - 100.0 * sent as f64 / (rec.frames * MEMBERS as u64) as f64
    );

    let mut cpu_a = Vec::new();
    let mut cpu_b = Vec::new();
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    {
        let mut group = c.benchmark_group("receive_path_cpu_time");
        group.bench_function("a_bare_libopus", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut state = bare();
                    let t = ThreadTime::now();
                    black_box(run_once_bare(&rec, &mut state));
                    let d = t.elapsed();
                    cpu_a.push(d);
                    total += d;
                }
                total
            })
        });
        group.bench_function("b_plugin_receive_path", |b| {
            b.iter_batched(
                path,
                |mut state| {
                    let t = ThreadTime::now();
                    black_box(run_once_path(&rec, &mut state));
                    cpu_b.push(t.elapsed());
                    state
                },
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
    c.final_summary();
    if cpu_a.is_empty() || cpu_b.is_empty() {
        return; // a filter left one side out
    }
    let audio_s = (SECONDS * MEMBERS as u64) as f64;
    let (a, b) = (median(&mut cpu_a), median(&mut cpu_b));
    println!();
    println!("RESULT receive_path: CPU time per run of {MEMBERS} members x {SECONDS} s (median of {} / {} runs)", cpu_a.len(), cpu_b.len());
    println!(
        "RESULT   (a) bare libopus        {:8.2} ms  ({:.3} % of one core per member)",
        a.as_secs_f64() * 1e3,
        a.as_secs_f64() / audio_s * 100.0
    );
    println!(
        "RESULT   (b) plugin receive path {:8.2} ms  ({:.3} % of one core per member)",
        b.as_secs_f64() * 1e3,
        b.as_secs_f64() / audio_s * 100.0
    );
    println!(
        "RESULT   ratio (b)/(a) = {:.3}   (goal <= 1.25)",
        b.as_secs_f64() / a.as_secs_f64()
    );
    println!(
        "RESULT | receive path CPU time / bare libopus, {MEMBERS} members (issue 7) | {:.2} ({:.1} / {:.1} ms per {} s of audio) | <= 1.25 |",
        b.as_secs_f64() / a.as_secs_f64(),
        b.as_secs_f64() * 1e3,
        a.as_secs_f64() * 1e3,
        SECONDS * MEMBERS as u64
    );
    print_allocations(&rec);
}

fn print_allocations(rec: &Recording) {
    let minutes = std::env::var("ALLOC_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10);
    let (blocks, allocating, allocations) = allocations_per_block(rec, minutes);
    println!(
        "RESULT allocations on the audio path: {allocations} in {blocks} blocks of 10 ms \
         ({allocating} blocks allocated; {minutes} min of {MEMBERS} members, first second skipped)"
    );
    println!(
        "RESULT | allocations on the audio path per 10 ms block, {MEMBERS} members (issue 7) | {allocations} in {blocks} blocks ({minutes} min) | 0 |"
    );
}
