//! A scripted member and network on virtual time, shared by the voice tests.
//!
//! The member encodes a tone with libopus at 16 kHz (in-band FEC on), stamps RTP timestamps in
//! the negotiated clock (`clock_rate`), and may pause (DTX: nothing sent, or DTX packets), run
//! its clock fast or slow (`drift_ppm`), and wrap the Opus payload in RED. The network adds a
//! fixed delay, uniform jitter, loss, duplication and extra reordering. The receiver pulls
//! 10 ms every 10 ms of its own clock, exactly as the party playout does.

use obs_psn_party::voice::member::{MemberConfig, MemberVoice};
use obs_psn_party::voice::rtp::{write_red, RtpIn};
use obs_psn_party::voice::BLOCK;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub const MS: u64 = 1_000_000;
pub const OPUS_PT: u8 = 96;
pub const RED_PT: u8 = 63;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pauses {
    /// Talk all the time.
    None,
    /// Talk `talk_ms`, pause `pause_ms`, sending nothing in pauses (seq stays contiguous).
    Silent { talk_ms: u64, pause_ms: u64 },
    /// Same, but libopus DTX runs and its 1-2 byte packets are sent.
    DtxPackets { talk_ms: u64, pause_ms: u64 },
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub clock_rate: u32,
    pub ptime_ms: u64,
    pub duration_ms: u64,
    pub tone_hz: f32,
    pub amplitude: f32,
    pub drift_ppm: f64,
    pub pauses: Pauses,
    pub red: bool,
    pub base_delay_ms: u64,
    pub jitter_ms: u64,
    pub loss: f64,
    pub duplicate: f64,
    /// Share of packets held back by an extra 1..3 packet times.
    pub reorder: f64,
    pub seed: u64,
    /// Inside talk, the last `word_gap_ms` of every second is silent but still sent (no DTX):
    /// the pauses between words of someone who never stops long enough for DTX.
    pub word_gap_ms: u64,
    /// CELT-only encoding (libopus low-delay mode): no in-band FEC, as PS5's `CELT/40` msid
    /// may mean.
    pub celt: bool,
    /// Background noise the member's microphone picks up all the time (uniform, this RMS).
    pub noise_rms: f32,
    /// psn-sim's member voice (`psn_sim::voice::sample` at `tone_hz`, `amplitude`) and its
    /// encoder settings (24 kb/s, FEC for 10 % loss, DTX), as in the libobs checks.
    pub psn_sim_voice: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            clock_rate: 16_000,
            ptime_ms: 40,
            duration_ms: 20_000,
            tone_hz: 440.0,
            amplitude: 0.3,
            drift_ppm: 0.0,
            pauses: Pauses::None,
            red: false,
            base_delay_ms: 30,
            jitter_ms: 0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            seed: 1,
            word_gap_ms: 0,
            celt: false,
            noise_rms: 0.0,
            psn_sim_voice: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SentPacket {
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub pt: u8,
    pub payload: Vec<u8>,
    pub arrival_ns: u64,
}

impl SentPacket {
    /// The packet as the member's receive path takes it.
    pub fn rtp_in(&self) -> RtpIn<'_> {
        RtpIn {
            payload_type: self.pt,
            seq: self.seq,
            timestamp: self.ts,
            marker: self.marker,
            payload: &self.payload,
            arrival_ns: self.arrival_ns,
        }
    }
}

