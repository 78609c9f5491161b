//! One member's receive pipeline: RTP in, exactly 480 samples (10 ms, 48 kHz mono) out per pull.
//!
//! `push` takes every packet the peer reports for the member (Opus, RED, CN, telephone-event);
//! `pull_10ms` is called by the party's playout clock every 10 ms. After construction nothing
//! allocates: the jitter buffer's slots and the decoded-sample FIFO are preallocated, and a
//! 40 ms packet decodes once into the FIFO and is served over four pulls.
//!
//! A member who is silent costs nothing: once the jitter buffer holds nothing and is not
//! playing (a pause, concealment over) and what is left decoded is silence, the pulls do no
//! work at all ([`MemberVoice::pull_10ms_if_sound`]) until the next packet is pushed.

use crate::voice::decode::{DecoderError, OpusDecoder, MAX_FRAME};
use crate::voice::jitter::{Frame, JitterBuffer, JitterConfig, Packet, PushOutcome};
use crate::voice::rtp::{opus_samples_48k, opus_vad, parse_red, RtpIn};
use crate::voice::{ms_ns, rms, samples_48k, BLOCK, OUTPUT_RATE};

/// The playout may run this much later than the jitter buffer's target before quiet blocks
/// are dropped to catch up (a sender whose clock is fast fills the buffer while it talks).
const DROP_ABOVE_NS: i64 = ms_ns(30);
/// The playout may run this much earlier than the target before quiet blocks are repeated.
const REPEAT_BELOW_NS: i64 = ms_ns(10);
/// RMS under which a block always counts as quiet enough to drop unheard (about -46 dBFS).
const QUIET_RMS: f32 = 0.005;
/// Audio the sender's own VAD called "not speech" (room noise between words) counts as quiet
/// up to this level (about -34 dBFS).
const NONSPEECH_RMS: f32 = 0.02;
/// Provenance runs kept for the FIFO's samples.
const MAX_SEGS: usize = 8;
/// Crossfade over the seam of a dropped block (2.5 ms).
const SEAM: usize = samples_48k(5) / 2;

/// What the SDP negotiated for this member's audio.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// Opus payload type (96 in the recorded offers).
    pub opus_pt: u8,
    /// RED payload type wrapping Opus (63 in the recorded offers), if negotiated.
    pub red_pt: Option<u8>,
    /// Jitter buffer tuning; its `clock_rate` is the Opus RTP clock from the SDP.
    pub jitter: JitterConfig,
}

impl MemberConfig {
    /// Opus at `clock_rate` with payload type `opus_pt`, no RED.
    pub fn new(clock_rate: u32, opus_pt: u8) -> Self {
        Self {
            opus_pt,
            red_pt: None,
            jitter: JitterConfig::new(clock_rate),
        }
    }
}

/// Counters of packets the pipeline did not pass to the jitter buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberStats {
    /// Opus or RED payloads that did not parse (treated as lost).
    pub malformed: u64,
    /// Other payload types (CN, telephone-event, unknown).
    pub ignored: u64,
    pub pulls: u64,
    /// Quiet 10 ms blocks dropped to bring an over-full buffer back to its target.
    pub quiet_drops: u64,
    /// Quiet 10 ms blocks played twice to let a draining buffer refill to its target.
    pub quiet_repeats: u64,
    /// Pulls that could not be filled completely (should stay 0).
    pub short_pulls: u64,
    /// Pulls answered "silent" without any work (nothing had arrived since the member fell
    /// silent).
    pub silent_pulls: u64,
}

/// Jitter buffer + Opus decoder for one member.
#[derive(Debug)]
pub struct MemberVoice {
    cfg: MemberConfig,
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    /// Decoded samples: `queued` of them from `head` on. Served by moving `head`, and moved
    /// back to the front only before the next decode (then fewer than a block are left).
    fifo: Vec<f32>,
    head: usize,
    queued: usize,
    /// Where the FIFO's samples came from: runs of `(samples, not_speech)` from its front;
    /// `not_speech` when the packet's SILK VAD flags all said so, or for silence.
    segs: [(usize, bool); MAX_SEGS],
    nsegs: usize,
    /// Nothing to play until the next packet: pulls do no work.
    silent: bool,
    /// Samples of silence the silent pulls stood for (capped; the decoder is told at the next
    /// packet).
    skipped: usize,
    /// Playout time of the last pull.
    last_pull_ns: u64,
    stats: MemberStats,
}

impl MemberVoice {
    pub fn new(cfg: MemberConfig) -> Result<Self, DecoderError> {
        Ok(Self {
            jitter: JitterBuffer::new(cfg.jitter.clone()),
            decoder: OpusDecoder::new()?,
            fifo: vec![0.0; BLOCK + MAX_FRAME],
            head: 0,
            queued: 0,
            segs: [(0, false); MAX_SEGS],
            nsegs: 0,
            silent: false,
            skipped: 0,
            last_pull_ns: 0,
            stats: MemberStats::default(),
            cfg,
        })
    }

