//! Per-member jitter buffer on an injected clock.
//!
//! Packets go in with [`JitterBuffer::push`] (primary Opus packets) and
//! [`JitterBuffer::push_redundant`] (older frames carried in RED). Whenever the decoder side
//! runs short of samples it calls [`JitterBuffer::pull`], which says what to decode next as a
//! [`Frame`]: the packet itself, its RED copy, in-band FEC from the following packet, packet
//! loss concealment (at most `max_plc_ms` in a row) or silence.
//!
//! Timing. Every packet's `transit = arrival - timestamp_in_ns` feeds a windowed minimum
//! (`base`, the fastest recent packet) and a histogram of `transit - base` (the jitter). The
//! target delay is the 95th percentile of that jitter plus a 10 ms pull margin, plus one packet
//! duration while packets are being lost (so the next packet is there for FEC), clamped to
//! `min_target_ms..=max_target_ms`. A sample with timestamp `ts` should be played at
//! `ts_ns + base + target`; `early` is how far ahead of that the playout actually is.
//!
//! The playout position moves only with the pulls (our clock); it is never shifted under
//! audio that is playing. It is re-anchored to exactly `base + target` when nothing audible is
//! playing: before the first packet, in DTX (a sender pause, recognised by a timestamp jump
//! with contiguous sequence numbers, or by one- and two-byte Opus DTX packets), and after
//! concealment gave up. That is where the sender's clock drift and target changes are absorbed.
//! While audio plays, the only adjustment is a 10 ms concealment *stall* when the next packet
//! has not arrived yet and the playout is at least 10 ms earlier than the target says: that
//! raises the delay in steps when jitter grows in the middle of a talkspurt.
//!
//! All time is in ns on the caller's monotonic clock (`u64`), so tests run on virtual time.
//! RTP timestamps use the member's negotiated clock rate (16000 as recorded, 48000 per
//! RFC 7587): nothing here assumes 48 kHz except the decoded sample counts in [`Frame`].

mod estimator;

use estimator::DelayEstimator;

use crate::voice::{BLOCK, OUTPUT_RATE};

/// Largest payload kept (bytes); longer packets are treated as lost. The party's packet feed
/// carries no longer ones (`party::feed::SLOT_PAYLOAD`), and every slot preallocates this
/// much: 1500 cost 14 members x 96 slots x 300 bytes for nothing.
pub const MAX_STORED_PAYLOAD: usize = 1200;
const NS_PER_S: i64 = 1_000_000_000;
/// Clock readings are clamped to this (146 years) so no timeline arithmetic can overflow,
/// whatever a caller or the network hands in.
const MAX_NS: u64 = 1 << 62;
const MS: i64 = 1_000_000;
/// Stalls (10 ms each) in a row at most, so raising the delay mid-talkspurt never conceals
/// more than 20 ms at once; the rest of the raise happens at later holes or the next pause.
const MAX_STALLS: u32 = 2;
/// How long after the last lost packet the target keeps room for FEC.
const FEC_MEMORY_NS: u64 = 20_000_000_000;

/// Tuning of one jitter buffer.
#[derive(Debug, Clone)]
pub struct JitterConfig {
    /// RTP clock rate of the member's Opus payload type (Hz), from the SDP.
    pub clock_rate: u32,
    /// Target delay until enough packets were seen to measure jitter.
    pub initial_target_ms: u32,
    pub min_target_ms: u32,
    pub max_target_ms: u32,
    /// Concealment in a row before the output turns to silence.
    pub max_plc_ms: u32,
    /// Packets held at most (each with a preallocated payload buffer).
    pub capacity: usize,
    /// Use a RED copy of a lost packet before in-band FEC from the next one. A RED block is the
    /// lost packet's own encoding (full quality); Opus in-band FEC is a low-bitrate re-encoding.
    pub red_before_fec: bool,
    /// Jitter percentile that the target delay covers.
    pub quantile: f32,
}

impl JitterConfig {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            initial_target_ms: 60,
            min_target_ms: 40,
            max_target_ms: 200,
            max_plc_ms: 100,
            capacity: 96,
            red_before_fec: true,
            quantile: 0.95,
        }
    }
}

