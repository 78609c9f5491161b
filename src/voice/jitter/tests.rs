//! Scenario tests of the jitter buffer alone, on virtual time, with fake Opus payloads
//! (a SILK 40 ms TOC byte followed by the sequence number, so a test can tell what played).

use super::*;

const PKT_MS: u64 = 40;
const MSU: u64 = 1_000_000;

/// SILK WB 40 ms, first data byte with the LBRR flag set (bit 2: after two VAD flags).
fn payload(seq: u16) -> [u8; 4] {
    let [a, b] = seq.to_be_bytes();
    [10 << 3, 0xe0, a, b]
}

fn seq_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[2], p[3]])
}

struct Run {
    jb: JitterBuffer,
    queued: usize,
    /// What each pull handed out, one letter per frame, with its seq for packets.
    log: Vec<(char, Option<u16>)>,
    plc_samples: usize,
}

impl Run {
    fn new(clock: u32) -> Self {
        Self::with_config(JitterConfig::new(clock))
    }

    fn with_config(cfg: JitterConfig) -> Self {
        Self {
            jb: JitterBuffer::new(cfg),
            queued: 0,
            log: vec![],
            plc_samples: 0,
        }
    }

    /// Packet `seq` in its own 40 ms slot (timestamp), unmarked, arriving at `arrival_ms`.
    fn push(&mut self, seq: u16, clock: u32, arrival_ms: u64) -> PushOutcome {
        self.push_in_slot(seq, u64::from(seq), clock, arrival_ms, false)
    }

    /// Packet `seq` with the timestamp of 40 ms slot `slot` (a sender pause skips slots).
    fn push_in_slot(
        &mut self,
        seq: u16,
        slot: u64,
        clock: u32,
        arrival_ms: u64,
        marker: bool,
    ) -> PushOutcome {
        let per = clock as u64 * PKT_MS / 1000;
        let p = payload(seq);
        self.jb.push(&Packet {
            seq,
            timestamp: (slot * per) as u32,
            duration: per as u32,
            payload: &p,
            arrival_ns: arrival_ms * MSU,
            marker,
        })
    }

    /// One 10 ms pull, the way `MemberVoice` does it.
    fn pull(&mut self, now_ms: u64) {
        while self.queued < BLOCK {
            let f = self.jb.pull(now_ms * MSU, self.queued);
            let (c, s) = match f {
                Frame::Packet { payload, .. } => ('P', Some(seq_of(payload))),
                Frame::Red { payload, .. } => ('R', Some(seq_of(payload))),
                Frame::Fec { payload, .. } => ('F', Some(seq_of(payload))),
                Frame::Plc { samples } => {
                    self.plc_samples += samples;
                    ('C', None)
                }
                Frame::Silence { .. } => ('S', None),
            };
            self.log.push((c, s));
            self.queued += f.samples();
        }
        self.queued -= BLOCK;
    }

    fn letters(&self) -> String {
        self.log.iter().map(|(c, _)| *c).collect()
    }

    /// Concealment frames before the last packet played (the tail after the stream ends is
    /// concealed by design).
    fn plc_inside(&self) -> usize {
        let last = self.log.iter().rposition(|(c, _)| *c == 'P').unwrap_or(0);
        self.log[..last].iter().filter(|(c, _)| *c == 'C').count()
    }

    fn played(&self) -> Vec<u16> {
        self.log
            .iter()
            .filter(|(c, _)| *c == 'P')
            .filter_map(|(_, s)| *s)
            .collect()
    }
}

/// `(seq, arrival_ms)` of packets 0..n, each 20 ms into its 40 ms slot and `late_ms(seq)` more.
fn arrivals(n: u16, late_ms: impl Fn(u16) -> u64) -> Vec<(u16, u64)> {
    (0..n)
        .map(|s| (s, 20 + u64::from(s) * PKT_MS + late_ms(s)))
        .collect()
}

