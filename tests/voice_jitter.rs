//! Long runs of the jitter buffer alone on virtual time (no codec: fake Opus payloads), to
//! check that clock drift is absorbed over half an hour. Run with `--nocapture` for figures.

use obs_psn_party::voice::jitter::{Frame, JitterBuffer, JitterConfig, Packet};
use obs_psn_party::voice::BLOCK;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const MS: u64 = 1_000_000;

struct Figures {
    delay_first: f64,
    delay_last: f64,
    delay_min: f64,
    delay_max: f64,
    target_min: f32,
    target_max: f32,
    plc_ms: u64,
    stalls: u64,
    anchors: u64,
    fec: u64,
}

/// Talkspurts of 1..5 s and pauses of 0.3..2 s (nothing sent in pauses, as with DTX),
/// 40 ms packets at a 16 kHz clock, sender clock off by `ppm`, jitter 0..`jitter_ms`,
/// `loss` random loss. Returns delay figures over talk, in ms, excluding the network's fixed
/// delay and the packetisation time.
fn run(ppm: f64, minutes: u64, jitter_ms: u64, loss: f64, seed: u64) -> Figures {
    let clock = 16_000u32;
    let ptime = 40u64;
    let mut rng = SmallRng::seed_from_u64(seed);
    let rate = 1.0 + ppm * 1e-6;
    let total = minutes * 60_000 / ptime;
    // schedule: (sender packet index, talking)
    let mut talking = vec![false; total as usize];
    let mut i = 0usize;
    while i < talking.len() {
        let talk = rng.random_range(25..125usize);
        let pause = rng.random_range(8..50usize);
        for t in talking.iter_mut().skip(i).take(talk) {
            *t = true;
        }
        i += talk + pause;
    }
    let mut packets: Vec<(u64, u16, u32, bool)> = Vec::new(); // arrival, seq, ts, marker
    let mut seq = 0u16;
    let mut prev_talk = false;
    for (k, &t) in talking.iter().enumerate() {
        if !t {
            prev_talk = false;
            continue;
        }
        let send = ((k as u64 * ptime * MS) as f64 / rate) as u64 + ptime * MS;
        let arrival = send + 25 * MS + rng.random_range(0..=jitter_ms * MS);
        let s = seq;
        seq = seq.wrapping_add(1);
        if rng.random_bool(loss) {
            prev_talk = true;
            continue;
        }
        packets.push((arrival, s, (k as u64 * 640) as u32, !prev_talk));
        prev_talk = true;
    }
    packets.sort_by_key(|p| p.0);

    let mut jb = JitterBuffer::new(JitterConfig::new(clock));
    let payload = [10u8 << 3, 0xe0, 1, 2, 3]; // SILK WB 40 ms with LBRR
    let mut q = 0usize;
    let mut next = 0;
    let mut now = 0u64;
    let end = (minutes * 60_000 + 500) * MS;
    let mut delays: Vec<f64> = Vec::new();
    while now < end {
        while next < packets.len() && packets[next].0 <= now {
            let (arrival, seq, ts, marker) = packets[next];
            jb.push(&Packet {
                seq,
                timestamp: ts,
                duration: 640,
                payload: &payload,
                arrival_ns: arrival,
                marker,
            });
            next += 1;
        }
        let pos = jb.playout_ts(q);
        let mut heard = false;
        while q < BLOCK {
            let f = jb.pull(now, q);
            heard |= matches!(
                f,
                Frame::Packet { .. } | Frame::Fec { .. } | Frame::Red { .. }
            );
            q += f.samples();
        }
        q -= BLOCK;
        if let (true, Some(ts)) = (heard, pos) {
            let k = (ts as f64 / 640.0) as usize;
            if talking.get(k).copied().unwrap_or(false) {
                let capture = ts as f64 / f64::from(clock) * 1e9 / rate;
                delays.push((now as f64 - capture) / 1e6 - 25.0 - ptime as f64);
            }
        }
        now += 10 * MS;
    }
    let fifth = delays.len() / 5;
    let st = jb.stats();
    Figures {
        delay_first: delays[..fifth].iter().sum::<f64>() / fifth as f64,
        delay_last: delays[delays.len() - fifth..].iter().sum::<f64>() / fifth as f64,
        delay_min: delays.iter().cloned().fold(f64::MAX, f64::min),
        delay_max: delays.iter().cloned().fold(f64::MIN, f64::max),
        target_min: st.target_min_ms,
        target_max: st.target_max_ms,
        plc_ms: st.plc_samples / 48,
        stalls: st.stalls,
        anchors: st.anchors,
        fec: st.fec,
    }
}

#[test]
fn thirty_minutes_of_drift_do_not_grow_the_delay() {
    for ppm in [200.0, -200.0, 0.0] {
        let f = run(ppm, 30, 40, 0.02, 99);
        println!(
            "drift {ppm:+} ppm, 30 min, jitter 0..40 ms, 2% loss: delay first/last fifth {:.1}/{:.1} ms, \
             min/max {:.1}/{:.1} ms, target {:.0}..{:.0} ms, concealed {} ms, stalls {}, anchors {}, fec {}",
            f.delay_first, f.delay_last, f.delay_min, f.delay_max, f.target_min, f.target_max, f.plc_ms, f.stalls,
            f.anchors, f.fec
        );
        assert!((f.delay_last - f.delay_first).abs() <= 10.0);
        assert!(f.delay_max <= 200.0 + 40.0);
        assert!(f.target_min >= 40.0 && f.target_max <= 200.0);
    }
}
