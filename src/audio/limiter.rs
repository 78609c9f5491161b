//! A peak limiter for the party mix: a loud party (many members shouting at
//! once) is turned down smoothly instead of clipping.
//!
//! Per 10 ms block: if the block's peak would pass the ceiling, the gain
//! drops to what the block needs within 1 ms; otherwise it recovers towards
//! unity with a 200 ms time constant. Gain changes are ramped sample by
//! sample, so there are no steps (clicks). No look-ahead, so no added delay;
//! a final clamp keeps the output inside [-1, 1] during the 1 ms attack.

use super::ring::{BLOCK_FRAMES, SAMPLE_RATE};

/// The highest level the mix reaches: -0.2 dBFS.
pub const CEILING: f32 = 0.977;
const ATTACK_FRAMES: usize = SAMPLE_RATE as usize / 1000;
const RELEASE_SECONDS: f32 = 0.2;

pub struct Limiter {
    gain: f32,
    release_step: f32,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    pub fn new() -> Self {
        let block_seconds = BLOCK_FRAMES as f32 / SAMPLE_RATE as f32;
        Limiter {
            gain: 1.0,
            release_step: 1.0 - (-block_seconds / RELEASE_SECONDS).exp(),
        }
    }

    /// The gain applied at the end of the last block.
    pub fn gain(&self) -> f32 {
        self.gain
    }

    /// Limits one block in place.
    pub fn process(&mut self, block: &mut [f32; BLOCK_FRAMES]) {
        let peak = block.iter().fold(0.0f32, |p, s| p.max(s.abs()));
        let needed = if peak > CEILING { CEILING / peak } else { 1.0 };
        let recovered = self.gain + (1.0 - self.gain) * self.release_step;
        let target = needed.min(recovered);
        let start = self.gain;
        // Attack within 1 ms; release across the whole block.
        let ramp = if target < start {
            ATTACK_FRAMES
        } else {
            BLOCK_FRAMES
        };
        for (i, sample) in block.iter_mut().enumerate() {
            let gain = if i < ramp {
                start + (target - start) * (i + 1) as f32 / ramp as f32
            } else {
                target
            };
            *sample = (*sample * gain).clamp(-1.0, 1.0);
        }
        self.gain = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine_block(amplitude: f32, offset: usize) -> [f32; BLOCK_FRAMES] {
        let mut block = [0.0; BLOCK_FRAMES];
        for (i, s) in block.iter_mut().enumerate() {
            *s = amplitude * (std::f32::consts::TAU * 440.0 * (offset + i) as f32 / 48_000.0).sin();
        }
        block
    }

    #[test]
    fn quiet_audio_passes_untouched() {
        let mut limiter = Limiter::new();
        let original = sine_block(0.5, 0);
        let mut block = original;
        limiter.process(&mut block);
        assert_eq!(block, original);
        assert_eq!(limiter.gain(), 1.0);
    }

    #[test]
    fn loud_audio_stays_under_the_ceiling_after_the_attack() {
        let mut limiter = Limiter::new();
        for n in 0..100 {
            let mut block = sine_block(3.0, n * BLOCK_FRAMES);
            limiter.process(&mut block);
            assert!(block.iter().all(|s| s.abs() <= 1.0));
            if n > 0 {
                assert!(block.iter().all(|s| s.abs() <= CEILING + 1e-4), "block {n}");
            }
        }
    }

    #[test]
    fn gain_changes_are_smooth_and_recover() {
        let mut limiter = Limiter::new();
        let mut last = 0.0f32;
        let mut worst_step = 0.0f32;
        // Loud for 0.5 s, then quiet: once the first attack is over, the
        // output never jumps between samples by more than a 440 Hz sine at
        // full scale can move (~0.06).
        for n in 0..200 {
            let amplitude = if n < 50 { 2.5 } else { 0.3 };
            let mut block = sine_block(amplitude, n * BLOCK_FRAMES);
            limiter.process(&mut block);
            for &s in &block {
                if n > 0 {
                    worst_step = worst_step.max((s - last).abs());
                }
                last = s;
            }
        }
        assert!(worst_step < 0.08, "step {worst_step}");
        assert!(limiter.gain() > 0.99, "gain {}", limiter.gain());
    }
}