/// Deliver each `(seq, arrival_ms)` of `arrivals` (a seq not there is lost) and pull every
/// 10 ms until `end_ms`.
fn drive(run: &mut Run, clock: u32, arrivals: &[(u16, u64)], end_ms: u64) {
    drive_watching(run, clock, arrivals, end_ms, |_, _| {});
}

/// [`drive`], with `after_pull` looking at the run after the pull at each time (ms).
fn drive_watching(
    run: &mut Run,
    clock: u32,
    arrivals: &[(u16, u64)],
    end_ms: u64,
    mut after_pull: impl FnMut(&Run, u64),
) {
    let mut sorted = arrivals.to_vec();
    sorted.sort_by_key(|&(_, t)| t);
    let mut i = 0;
    for t in (0..end_ms).step_by(10) {
        while i < sorted.len() && sorted[i].1 <= t {
            run.push(sorted[i].0, clock, sorted[i].1);
            i += 1;
        }
        run.pull(t);
        after_pull(run, t);
    }
}

#[test]
fn in_order_plays_everything_at_the_initial_target() {
    for clock in [16_000, 48_000, 8_000] {
        let mut r = Run::new(clock);
        drive(&mut r, clock, &arrivals(50, |_| 0), 50 * 40 + 200);
        assert_eq!(r.played(), (0..50).collect::<Vec<_>>(), "clock {clock}");
        assert_eq!(r.plc_inside(), 0, "clock {clock}: {}", r.letters());
        // the first packet arrived at 20 ms and starts 60 ms later
        let first = r.log.iter().position(|(c, _)| *c == 'P').unwrap();
        assert_eq!(
            r.log[..first].iter().filter(|(c, _)| *c == 'S').count(),
            8,
            "clock {clock}"
        );
    }
}

#[test]
fn reordered_and_duplicated_packets_play_once_in_order() {
    let clock = 16_000;
    let mut r = Run::new(clock);
    // swap every other pair: odd packets come 5 ms after their successor
    let mut arr = arrivals(60, |s| if s % 4 == 1 { 45 } else { 0 });
    // and every fifth packet comes twice
    let duplicates: Vec<_> = arr
        .iter()
        .filter(|(s, _)| s % 5 == 0)
        .map(|&(s, t)| (s, t + 3))
        .collect();
    arr.extend(duplicates);
    drive(&mut r, clock, &arr, 60 * 40 + 300);
    assert_eq!(r.played(), (0..60).collect::<Vec<_>>(), "{}", r.letters());
    assert_eq!(r.jb.stats().duplicates, 12);
    assert_eq!(r.plc_inside(), 0, "{}", r.letters());
}

#[test]
fn single_loss_is_recovered_with_fec_from_the_next_packet() {
    let clock = 16_000;
    let mut r = Run::new(clock);
    // 60 ms target, packets 40 ms apart: the next one is there when the lost one is due
    let mut arr = arrivals(30, |_| 0);
    arr.retain(|&(s, _)| s != 10);
    drive(&mut r, clock, &arr, 30 * 40 + 200);
    let fec: Vec<_> = r.log.iter().filter(|(c, _)| *c == 'F').collect();
    assert_eq!(fec, vec![&('F', Some(11))], "{}", r.letters());
    assert_eq!(r.plc_inside(), 0, "{}", r.letters());
}

/// Packets 0 and 2 arrive; 1 comes only as a RED copy (and in 2's FEC). 300 ms pulled.
fn red_or_fec(red_before_fec: bool) -> Run {
    let clock = 16_000;
    let mut cfg = JitterConfig::new(clock);
    cfg.red_before_fec = red_before_fec;
    let mut r = Run::with_config(cfg);
    r.push(0, clock, 0);
    r.push(2, clock, 80);
    let per = 640;
    r.jb.push_redundant(per, per, &payload(1001));
    for t in (0..300u64).step_by(10) {
        r.pull(t);
    }
    r
}