/// A member configured as the scenario's sender: Opus at its clock, RED over it.
pub fn scenario_member(sc: &Scenario) -> MemberVoice {
    let mut cfg = MemberConfig::new(sc.clock_rate, OPUS_PT);
    cfg.red_pt = Some(RED_PT);
    MemberVoice::new(cfg).unwrap()
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Longest run of 10 ms blocks with (nearly) no tone while the member was talking.
    pub max_gap_ms: u64,
    /// Number of such runs longer than 20 ms.
    pub gaps_over_20ms: u64,
    /// Blocks that should have had tone, and of those how many were quiet.
    pub talk_blocks: u64,
    pub quiet_talk_blocks: u64,
    /// Blocks during the member's pauses that were not quiet (tails of concealment included).
    pub loud_pause_blocks: u64,
    /// End-to-end delay from the member's capture to our output, minus the network's fixed
    /// delay, over blocks where the member was talking: min / mean / max, and the mean over the
    /// first and last fifth of the run.
    pub delay_min_ms: f64,
    pub delay_mean_ms: f64,
    pub delay_max_ms: f64,
    pub delay_first_ms: f64,
    pub delay_last_ms: f64,
    pub target_min_ms: f32,
    pub target_max_ms: f32,
    pub target_end_ms: f32,
    pub sent: u64,
    pub lost: u64,
    pub jitter: obs_psn_party::voice::jitter::JitterStats,
    pub decode: obs_psn_party::voice::decode::DecodeStats,
    pub short_pulls: u64,
    pub quiet_drops: u64,
    pub quiet_repeats: u64,
    pub max_abs: f32,
    pub ref_len: usize,
    /// Where (member's time, ms) the gaps over 20 ms ended, and how long they were.
    pub gap_at_ms: Vec<(u64, u64)>,
    /// Runs of lost packets: (member's time of the first, count).
    pub loss_runs: Vec<(u64, u64)>,
}

impl Report {
    /// Gaps over 20 ms that no burst of two or more lost packets explains.
    pub fn unexplained_gaps(&self, ptime_ms: u64) -> Vec<(u64, u64)> {
        self.gap_at_ms
            .iter()
            .filter(|(end, len)| {
                !self.loss_runs.iter().any(|&(start, n)| {
                    n >= 2
                        && *end + len + 2 * ptime_ms >= start
                        && *end <= start + (n + 2) * ptime_ms
                })
            })
            .copied()
            .collect()
    }
}

/// A speech-like test signal at 16 kHz: 200 ms "syllables" of a harmonic complex (f0 100 to
/// 220 Hz, twelve harmonics with per-syllable weights) under a raised envelope. A pure tone
/// would not do: SILK's VAD stops calling a stationary tone speech after a second or so, and
/// then stops coding in-band FEC, which real voice keeps.
pub fn speech_like(n: u64, amplitude: f32) -> f32 {
    let t = n as f32 / 16_000.0;
    let pi2 = 2.0 * std::f32::consts::PI;
    let syl = (n / 3200) as u32;
    let u = (n % 3200) as f32 / 3200.0;
    let f0 = 100.0 + ((syl * 53) % 120) as f32;
    let ph = pi2 * f0 * (t - syl as f32 * 0.2);
    let env = 0.3 + 0.7 * (std::f32::consts::PI * u).sin().powi(2);
    let mut s = 0.0;
    for h in 1..=12 {
        let w = (1.0 / h as f32) * (1.0 + (h as f32 * 0.7 + syl as f32).sin()) * 0.5;
        s += (h as f32 * ph).sin() * w;
    }
    amplitude * env * s
}

fn talking(sc: &Scenario, sender_ms: f64) -> bool {
    match sc.pauses {
        Pauses::None => true,
        Pauses::Silent { talk_ms, pause_ms } | Pauses::DtxPackets { talk_ms, pause_ms } => {
            (sender_ms.max(0.0) as u64) % (talk_ms + pause_ms) < talk_ms
        }
    }
}