/// One primary packet as the jitter buffer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub seq: u16,
    pub timestamp: u32,
    /// Duration in RTP clock units (from the Opus TOC, converted to the clock rate).
    pub duration: u32,
    pub payload: &'a [u8],
    pub arrival_ns: u64,
    pub marker: bool,
}

/// What to decode next. Sample counts are at 48 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Decode this packet normally.
    Packet { payload: &'a [u8], samples: usize },
    /// Decode the RED copy of the missing packet normally.
    Red { payload: &'a [u8], samples: usize },
    /// Decode the in-band FEC of this (following) packet for `samples` (a multiple of 2.5 ms).
    Fec { payload: &'a [u8], samples: usize },
    /// Conceal `samples` (a multiple of 2.5 ms).
    Plc { samples: usize },
    /// Nothing to play: output `samples` of silence.
    Silence { samples: usize },
}

impl Frame<'_> {
    pub fn samples(&self) -> usize {
        match *self {
            Frame::Packet { samples, .. }
            | Frame::Red { samples, .. }
            | Frame::Fec { samples, .. }
            | Frame::Plc { samples }
            | Frame::Silence { samples } => samples,
        }
    }
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Stored,
    Duplicate,
    /// Its time has already been played (or concealed).
    Late,
    /// Empty, too long, zero or absurd duration.
    Invalid,
    /// The buffer was full of newer packets.
    Overflow,
}

/// Counters since creation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JitterStats {
    pub received: u64,
    pub duplicates: u64,
    pub late: u64,
    pub invalid: u64,
    pub overflow: u64,
    /// Stream restarts (timestamp jumped more than 10 s).
    pub resets: u64,
    pub played: u64,
    pub red: u64,
    pub fec: u64,
    /// 2.5 ms units of concealment handed out (PLC frames, stalls included).
    pub plc_samples: u64,
    pub silence_samples: u64,
    /// Concealments that did not advance the playout (delay raised while audio played).
    pub stalls: u64,
    /// Holes recognised as sender pauses (DTX), not losses.
    pub dtx_gaps: u64,
    /// Times the playout was (re)started at `base + target` from silence.
    pub anchors: u64,
    /// Sequence numbers never seen when a later one arrived (reordering counts until it lands).
    pub seq_gaps: u64,
    /// Marked packets whose marker was ignored: the sender marks packets that cannot start a
    /// talkspurt (aiortc marks every audio packet).
    pub markers_ignored: u64,
    pub target_min_ms: f32,
    pub target_max_ms: f32,
}

#[derive(Debug, Clone)]
struct Slot {
    used: bool,
    ts: i64,
    dur: i64,
    seq: Option<i64>,
    redundant: bool,
    dtx: bool,
    /// Carries in-band FEC for the frame before it.
    fec: bool,
    marker: bool,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No packet since creation or reset.
    Empty,
    /// Not playing audio: silence, playout follows `base + target` exactly.
    Idle,
    /// Playing packets (or concealing holes between them).
    Playing,
}

