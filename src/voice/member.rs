//! One member's receive pipeline: RTP in, exactly 480 samples (10 ms, 48 kHz mono) out per pull.
//!
//! `push` takes every packet the peer reports for the member (Opus, RED, CN, telephone-event);
//! `pull_10ms` is called by the party's playout clock every 10 ms. After construction nothing
//! allocates: the jitter buffer's slots and the decoded-sample FIFO are preallocated, and a
//! 40 ms packet decodes once into the FIFO and is served over four pulls.

use crate::voice::decode::{DecoderError, OpusDecoder, MAX_FRAME};
use crate::voice::jitter::{JitterBuffer, JitterConfig, Packet, PushOutcome};
use crate::voice::rtp::{opus_samples_48k, parse_red, RtpIn};
use crate::voice::{BLOCK, OUTPUT_RATE};

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
    /// Pulls that could not be filled completely (should stay 0).
    pub short_pulls: u64,
}

/// Jitter buffer + Opus decoder for one member.
#[derive(Debug)]
pub struct Member {
    cfg: MemberConfig,
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    fifo: Vec<f32>,
    queued: usize,
    stats: MemberStats,
}

impl Member {
    pub fn new(cfg: MemberConfig) -> Result<Self, DecoderError> {
        Ok(Self {
            jitter: JitterBuffer::new(cfg.jitter.clone()),
            decoder: OpusDecoder::new()?,
            fifo: vec![0.0; BLOCK + MAX_FRAME],
            queued: 0,
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

    /// Extended RTP timestamp of the next sample `pull_10ms` will return.
    pub fn playout_ts(&self) -> Option<i64> {
        self.jitter.playout_ts(self.queued)
    }

    fn clock_units(&self, samples48: u32) -> u32 {
        let c = u64::from(self.jitter.clock_rate());
        ((u64::from(samples48) * c / u64::from(OUTPUT_RATE)) as u32).max(1)
    }

    /// Hand over one received RTP packet.
    pub fn push(&mut self, p: &RtpIn<'_>) {
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

    /// Fill `out` with the next 10 ms of this member's voice (silence when there is none).
    pub fn pull_10ms(&mut self, now_ns: u64, out: &mut [f32; BLOCK]) {
        self.stats.pulls += 1;
        let mut rounds = 0;
        while self.queued < BLOCK && rounds < 8 {
            rounds += 1;
            let frame = self.jitter.pull(now_ns, self.queued);
            let n = self.decoder.decode(&frame, &mut self.fifo[self.queued..]);
            self.queued += n;
        }
        if self.queued < BLOCK {
            self.stats.short_pulls += 1;
            self.fifo[self.queued..BLOCK].fill(0.0);
            self.queued = BLOCK;
        }
        out.copy_from_slice(&self.fifo[..BLOCK]);
        self.fifo.copy_within(BLOCK..self.queued, 0);
        self.queued -= BLOCK;
    }
}