/// Encode the member's stream and put it through the network. Returns packets sorted by arrival.
pub fn make_stream(sc: &Scenario) -> Stream {
    let mut rng = SmallRng::seed_from_u64(sc.seed);
    // its own generator, so adding noise leaves the network's dice as they were
    let mut noise = SmallRng::seed_from_u64(sc.seed ^ 0x5eed);
    let app = if sc.celt {
        opus::Application::LowDelay
    } else {
        opus::Application::Voip
    };
    let mut enc = opus::Encoder::new(16_000, opus::Channels::Mono, app).unwrap();
    enc.set_inband_fec(true).unwrap();
    enc.set_packet_loss_perc(((sc.loss * 100.0) as i32).clamp(5, 30))
        .unwrap();
    if sc.psn_sim_voice {
        enc.set_packet_loss_perc(10).unwrap();
        enc.set_bitrate(opus::Bitrate::Bits(24_000)).unwrap();
    } else {
        enc.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
        enc.set_signal(opus::Signal::Voice).unwrap();
    }
    let dtx =
        sc.psn_sim_voice || matches!(sc.pauses, Pauses::DtxPackets { .. } | Pauses::Silent { .. });
    enc.set_dtx(dtx).unwrap();
    let frame16 = (16 * sc.ptime_ms) as usize;
    let ts_step = (u64::from(sc.clock_rate) * sc.ptime_ms / 1000) as u32;
    let mut pcm = vec![0f32; frame16];
    let mut buf = [0u8; 1500];
    let mut out = Vec::new();
    let mut seq: u16 = 1000;
    let ts0: u32 = TS0; // wraps a little later in long runs with a 48 kHz clock
    let mut prev: Option<(u32, Vec<u8>)> = None;
    let mut was_talking = true;
    let mut reference = Vec::new();
    let mut seq_ms = Vec::new();
    let n_packets = sc.duration_ms / sc.ptime_ms;
    let rate = 1.0 + sc.drift_ppm * 1e-6;
    for i in 0..n_packets {
        let sender_ms = (i * sc.ptime_ms) as f64;
        let talk = talking(sc, sender_ms);
        for (k, s) in pcm.iter_mut().enumerate() {
            let n = i * frame16 as u64 + k as u64;
            let in_word_gap = sc.word_gap_ms > 0 && (n / 16) % 1000 >= 1000 - sc.word_gap_ms;
            *s = if talk && !in_word_gap && sc.psn_sim_voice {
                psn_sim::voice::sample(f64::from(sc.tone_hz), f64::from(sc.amplitude), n, 16_000)
            } else if talk && !in_word_gap {
                speech_like(n, sc.amplitude)
            } else {
                0.0
            };
            if sc.noise_rms > 0.0 {
                // uniform in [-a, a] has RMS a / sqrt(3)
                *s += noise.random_range(-1.0f32..1.0) * sc.noise_rms * 3f32.sqrt();
            }
        }
        let n = enc.encode_float(&pcm, &mut buf).unwrap();
        let ts = ts0.wrapping_add(ts_step.wrapping_mul(i as u32));
        let is_dtx = n <= 2;
        let send = match sc.pauses {
            Pauses::Silent { .. } => talk || !is_dtx,
            _ => true,
        };
        if !send {
            was_talking = false;
            prev = None;
            continue;
        }
        let marker = !was_talking && talk;
        was_talking = talk;
        let opus = buf[..n].to_vec();
        reference.push((ts, opus.clone()));
        let (pt, payload) = match (&prev, sc.red) {
            (Some((pts, pp)), true) if !is_dtx => {
                let mut rb = [0u8; 1500];
                let m = write_red(
                    &[(OPUS_PT, ts.wrapping_sub(*pts), pp)],
                    OPUS_PT,
                    &opus,
                    &mut rb,
                )
                .unwrap();
                (RED_PT, rb[..m].to_vec())
            }
            _ => (OPUS_PT, opus.clone()),
        };
        prev = Some((ts, opus));
        let send_ns = ((i * sc.ptime_ms * MS) as f64 / rate) as u64 + sc.ptime_ms * MS;
        let mut arrival = send_ns + sc.base_delay_ms * MS;
        if sc.jitter_ms > 0 {
            arrival += rng.random_range(0..=sc.jitter_ms * MS);
        }
        if rng.random_bool(sc.reorder) {
            arrival += rng.random_range(1..=3) * sc.ptime_ms * MS;
        }
        let this_seq = seq;
        seq_ms.push(i * sc.ptime_ms);
        seq = seq.wrapping_add(1);
        if rng.random_bool(sc.loss) {
            continue;
        }
        let pkt = SentPacket {
            seq: this_seq,
            ts,
            marker,
            pt,
            payload,
            arrival_ns: arrival,
        };
        if rng.random_bool(sc.duplicate) {
            let mut d = pkt.clone();
            d.arrival_ns += rng.random_range(0..=20) * MS;
            out.push(d);
        }
        out.push(pkt);
    }
    out.sort_by_key(|p| p.arrival_ns);
    Stream {
        packets: out,
        assigned: u64::from(seq.wrapping_sub(1000)),
        reference,
        seq_ms,
    }
}