    pub fn jitter(&self) -> &JitterBuffer {
        &self.jitter
    }

    pub fn decoder(&self) -> &OpusDecoder {
        &self.decoder
    }

    pub fn stats(&self) -> &MemberStats {
        &self.stats
    }

    /// Decoded samples waiting to be pulled.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Whether the member fell silent: pulls do no work until the next packet.
    pub fn is_silent(&self) -> bool {
        self.silent
    }

    /// Extended RTP timestamp of the next sample `pull_10ms` will return (while silent: as the
    /// last pull that did work left it).
    pub fn playout_ts(&self) -> Option<i64> {
        self.jitter.playout_ts(self.queued)
    }

    fn clock_units(&self, samples48: u32) -> u32 {
        let c = u64::from(self.jitter.clock_rate());
        ((u64::from(samples48) * c / u64::from(OUTPUT_RATE)) as u32).max(1)
    }

    /// Hand over one received RTP packet.
    pub fn push(&mut self, p: &RtpIn<'_>) {
        if self.silent {
            self.wake();
        }
        if p.payload_type == self.cfg.opus_pt {
            self.push_opus(p.seq, p.timestamp, p.marker, p.payload, p.arrival_ns);
        } else if Some(p.payload_type) == self.cfg.red_pt {
            let Some(red) = parse_red(p.payload) else {
                self.stats.malformed += 1;
                return;
            };
            match red.primary {
                Some(b) if b.payload_type == self.cfg.opus_pt => {
                    self.push_opus(p.seq, p.timestamp, p.marker, b.payload, p.arrival_ns)
                }
                _ => self.stats.ignored += 1,
            }
            for b in red.redundant() {
                if b.payload_type != self.cfg.opus_pt {
                    continue;
                }
                if let Some(d) = opus_samples_48k(b.payload) {
                    let dur = self.clock_units(d);
                    let ts = p.timestamp.wrapping_sub(b.ts_offset);
                    let _ = self.jitter.push_redundant(ts, dur, b.payload);
                }
            }
        } else {
            self.stats.ignored += 1;
        }
    }

    fn push_opus(&mut self, seq: u16, ts: u32, marker: bool, payload: &[u8], arrival_ns: u64) {
        let Some(d) = opus_samples_48k(payload) else {
            self.stats.malformed += 1;
            return;
        };
        let duration = self.clock_units(d);
        let pkt = Packet {
            seq,
            timestamp: ts,
            duration,
            payload,
            arrival_ns,
            marker,
        };
        if self.jitter.push(&pkt) == PushOutcome::Invalid {
            self.stats.malformed += 1;
        }
    }

    /// Whether `len` samples from `start` of the FIFO are quiet enough to drop or repeat:
    /// near silence, or not speech by the sender's VAD and under -34 dBFS.
    fn quiet(&self, start: usize, len: usize) -> bool {
        let r = rms(&self.waiting()[start..start + len]);
        r < QUIET_RMS || (r < NONSPEECH_RMS && self.not_speech(start, start + len))
    }

    /// All samples in `from..to` of the FIFO came from non-speech packets or silence.
    fn not_speech(&self, from: usize, to: usize) -> bool {
        let mut pos = 0;
        for &(len, ns) in &self.segs[..self.nsegs] {
            let end = pos + len;
            if end > from && pos < to && !ns {
                return false;
            }
            pos = end;
        }
        pos >= to
    }

    fn note_segment(&mut self, n: usize, not_speech: bool) {
        if n == 0 {
            return;
        }
        match self.nsegs {
            0 => {}
            k if self.segs[k - 1].1 == not_speech => {
                self.segs[k - 1].0 += n;
                return;
            }
            k if k == MAX_SEGS => {
                // No room to keep them apart: merge, conservatively as speech.
                self.segs[k - 1] = (self.segs[k - 1].0 + n, false);
                return;
            }
            _ => {}
        }
        self.segs[self.nsegs] = (n, not_speech);
        self.nsegs += 1;
    }

    /// The decoded samples waiting, oldest first.
    fn waiting(&self) -> &[f32] {
        &self.fifo[self.head..self.head + self.queued]
    }

    /// Remove `n` samples from the front of the FIFO.
    fn consume(&mut self, n: usize) {
        self.head += n;
        self.queued -= n;
        let mut left = n;
        while left > 0 && self.nsegs > 0 {
            if self.segs[0].0 > left {
                self.segs[0].0 -= left;
                break;
            }
            left -= self.segs[0].0;
            self.segs.copy_within(1..self.nsegs, 0);
            self.nsegs -= 1;
        }
    }