/// The jitter buffer of one member's stream.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    clock: i64,
    slots: Vec<Slot>,
    state: State,
    /// Extended timestamp of the next sample to hand to the decoder.
    cursor: i64,
    ts_ref: Option<i64>,
    seq_ref: Option<i64>,
    highest_seq: Option<i64>,
    last_played_seq: Option<i64>,
    seen: [i64; 128],
    est: DelayEstimator,
    target_ns: i64,
    loss: f32,
    last_dur: i64,
    plc_run_ns: i64,
    /// Stalls since the last packet played.
    stall_run: u32,
    /// Packets are being lost: keep one packet time in the target for FEC until then.
    fec_until_ns: u64,
    /// Latest arrival seen.
    now_ns: u64,
    /// The last packet played carried in-band FEC (so the next one likely will).
    fec_capable: bool,
    /// The sender's VAD called the last played packet "not speech".
    last_nonspeech: bool,
    /// The stream carries RED (the next packet likely brings a copy of a missing one).
    red_seen: bool,
    /// The last primary packet pushed: (seq, timestamp + duration, marker, DTX).
    last_primary: Option<(i64, i64, bool, bool)>,
    /// The sender's marker bits say nothing about talkspurts (two marked packets in a row,
    /// contiguous in sequence and time): ignore them for the rest of the stream.
    markers_unreliable: bool,
    warm: bool,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        let clock = i64::from(cfg.clock_rate.clamp(1000, 192_000));
        let slots = (0..cfg.capacity.clamp(8, 1024))
            .map(|_| Slot {
                used: false,
                ts: 0,
                dur: 0,
                seq: None,
                redundant: false,
                dtx: false,
                fec: false,
                marker: false,
                payload: Vec::with_capacity(MAX_STORED_PAYLOAD),
            })
            .collect();
        let target_ns = i64::from(cfg.initial_target_ms) * MS;
        Self {
            clock,
            slots,
            state: State::Empty,
            cursor: 0,
            ts_ref: None,
            seq_ref: None,
            highest_seq: None,
            last_played_seq: None,
            seen: [i64::MIN; 128],
            est: DelayEstimator::new(0.995),
            target_ns,
            loss: 0.0,
            last_dur: clock / 25,
            plc_run_ns: 0,
            stall_run: 0,
            fec_until_ns: 0,
            now_ns: 0,
            fec_capable: false,
            last_nonspeech: false,
            red_seen: false,
            last_primary: None,
            markers_unreliable: false,
            warm: false,
            stats: JitterStats::default(),
            cfg,
        }
    }

    pub fn clock_rate(&self) -> u32 {
        self.clock as u32
    }

    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// Current target delay above the fastest recent packet.
    pub fn target_ms(&self) -> f32 {
        self.target_ns as f32 / MS as f32
    }

    /// Recent share of sequence numbers that went missing (0..1).
    pub fn loss_estimate(&self) -> f32 {
        self.loss
    }

    /// Extended RTP timestamp of the next sample to be heard, given `queued` samples (48 kHz)
    /// already decoded and waiting at the caller. `None` before the first packet.
    pub fn playout_ts(&self, queued: usize) -> Option<i64> {
        (self.state != State::Empty).then(|| self.cursor - self.from48(queued))
    }

    /// How long the sample about to be heard has waited since the fastest recent packet would
    /// have delivered it (the buffering delay; equals the target when on time).
    pub fn delay_ns(&self, now_ns: u64, queued: usize) -> Option<i64> {
        let base = self.est.base()?;
        let pos = self.playout_ts(queued)?;
        let now = now_ns.min(MAX_NS) as i64;
        Some(now.saturating_sub(base).saturating_sub(self.ts_to_ns(pos)))
    }

    /// While packets are playing: how much later than `base + target` the sample about to be
    /// heard is (negative: earlier). `None` while idle (silence follows the target exactly).
    pub fn lateness_ns(&self, now_ns: u64, queued: usize) -> Option<i64> {
        if self.state != State::Playing {
            return None;
        }
        Some(
            self.delay_ns(now_ns, queued)?
                .saturating_sub(self.target_ns),
        )
    }

    /// Nothing to play until a packet arrives: not playing, and no packet held. Every `pull`
    /// from here on gives silence (and moves the idle playout position, see
    /// [`Self::follow_idle`]) until the next `push`.
    pub fn is_drained(&self) -> bool {
        self.state != State::Playing && self.slots.iter().all(|s| !s.used)
    }

    /// For a caller that skipped the pulls of a drained buffer (a silent member): puts the idle
    /// playout position where those pulls, the last at `now_ns` with nothing queued, would have
    /// left it. The restart check in [`Self::push`] compares new packets with it.
    pub fn follow_idle(&mut self, now_ns: u64) {
        if self.state != State::Idle {
            return;
        }
        if let Some(base) = self.est.base() {
            let now = now_ns.min(MAX_NS) as i64;
            let desired = self.ns_to_ts(now.saturating_sub(base).saturating_sub(self.target_ns));
            self.cursor = desired + self.from48(BLOCK).max(1);
        }
    }

    // ---- conversions ----------------------------------------------------------------------

    fn ts_to_ns(&self, ts: i64) -> i64 {
        let v = i128::from(ts) * i128::from(NS_PER_S) / i128::from(self.clock);
        v.clamp(i128::from(i64::MIN / 2), i128::from(i64::MAX / 2)) as i64
    }

    fn ns_to_ts(&self, ns: i64) -> i64 {
        let v = i128::from(ns) * i128::from(self.clock) / i128::from(NS_PER_S);
        v.clamp(i128::from(i64::MIN / 2), i128::from(i64::MAX / 2)) as i64
    }

    fn to48(&self, d: i64) -> usize {
        let v = i128::from(d.max(0)) * i128::from(OUTPUT_RATE) / i128::from(self.clock);
        usize::try_from(v.min(i128::from(u32::MAX))).unwrap_or(0)
    }

    fn from48(&self, samples: usize) -> i64 {
        (samples as i64) * self.clock / i64::from(OUTPUT_RATE)
    }

    fn unwrap_ts(&mut self, ts: u32) -> i64 {
        match self.ts_ref {
            None => i64::from(ts),
            Some(r) => r + i64::from(ts.wrapping_sub(r as u32) as i32),
        }
    }

    fn unwrap_seq(&self, seq: u16) -> i64 {
        match self.seq_ref {
            None => i64::from(seq),
            Some(r) => r + i64::from(seq.wrapping_sub(r as u16) as i16),
        }
    }

    // ---- input ----------------------------------------------------------------------------

    fn valid(&self, payload: &[u8], duration: u32) -> bool {
        !payload.is_empty()
            && payload.len() <= MAX_STORED_PAYLOAD
            && duration > 0
            && i64::from(duration) <= self.clock * 120 / 1000
    }

    fn reset(&mut self) {
        for s in &mut self.slots {
            s.used = false;
        }
        self.state = State::Empty;
        self.ts_ref = None;
        self.seq_ref = None;
        self.highest_seq = None;
        self.last_played_seq = None;
        self.seen = [i64::MIN; 128];
        self.est.reset();
        self.plc_run_ns = 0;
        self.last_primary = None;
        self.markers_unreliable = false;
        self.stats.resets += 1;
    }

    /// Accept one primary packet.
    pub fn push(&mut self, p: &Packet<'_>) -> PushOutcome {
        if !self.valid(p.payload, p.duration) {
            self.stats.invalid += 1;
            return PushOutcome::Invalid;
        }
        let mut ts = self.unwrap_ts(p.timestamp);
        if self.state != State::Empty && ts.abs_diff(self.cursor) > (self.clock * 10) as u64 {
            // The stream restarted (or the sender jumped): start over from this packet.
            self.reset();
            ts = self.unwrap_ts(p.timestamp);
        }
        let seq = self.unwrap_seq(p.seq);
        let seen_i = (seq.rem_euclid(128)) as usize;
        if self.seen[seen_i] == seq {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        self.seen[seen_i] = seq;
        self.stats.received += 1;
        self.ts_ref = Some(ts);
        self.seq_ref = Some(seq);
        self.note_seq(seq, p.arrival_ns.min(MAX_NS));
        self.now_ns = self.now_ns.max(p.arrival_ns.min(MAX_NS));

        let dur = i64::from(p.duration);
        self.last_dur = dur;
        let marker = self.talkspurt_marker(seq, ts, dur, p.marker, p.payload);
        let arrival = p.arrival_ns.min(MAX_NS);
        let transit = (arrival as i64).saturating_sub(self.ts_to_ns(ts));
        self.est.update(arrival, transit);
        self.update_target();

        if self.state == State::Playing && ts + dur <= self.cursor {
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        let outcome = self.store(ts, dur, Some(seq), false, marker, p.payload);
        if self.state == State::Empty && outcome == PushOutcome::Stored {
            self.state = State::Idle;
            self.cursor = ts;
        }
        outcome
    }

    /// Accept an older frame carried as a redundant RED block (`timestamp` already has the
    /// block's offset subtracted). Never replaces a primary packet.
    pub fn push_redundant(&mut self, timestamp: u32, duration: u32, payload: &[u8]) -> PushOutcome {
        if !self.valid(payload, duration) {
            self.stats.invalid += 1;
            return PushOutcome::Invalid;
        }
        if self.state == State::Empty {
            // Nothing to anchor it to: a primary comes with it anyway.
            return PushOutcome::Late;
        }
        let ts = self.unwrap_ts(timestamp);
        let dur = i64::from(duration);
        if ts + dur <= self.cursor || ts.abs_diff(self.cursor) > (self.clock * 10) as u64 {
            return PushOutcome::Late;
        }
        if self.slots.iter().any(|s| s.used && s.ts == ts) {
            return PushOutcome::Duplicate;
        }
        self.red_seen = true;
        self.store(ts, dur, None, true, false, payload)
    }

    /// Whether a packet's marker bit means "first packet of a talkspurt" (RFC 3551). A marked
    /// packet that directly follows a marked, non-DTX packet (next sequence number, timestamp
    /// right where that one ended) cannot start a talkspurt: there was no pause. A sender doing
    /// that marks every packet (aiortc 1.4 does), and its markers are ignored from then on;
    /// otherwise every lost or late packet would look like a sender pause and play as silence.
    fn talkspurt_marker(
        &mut self,
        seq: i64,
        ts: i64,
        dur: i64,
        marker: bool,
        payload: &[u8],
    ) -> bool {
        if marker && !self.markers_unreliable {
            if let Some((pseq, pend, pmarker, pdtx)) = self.last_primary {
                if pmarker && !pdtx && pseq + 1 == seq && pend == ts {
                    self.markers_unreliable = true;
                }
            }
        }
        self.last_primary = Some((
            seq,
            ts + dur,
            marker,
            crate::voice::rtp::is_opus_dtx(payload),
        ));
        if marker && self.markers_unreliable {
            self.stats.markers_ignored += 1;
            return false;
        }
        marker
    }

    fn note_seq(&mut self, seq: i64, arrival_ns: u64) {
        const A: f32 = 0.02;
        match self.highest_seq {
            Some(h) if seq <= h => {}
            Some(h) => {
                let gap = (seq - h - 1).min(50);
                for _ in 0..gap {
                    self.loss = self.loss * (1.0 - A) + A;
                }
                self.stats.seq_gaps += gap as u64;
                if gap > 0 {
                    self.fec_until_ns = arrival_ns.saturating_add(FEC_MEMORY_NS);
                }
                self.loss *= 1.0 - A;
                self.highest_seq = Some(seq);
            }
            None => self.highest_seq = Some(seq),
        }
    }

    fn update_target(&mut self) {
        if self.est.samples() < 20 {
            return;
        }
        let q = self.est.quantile_ms(self.cfg.quantile);
        let mut t = (q + 10.0) as i64 * MS;
        if self.now_ns < self.fec_until_ns {
            t += self.ts_to_ns(self.last_dur);
        }
        let t = t.clamp(
            i64::from(self.cfg.min_target_ms) * MS,
            i64::from(self.cfg.max_target_ms.max(self.cfg.min_target_ms)) * MS,
        );
        if t >= self.target_ns {
            self.target_ns = t;
        } else {
            self.target_ns = (self.target_ns - MS / 2).max(t);
        }
        let ms = self.target_ms();
        if !self.warm {
            self.warm = true;
            self.stats.target_min_ms = ms;
            self.stats.target_max_ms = ms;
        }
        self.stats.target_min_ms = self.stats.target_min_ms.min(ms);
        self.stats.target_max_ms = self.stats.target_max_ms.max(ms);
    }

    fn store(
        &mut self,
        ts: i64,
        dur: i64,
        seq: Option<i64>,
        redundant: bool,
        marker: bool,
        payload: &[u8],
    ) -> PushOutcome {
        // A primary replaces a redundant copy of the same frame.
        let mut idx = self
            .slots
            .iter()
            .position(|s| s.used && s.ts == ts && s.redundant);
        if idx.is_none() {
            if !redundant
                && self
                    .slots
                    .iter()
                    .any(|s| s.used && s.ts == ts && !s.redundant)
            {
                self.stats.duplicates += 1;
                return PushOutcome::Duplicate;
            }
            idx = self.slots.iter().position(|s| !s.used);
        }
        let i = match idx {
            Some(i) => i,
            None => {
                // Full: evict the oldest if the new one is newer.
                let (oldest, oldest_ts) = self
                    .slots
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i, s.ts))
                    .min_by_key(|&(_, t)| t)
                    .unwrap_or((0, i64::MAX));
                if oldest_ts >= ts {
                    self.stats.overflow += 1;
                    return PushOutcome::Overflow;
                }
                self.stats.overflow += 1;
                oldest
            }
        };
        let s = &mut self.slots[i];
        s.used = true;
        s.ts = ts;
        s.dur = dur;
        s.seq = seq;
        s.redundant = redundant;
        s.dtx = crate::voice::rtp::is_opus_dtx(payload);
        s.fec = crate::voice::rtp::opus_has_lbrr(payload);
        s.marker = marker;
        s.payload.clear();
        s.payload.extend_from_slice(payload);
        PushOutcome::Stored
    }

    // ---- output ---------------------------------------------------------------------------

    /// What to decode next, at time `now_ns`, with `queued` decoded samples (48 kHz) still
    /// waiting at the caller. Always returns at least one sample's worth.
    pub fn pull(&mut self, now_ns: u64, queued: usize) -> Frame<'_> {
        let now = now_ns.min(MAX_NS) as i64;
        let ten = self.from48(BLOCK).max(1);
        for _ in 0..4 {
            if self.state == State::Empty {
                break;
            }
            let base = match self.est.base() {
                Some(b) => b,
                None => break,
            };
            let desired = self.ns_to_ts(now.saturating_sub(base).saturating_sub(self.target_ns));
            let queued_ts = self.from48(queued);
            if self.state == State::Idle {
                // Follow base + target exactly while nothing is heard.
                self.cursor = desired + queued_ts;
                let cursor = self.cursor;
                self.drop_before(cursor, true);
                match self.first_after(cursor, true) {
                    Some(i) if self.slots[i].ts <= cursor => {
                        self.cursor = self.slots[i].ts;
                        self.start_playing();
                        continue;
                    }
                    Some(i) if self.slots[i].ts < cursor + ten => {
                        let gap = self.slots[i].ts - cursor;
                        let n = self.to48(gap);
                        self.cursor = self.slots[i].ts;
                        self.start_playing();
                        if n == 0 {
                            continue;
                        }
                        return self.silence(n);
                    }
                    _ => {
                        self.cursor += ten;
                        return self.silence(BLOCK);
                    }
                }
            }
            // Playing.
            let cursor = self.cursor;
            self.drop_before(cursor, false);
            if let Some(i) = self
                .slots
                .iter()
                .position(|s| s.used && s.ts == cursor && !s.redundant)
            {
                let dur = self.slots[i].dur;
                self.slots[i].used = false;
                self.cursor += dur;
                if self.slots[i].dtx {
                    // The sender went quiet: follow the target freely from here.
                    self.state = State::Idle;
                    return self.silence(self.to48(dur).max(1));
                }
                self.last_played_seq = self.slots[i].seq;
                self.fec_capable = self.slots[i].fec;
                self.last_nonspeech =
                    crate::voice::rtp::opus_vad(&self.slots[i].payload) == Some(false);
                self.plc_run_ns = 0;
                self.stall_run = 0;
                self.stats.played += 1;
                let samples = self.to48(dur);
                return Frame::Packet {
                    payload: &self.slots[i].payload,
                    samples,
                };
            }
            // The packet at the cursor is missing.
            let next = self.first_after(cursor, false);
            if let Some(n) = next {
                let s = &self.slots[n];
                let contiguous =
                    matches!((s.seq, self.last_played_seq), (Some(a), Some(b)) if a == b + 1);
                if contiguous || s.dtx || s.marker {
                    // Nothing was lost: the sender paused (DTX without packets).
                    self.stats.dtx_gaps += 1;
                    self.state = State::Idle;
                    continue;
                }
            }
            let early_ns = self.ts_to_ns(cursor.saturating_sub(queued_ts).saturating_sub(desired));
            let red_at = self
                .slots
                .iter()
                .position(|s| s.used && s.redundant && s.ts == cursor);
            // Wait (stall) if we are early for the target, or, on a stream with FEC or RED, a
            // little past it so the following packet can bring this one's FEC or copy.
            let wait_for_next =
                (self.fec_capable || self.red_seen) && next.is_none() && early_ns > -20 * MS;
            if (early_ns >= 10 * MS || wait_for_next)
                && self.stall_run < MAX_STALLS
                && red_at.is_none()
            {
                // Not late yet by the target's measure: wait for it, concealing, playout stays.
                self.stats.stalls += 1;
                self.stall_run += 1;
                return self.conceal(BLOCK, false);
            }
            let hole = next.map(|n| self.slots[n].ts - cursor);
            let fec_from = next.filter(|&n| {
                let s = &self.slots[n];
                !s.redundant
                    && s.fec
                    && hole.is_some_and(|h| h <= s.dur)
                    && self.to48(s.ts - cursor) >= 120
            });
            let use_red = red_at.is_some() && (self.cfg.red_before_fec || fec_from.is_none());
            if let (true, Some(r)) = (use_red, red_at) {
                let dur = self.slots[r].dur;
                self.slots[r].used = false;
                self.cursor += dur;
                self.plc_run_ns = 0;
                self.stats.red += 1;
                self.last_nonspeech = false;
                let samples = self.to48(dur);
                return Frame::Red {
                    payload: &self.slots[r].payload,
                    samples,
                };
            }
            if let Some(n) = fec_from {
                let samples = (self.to48(self.slots[n].ts - cursor) / 120 * 120).min(5760);
                self.cursor += self.from48(samples);
                self.plc_run_ns = 0;
                self.stats.fec += 1;
                self.last_nonspeech = false;
                return Frame::Fec {
                    payload: &self.slots[n].payload,
                    samples,
                };
            }
            match hole.map(|h| self.to48(h)) {
                Some(h) if h < 120 => {
                    // A sliver (odd timestamps): skip to the next packet.
                    self.cursor += hole.unwrap_or(0).max(1);
                    continue;
                }
                Some(h) => return self.conceal(h.min(BLOCK) / 120 * 120, true),
                None => return self.conceal(BLOCK, true),
            }
        }
        self.silence(BLOCK)
    }

    fn start_playing(&mut self) {
        self.state = State::Playing;
        self.plc_run_ns = 0;
        self.last_played_seq = None;
        self.stats.anchors += 1;
    }

    fn silence(&mut self, samples: usize) -> Frame<'static> {
        self.stats.silence_samples += samples as u64;
        Frame::Silence { samples }
    }

    /// Conceal `samples`; `advance` moves the playout over the hole, otherwise it is a stall.
    fn conceal(&mut self, samples: usize, advance: bool) -> Frame<'static> {
        let samples = samples.max(120);
        self.plc_run_ns += samples as i64 * NS_PER_S / i64::from(OUTPUT_RATE);
        if self.plc_run_ns > i64::from(self.cfg.max_plc_ms) * MS {
            // Concealment gave up: silence until something playable arrives.
            self.state = State::Idle;
            if advance {
                self.cursor += self.from48(samples);
            }
            return self.silence(samples);
        }
        if advance {
            self.cursor += self.from48(samples);
        }
        if self.last_nonspeech {
            // The last packet played was one the sender's VAD called not speech: what is
            // missing is most likely a pause (a DTX refresh frame ends one), at worst the
            // continuation of non-speech. Silence costs nothing; libopus's concealment of it
            // cost a third of every pause in CPU (decision 0006). The playout keeps its place
            // (no re-anchor), so a late successor still brings its FEC in time.
            self.stats.silence_samples += samples as u64;
            return Frame::Silence { samples };
        }
        self.stats.plc_samples += samples as u64;
        Frame::Plc { samples }
    }

    /// Free slots that can no longer be played from `cursor` on.
    fn drop_before(&mut self, cursor: i64, idle: bool) {
        for s in &mut self.slots {
            if !s.used {
                continue;
            }
            let stale = if idle {
                s.ts + s.dur <= cursor || (s.dtx && s.ts <= cursor)
            } else {
                s.ts < cursor
            };
            if stale {
                s.used = false;
                if !s.redundant && !s.dtx {
                    self.stats.late += 1;
                }
            }
        }
    }

    /// Index of the earliest slot ending after `cursor` (`playable_only`: skip DTX packets).
    fn first_after(&self, cursor: i64, playable_only: bool) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.used && s.ts + s.dur > cursor && !(playable_only && s.dtx))
            .filter(|(_, s)| playable_only || s.ts > cursor)
            .min_by_key(|(_, s)| (s.ts, s.redundant))
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests;