#[test]
fn red_copy_is_preferred_to_fec_and_fec_to_plc() {
    let r = red_or_fec(true);
    assert!(r.letters().contains("PRP"), "{}", r.letters());
    let red: Vec<_> = r.log.iter().filter(|(c, _)| *c == 'R').collect();
    assert!(red.iter().all(|(_, s)| *s == Some(1001)), "{red:?}");

    // Same with red_before_fec off: FEC first.
    let r = red_or_fec(false);
    assert!(r.letters().contains("PFP"), "{}", r.letters());
}

#[test]
fn a_burst_conceals_100_ms_then_goes_silent_and_recovers() {
    let clock = 16_000;
    let mut r = Run::new(clock);
    // 10 packets (400 ms) lost in the middle
    let mut arr = arrivals(40, |_| 0);
    arr.retain(|&(s, _)| !(10..20).contains(&s));
    drive(&mut r, clock, &arr, 40 * 40 + 200);
    let l = r.letters();
    let first_c = l.find('C').unwrap();
    let run_c = l[first_c..].chars().take_while(|&c| c == 'C').count();
    assert!(run_c * 10 <= 100, "{l}");
    assert!(l[first_c + run_c..].starts_with('S'), "{l}");
    // everything after the burst plays
    let played = r.played();
    assert!((20..40).all(|s| played.contains(&s)), "{l}");
}

#[test]
fn dtx_pause_is_not_a_loss() {
    let clock = 16_000;
    let mut r = Run::new(clock);
    // seq 0..10 talk, then 1 s pause (timestamps jump by 25 packets), seq 10.. continue:
    // seq contiguous, each packet 20 ms into its slot, the first after the pause marked
    let slot_of = |s: u16| {
        if s < 10 {
            u64::from(s)
        } else {
            u64::from(s) + 25
        }
    };
    let arrival = |s: u16| 20 + slot_of(s) * PKT_MS;
    let mut seqs = (0..30u16).peekable();
    for t in (0..(60 * 40)).step_by(10) {
        while let Some(seq) = seqs.next_if(|&s| arrival(s) <= t) {
            r.push_in_slot(seq, slot_of(seq), clock, arrival(seq), seq == 10);
        }
        r.pull(t);
    }
    assert_eq!(r.played(), (0..30).collect::<Vec<_>>());
    let st = r.jb.stats();
    assert_eq!(st.seq_gaps, 0);
    assert_eq!(r.jb.loss_estimate(), 0.0);
    assert_eq!(st.fec, 0);
    // until the first packet after the pause arrives we can't know: at most 100 ms concealed
    assert!(r.plc_inside() <= 10, "{}", r.letters());
    assert!(st.anchors >= 2);
}

#[test]
fn dtx_packets_play_as_silence() {
    let clock = 48_000;
    let mut jb = JitterBuffer::new(JitterConfig::new(clock));
    let per = 960u32; // 20 ms at 48 kHz
    let talk = [9u8 << 3, 1, 2, 3];
    let dtx = [9u8 << 3];
    let mut letters = String::new();
    let mut q = 0;
    let mut seq = 0u16;
    for t in (0..3000u64).step_by(10) {
        if t % 20 == 0 {
            let quiet = (1000..2000).contains(&t);
            // in DTX the sender emits one DTX packet every 400 ms
            if !quiet || (t - 1000) % 400 == 0 {
                let pl: &[u8] = if quiet { &dtx } else { &talk };
                jb.push(&Packet {
                    seq,
                    timestamp: (t / 20) as u32 * per,
                    duration: per,
                    payload: pl,
                    arrival_ns: t * MSU,
                    marker: false,
                });
                seq = seq.wrapping_add(1);
            }
        }
        while q < BLOCK {
            let f = jb.pull(t * MSU, q);
            letters.push(match f {
                Frame::Packet { .. } => 'P',
                Frame::Plc { .. } => 'C',
                Frame::Silence { .. } => 'S',
                _ => '?',
            });
            q += f.samples();
        }
        q -= BLOCK;
    }
    assert_eq!(jb.stats().plc_samples, 0, "{letters}");
    assert_eq!(jb.stats().seq_gaps, 0);
}