    /// Drift while a member talks without pause (no DTX) slowly over-fills the buffer: drop a
    /// quiet block (between words) when the playout runs late, crossfading over the seam.
    fn maybe_drop_quiet(&mut self, now_ns: u64) {
        if self.queued < 2 * BLOCK {
            return;
        }
        match self.jitter.lateness_ns(now_ns, self.queued) {
            Some(late) if late > DROP_ABOVE_NS => {}
            _ => return,
        }
        if !self.quiet(0, BLOCK) || !self.quiet(BLOCK, BLOCK) {
            return;
        }
        let fifo = &mut self.fifo[self.head..self.head + self.queued];
        for i in 0..SEAM {
            let w = (i + 1) as f32 / (SEAM + 1) as f32;
            fifo[BLOCK + i] = fifo[BLOCK + i] * w + fifo[i] * (1.0 - w);
        }
        self.consume(BLOCK);
        self.stats.quiet_drops += 1;
    }

    /// A sender whose clock is slow drains the buffer while it talks: when the playout runs
    /// well ahead of the target and the next block is quiet, play that block twice.
    fn repeat_quiet(&mut self, now_ns: u64) -> bool {
        match self.jitter.lateness_ns(now_ns, self.queued) {
            Some(late) if late < -REPEAT_BELOW_NS => {}
            _ => return false,
        }
        if !self.quiet(0, BLOCK) {
            return false;
        }
        self.stats.quiet_repeats += 1;
        true
    }

    /// A packet after silent pulls: the jitter buffer and the decoder are brought to where the
    /// skipped pulls (each a [`Frame::Silence`] of 10 ms) would have left them.
    fn wake(&mut self) {
        self.silent = false;
        self.jitter.follow_idle(self.last_pull_ns);
        self.decoder.skipped_silence(self.skipped);
        self.skipped = 0;
    }

    /// Nothing can be heard before the next packet: the jitter buffer holds none and is not
    /// playing (every pull would be silence), and what is decoded and waiting is silence.
    fn nothing_to_play(&self) -> bool {
        self.jitter.is_drained() && self.waiting().iter().all(|&s| s == 0.0)
    }

    /// Fill `out` with the next 10 ms of this member's voice (silence when there is none).
    pub fn pull_10ms(&mut self, now_ns: u64, out: &mut [f32; BLOCK]) {
        if !self.pull_10ms_if_sound(now_ns, out) {
            out.fill(0.0);
        }
    }