/// The network's output plus what the member sent before the network touched it.
pub struct Stream {
    /// Sorted by arrival.
    pub packets: Vec<SentPacket>,
    /// Sequence numbers the member used.
    pub assigned: u64,
    /// Every Opus packet the member sent, in order: `(rtp timestamp, payload)`.
    pub reference: Vec<(u32, Vec<u8>)>,
    /// Member's time (ms) of each sequence number, from the first.
    pub seq_ms: Vec<u64>,
}

/// Decode the member's packets without any loss: the reference our output is compared with,
/// at 48 kHz, sample 0 = RTP timestamp `ts0`.
pub fn reference_pcm(sc: &Scenario, reference: &[(u32, Vec<u8>)]) -> Vec<f32> {
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let per = (48 * sc.ptime_ms) as usize;
    let total = (sc.duration_ms / sc.ptime_ms) as usize * per;
    let mut pcm = vec![0f32; total + per];
    let mut buf = vec![0f32; 5760];
    for (ts, p) in reference {
        let k = (i64::from(ts.wrapping_sub(TS0)) * 48_000 / i64::from(sc.clock_rate)) as usize;
        let n = dec.decode_float(p, &mut buf, false).unwrap();
        if k + n <= pcm.len() {
            pcm[k..k + n].copy_from_slice(&buf[..n]);
        }
    }
    pcm
}

pub const TS0: u32 = 0x7fff_f000;

fn rms(b: &[f32]) -> f32 {
    (b.iter().map(|s| s * s).sum::<f32>() / b.len() as f32).sqrt()
}