#[test]
fn jitter_raises_the_target_and_calm_lowers_it() {
    let clock = 16_000;
    let mut r = Run::new(clock);
    // 20 s calm, 20 s with 0..120 ms jitter, 40 s calm
    let arr = arrivals(2000, |s| {
        if (500..1000).contains(&s) {
            (u64::from(s) * 7919) % 121
        } else {
            0
        }
    });
    let mut max_target = 0.0f32;
    drive_watching(&mut r, clock, &arr, 2000 * 40 + 300, |r, t| {
        max_target = max_target.max(r.jb.target_ms());
        if t == 19_000 {
            assert!(r.jb.target_ms() <= 45.0, "calm target {}", r.jb.target_ms());
        }
    });
    assert!(max_target >= 120.0, "max target {max_target}");
    assert!(max_target <= 200.0);
    assert!(
        r.jb.target_ms() <= 45.0,
        "target after calm {}",
        r.jb.target_ms()
    );
}

#[test]
fn hostile_input_never_panics() {
    // xorshift: deterministic garbage
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for clock in [1, 8_000, 16_000, 48_000, u32::MAX] {
        let mut jb = JitterBuffer::new(JitterConfig::new(clock));
        let mut buf = [0u8; 1600];
        let mut q = 0usize;
        for step in 0..20_000u64 {
            let len = (next() % 1600) as usize;
            for b in &mut buf[..len] {
                *b = next() as u8;
            }
            let r = next();
            let arrival = match r % 97 {
                0 => next(),
                1 => u64::MAX,
                2 => 0,
                _ => step * 3 * MSU,
            };
            jb.push(&Packet {
                seq: next() as u16,
                timestamp: next() as u32,
                duration: (next() % 100_000) as u32,
                payload: &buf[..len],
                arrival_ns: arrival,
                marker: r % 2 == 0,
            });
            if r % 3 == 0 {
                jb.push_redundant(next() as u32, (next() % 5000) as u32, &buf[..len.min(20)]);
            }
            let now = if r % 89 == 0 {
                u64::MAX - next() % 1000
            } else {
                arrival
            };
            let _ = jb.delay_ns(now, q);
            let _ = jb.lateness_ns(now, q);
            let f = jb.pull(now, q);
            assert!(f.samples() > 0);
            q = (q + f.samples()) % BLOCK;
        }
    }
}

/// aiortc (1.4) sets the RTP marker bit on every audio packet (its packetizer marks the last
/// packet of each frame, as for video). Two marked packets in a row, contiguous in sequence and
/// timestamp, cannot both start a talkspurt: from then on the marker is ignored, so a lost
/// packet is recovered (FEC here) instead of being taken for a sender pause (silence).
#[test]
fn marker_on_every_packet_is_not_a_talkspurt_start() {
    for clock in [16_000u32, 48_000] {
        let mut r = Run::new(clock);
        for t in (0..(40 * PKT_MS + 200)).step_by(10) {
            let seq = (t / PKT_MS) as u16;
            if t % PKT_MS == 0 && seq < 40 && seq != 20 {
                r.push_in_slot(seq, u64::from(seq), clock, 20 + t, true);
            }
            r.pull(t);
        }
        let l = r.letters();
        let fec: Vec<_> = r.log.iter().filter(|(c, _)| *c == 'F').collect();
        assert_eq!(fec, vec![&('F', Some(21))], "clock {clock}: {l}");
        let first = l.find('P').unwrap();
        let last = l.rfind('P').unwrap();
        assert!(!l[first..last].contains('S'), "clock {clock}: {l}");
        assert_eq!(r.plc_inside(), 0, "clock {clock}: {l}");
        assert_eq!(r.jb.stats().dtx_gaps, 0, "clock {clock}");
        assert_eq!(r.played().len(), 39, "clock {clock}: {l}");
        // only the first marked packet is taken at its word
        assert_eq!(r.jb.stats().markers_ignored, 38, "clock {clock}");
    }
}