    /// As [`Self::pull_10ms`], but while the member is silent (nothing to play until the next
    /// packet) returns `false` at once and leaves `out` alone: no jitter buffer, no decoder,
    /// no copy. The first packet pushed ends that, and its pull plays it as the jitter buffer
    /// says (no delay is added).
    pub fn pull_10ms_if_sound(&mut self, now_ns: u64, out: &mut [f32; BLOCK]) -> bool {
        self.stats.pulls += 1;
        self.last_pull_ns = now_ns;
        if self.silent {
            self.stats.silent_pulls += 1;
            self.skipped = (self.skipped + BLOCK).min(MAX_FRAME);
            return false;
        }
        if self.queued < BLOCK && self.head > 0 {
            // Room for the next frames behind what is left (under a block).
            self.fifo.copy_within(self.head..self.head + self.queued, 0);
            self.head = 0;
        }
        let mut rounds = 0;
        while self.queued < BLOCK && rounds < 8 {
            rounds += 1;
            let frame = self.jitter.pull(now_ns, self.queued);
            let nonspeech = match frame {
                Frame::Packet { payload, .. } | Frame::Red { payload, .. } => {
                    opus_vad(payload) == Some(false)
                }
                Frame::Silence { .. } => true,
                Frame::Fec { .. } | Frame::Plc { .. } => false,
            };
            let n = self
                .decoder
                .decode(&frame, &mut self.fifo[self.head + self.queued..]);
            self.note_segment(n, nonspeech);
            self.queued += n;
        }
        self.maybe_drop_quiet(now_ns);
        if self.queued < BLOCK {
            self.stats.short_pulls += 1;
            self.fifo[self.head + self.queued..self.head + BLOCK].fill(0.0);
            self.note_segment(BLOCK - self.queued, true);
            self.queued = BLOCK;
        }
        if self.repeat_quiet(now_ns) {
            // Play the quiet block now and keep it for the next pull as well.
            out.copy_from_slice(&self.waiting()[..BLOCK]);
            return true;
        }
        out.copy_from_slice(&self.waiting()[..BLOCK]);
        self.consume(BLOCK);
        if self.nothing_to_play() {
            // The decoded silence left is dropped: the jitter buffer placed what comes next
            // by its target delay either way (idle, it follows the target exactly).
            self.silent = true;
            self.head = 0;
            self.queued = 0;
            self.nsegs = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Two talkspurts of one second with a two-second pause between (no packets: DTX, as a
    /// PS5 sends). While nothing arrives the member costs no decode; the second talkspurt is
    /// heard as promptly as the first.
    #[test]
    fn a_silent_member_costs_no_decode_and_resumes_on_the_first_packet() {
        let packets = crate::voice::decode::tests::packets(50);
        // (arrival, RTP timestamp): the second talkspurt starts at 3 s, sequence numbers go on.
        let sent = |k: usize| -> (u64, u32) {
            let at = if k < 25 { k } else { k + 50 };
            (at as u64 * 40 * MS, at as u32 * 640)
        };
        let mut m = MemberVoice::new(MemberConfig::new(16_000, 96)).unwrap();
        let mut out = [0f32; BLOCK];
        let mut next = 0;
        let mut onsets = Vec::new();
        let mut heard = false;
        let mut calls_in_pause = None;
        for tick in 0..450u64 {
            let now = tick * 10 * MS;
            while next < packets.len() && sent(next).0 <= now {
                let (arrival_ns, timestamp) = sent(next);
                m.push(&RtpIn {
                    payload_type: 96,
                    seq: next as u16,
                    timestamp,
                    marker: next == 0 || next == 25,
                    payload: &packets[next],
                    arrival_ns,
                });
                next += 1;
            }
            let sound = m.pull_10ms_if_sound(now, &mut out);
            let loud = sound && rms(&out) > 0.05;
            if loud && !heard {
                onsets.push(now);
            }
            heard = loud;
            if now == 1_500 * MS {
                assert!(m.is_silent(), "silent 500 ms after the last packet");
                calls_in_pause = Some(m.decoder().stats().calls);
            }
            if (1_500 * MS..3_000 * MS).contains(&now) {
                assert!(!sound, "a silent pull at {} ms", now / MS);
            }
            if now == 2_990 * MS {
                // Not one decoder call while nothing arrived.
                assert_eq!(Some(m.decoder().stats().calls), calls_in_pause);
            }
            if now == 3_000 * MS {
                assert!(sound, "the first packet ends the silence at once");
            }
        }
        let silent_pulls = m.stats().silent_pulls;
        assert!(silent_pulls >= 150, "{silent_pulls} silent pulls");
        let onset_delays: Vec<u64> = onsets
            .iter()
            .zip([0, 3_000 * MS])
            .map(|(t, first)| (t - first) / MS)
            .collect();
        println!("onsets {onset_delays:?} ms after the first packet, {silent_pulls} silent pulls");
        assert_eq!(onset_delays.len(), 2, "two talkspurts heard: {onsets:?}");
        assert!(
            onset_delays[1] <= onset_delays[0] + 10,
            "the second talkspurt waited longer: {onset_delays:?} ms"
        );
        assert_eq!(m.stats().short_pulls, 0);
    }

    /// Garbage of every kind through the whole pipeline: no panic, always 480 finite samples.
    #[test]
    fn hostile_packets_never_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for clock in [16_000, 48_000] {
            let mut cfg = MemberConfig::new(clock, 96);
            cfg.red_pt = Some(63);
            let mut m = MemberVoice::new(cfg).unwrap();
            let mut buf = [0u8; 1600];
            let mut out = [0f32; BLOCK];
            let mut seq = 0u16;
            let mut ts = 0u32;
            for step in 0..6_000u64 {
                let r = next();
                let len = (next() % 300) as usize;
                for b in &mut buf[..len] {
                    *b = next() as u8;
                }
                if r % 4 == 0 && len > 0 {
                    // a plausible SILK/CELT TOC so libopus really decodes garbage
                    buf[0] = (next() as u8) & 0xfc;
                }
                seq = if r % 50 == 0 {
                    next() as u16
                } else {
                    seq.wrapping_add(1)
                };
                ts = if r % 60 == 0 {
                    next() as u32
                } else {
                    ts.wrapping_add(clock / 25)
                };
                let pt = [96u8, 96, 96, 63, 13, 105, 110, 127][(r % 8) as usize];
                let arrival = if r % 101 == 0 {
                    next()
                } else {
                    step * 10_000_000
                };
                m.push(&RtpIn {
                    payload_type: pt,
                    seq,
                    timestamp: ts,
                    marker: r % 7 == 0,
                    payload: &buf[..len],
                    arrival_ns: arrival,
                });
                let now = if r % 103 == 0 {
                    u64::MAX
                } else {
                    step * 10_000_000
                };
                m.pull_10ms(now, &mut out);
                assert!(out.iter().all(|s| s.is_finite()));
            }
            assert_eq!(m.stats().short_pulls, 0);
        }
    }
}