/// Play the scenario through a [`MemberVoice`]; `on_block` sees every output block.
pub fn run_with(sc: &Scenario, mut on_block: impl FnMut(u64, &[f32; BLOCK])) -> Report {
    let stream = make_stream(sc);
    let packets = &stream.packets;
    let sent = stream.assigned;
    let reference = reference_pcm(sc, &stream.reference);
    let mut m = scenario_member(sc);
    let rate = 1.0 + sc.drift_ppm * 1e-6;
    let ts0 = i64::from(TS0);
    let mut r = Report {
        sent,
        delay_min_ms: f64::MAX,
        ..Default::default()
    };
    let mut next = 0;
    let mut block = [0f32; BLOCK];
    let end_ns = (sc.duration_ms + sc.base_delay_ms + 300) * MS;
    let mut gap = 0u64;
    let mut delays: Vec<f64> = Vec::new();
    let mut started = false;
    let mut now = 0u64;
    while now < end_ns {
        while next < packets.len() && packets[next].arrival_ns <= now {
            m.push(&packets[next].rtp_in());
            next += 1;
        }
        // Where in the member's talk is the sample about to be played?
        let pos = m.playout_ts();
        m.pull_10ms(now, &mut block);
        on_block(now, &block);
        r.max_abs = block.iter().fold(r.max_abs, |a, s| a.max(s.abs()));
        if let Some(ts) = pos {
            let sender_ms = (ts - ts0) as f64 * 1000.0 / f64::from(sc.clock_rate);
            // capture time of that sample on our clock (the sender sends a packet when it is full)
            let capture_ns = sender_ms * 1e6 / rate;
            let in_stream = sender_ms >= 0.0 && sender_ms < (sc.duration_ms - sc.ptime_ms) as f64;
            let talk_now = in_stream
                && talking(sc, sender_ms)
                && talking(sc, sender_ms + 10.0)
                && talking(sc, (sender_ms - 60.0).max(0.0));
            // quiet: under a quarter of what the lossless decode has at the same place
            let k = ((ts - ts0).max(0) * 48_000 / i64::from(sc.clock_rate)) as usize;
            let ref_rms = reference.get(k..k + BLOCK).map(rms).unwrap_or(0.0);
            let quiet = rms(&block) < 0.25 * ref_rms || (ref_rms < 1e-3 && rms(&block) < 1e-3);
            // the decoder's first 100 ms ramp up
            if sender_ms >= 100.0 {
                started = true;
            }
            // blocks where the lossless decode itself is near silence say nothing about gaps
            let audible_ref = ref_rms > 0.01;
            if started && talk_now && audible_ref {
                r.talk_blocks += 1;
                let d = (now as f64 - capture_ns) / 1e6 - (sc.base_delay_ms + sc.ptime_ms) as f64;
                delays.push(d);
                if quiet {
                    r.quiet_talk_blocks += 1;
                    gap += 10;
                } else {
                    if gap > 20 {
                        r.gaps_over_20ms += 1;
                        r.gap_at_ms.push((sender_ms as u64, gap));
                    }
                    r.max_gap_ms = r.max_gap_ms.max(gap);
                    gap = 0;
                }
            } else if in_stream
                && !talking(sc, sender_ms)
                && !talking(sc, sender_ms - 120.0)
                && m.playout_ts().is_some_and(|after| {
                    let after_ms = (after - ts0) as f64 * 1000.0 / f64::from(sc.clock_rate);
                    !talking(sc, after_ms) && after_ms > sender_ms
                })
                && rms(&block) > 0.01
            {
                r.loud_pause_blocks += 1;
            }
        }
        let t = m.jitter().target_ms();
        if r.target_min_ms == 0.0 || t < r.target_min_ms {
            r.target_min_ms = t;
        }
        r.target_max_ms = r.target_max_ms.max(t);
        now += 10 * MS;
    }
    r.max_gap_ms = r.max_gap_ms.max(gap);
    if !delays.is_empty() {
        r.delay_min_ms = delays.iter().cloned().fold(f64::MAX, f64::min);
        r.delay_max_ms = delays.iter().cloned().fold(f64::MIN, f64::max);
        r.delay_mean_ms = delays.iter().sum::<f64>() / delays.len() as f64;
        let fifth = (delays.len() / 5).max(1);
        r.delay_first_ms = delays[..fifth].iter().sum::<f64>() / fifth as f64;
        r.delay_last_ms = delays[delays.len() - fifth..].iter().sum::<f64>() / fifth as f64;
    }
    r.lost = sent
        - packets
            .iter()
            .map(|p| p.seq)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64;
    r.ref_len = reference.len();
    // runs of consecutive lost packets, as (member's time of the first, count)
    let mut got: Vec<u16> = packets.iter().map(|p| p.seq.wrapping_sub(1000)).collect();
    got.sort_unstable();
    got.dedup();
    let seq_ms: Vec<u64> = stream.seq_ms.clone();
    for w in got.windows(2) {
        if w[1] - w[0] > 1 {
            let first = usize::from(w[0] + 1);
            r.loss_runs.push((
                seq_ms.get(first).copied().unwrap_or(0),
                u64::from(w[1] - w[0] - 1),
            ));
        }
    }
    r.jitter = m.jitter().stats().clone();
    r.target_end_ms = m.jitter().target_ms();
    r.decode = m.decoder().stats().clone();
    r.short_pulls = m.stats().short_pulls;
    r.quiet_drops = m.stats().quiet_drops;
    r.quiet_repeats = m.stats().quiet_repeats;
    r
}

pub fn run(sc: &Scenario) -> Report {
    run_with(sc, |_, _| {})
}
