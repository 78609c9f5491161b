//! libopus decode of what the jitter buffer says to play: mono f32 at 48 kHz.
//!
//! A packet libopus rejects is concealed instead (malformed input is loss), so every call
//! fills exactly the samples the [`Frame`] asks for.

use crate::voice::jitter::Frame;
use crate::voice::OUTPUT_RATE;

/// Largest frame libopus produces (120 ms at 48 kHz).
pub const MAX_FRAME: usize = 5760;

/// Why a decoder could not be made.
#[derive(Debug)]
pub struct DecoderError(pub String);

impl std::fmt::Display for DecoderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "opus decoder: {}", self.0)
    }
}

impl std::error::Error for DecoderError {}

/// Counters of what the decoder did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub packets: u64,
    pub fec: u64,
    pub plc: u64,
    /// Packets (or FEC sources) libopus refused; concealed instead.
    pub errors: u64,
}

/// One member's Opus decoder (mono, 48 kHz; a stereo packet is downmixed by libopus).
pub struct OpusDecoder {
    dec: opus::Decoder,
    stats: DecodeStats,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("stats", &self.stats)
            .finish()
    }
}

impl OpusDecoder {
    pub fn new() -> Result<Self, DecoderError> {
        let dec = opus::Decoder::new(OUTPUT_RATE, opus::Channels::Mono)
            .map_err(|e| DecoderError(e.to_string()))?;
        Ok(Self {
            dec,
            stats: DecodeStats::default(),
        })
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Decode `frame` into `out`, which must hold at least `frame.samples()` (capped at
    /// [`MAX_FRAME`]). Returns the samples written: always `min(frame.samples(), MAX_FRAME,
    /// out.len())`.
    pub fn decode(&mut self, frame: &Frame<'_>, out: &mut [f32]) -> usize {
        let want = frame.samples().min(MAX_FRAME).min(out.len());
        let out = &mut out[..want];
        match *frame {
            Frame::Silence { .. } => {
                out.fill(0.0);
                return want;
            }
            Frame::Packet { payload, .. } | Frame::Red { payload, .. } => {
                self.stats.packets += 1;
                match self.dec.decode_float(payload, out, false) {
                    Ok(n) if n == want => return want,
                    Ok(n) if n < want && n > 0 => {
                        // Shorter than its timestamps said: conceal the rest.
                        self.conceal(&mut out[n..]);
                        return want;
                    }
                    _ => self.stats.errors += 1,
                }
            }
            Frame::Fec { payload, .. } => {
                self.stats.fec += 1;
                // libopus: frame_size must be a multiple of 2.5 ms; it conceals what FEC can't cover.
                let n = want / 120 * 120;
                if n > 0 {
                    match self.dec.decode_float(payload, &mut out[..n], true) {
                        Ok(got) if got == n => {
                            self.conceal(&mut out[n..]);
                            return want;
                        }
                        _ => self.stats.errors += 1,
                    }
                }
            }
            Frame::Plc { .. } => {}
        }
        self.conceal(out);
        want
    }

    /// Fill `out` with libopus concealment (zeros if libopus refuses).
    fn conceal(&mut self, out: &mut [f32]) {
        if out.is_empty() {
            return;
        }
        self.stats.plc += 1;
        let mut done = 0;
        // In steps libopus accepts (multiples of 2.5 ms, at most 120 ms).
        while out.len() - done >= 120 {
            let n = ((out.len() - done) / 120 * 120).min(MAX_FRAME);
            match self.dec.decode_float(&[], &mut out[done..done + n], false) {
                Ok(got) if got > 0 && got <= n => done += got,
                _ => break,
            }
        }
        out[done..].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_payloads_are_concealed_not_panics() {
        let mut d = OpusDecoder::new().unwrap();
        let mut out = [1.0f32; 1920];
        for p in [
            &[][..],
            &[0xff][..],
            &[0xfb, 0xff, 0xff, 0xff][..],
            &[3, 0][..],
        ] {
            let f = Frame::Packet {
                payload: p,
                samples: 1920,
            };
            assert_eq!(d.decode(&f, &mut out), 1920);
            assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
            let f = Frame::Fec {
                payload: p,
                samples: 1000,
            };
            assert_eq!(d.decode(&f, &mut out), 1000);
        }
        // asks for more than out holds
        let f = Frame::Plc { samples: 99_999 };
        assert_eq!(d.decode(&f, &mut out), 1920);
    }
}
