//! The party mix: the sum of every member's 10 ms block, through a limiter so a loud party
//! never clips.
//!
//! Per block: sum the members (non-finite samples count as silence), find the block's peak,
//! and move the gain towards `threshold / peak` (or back towards 1): down within about 2 ms of
//! the block's start (attack), up with a 200 ms time constant (release), always as a linear
//! ramp across samples, so the gain never steps. Samples the ramp has not yet tamed (a sudden
//! peak in the first millisecond of a block) meet a soft knee above `threshold` that bends
//! them smoothly towards, and never past, full scale. The output is always within [-1, 1].
//!
//! Nothing allocates after construction: `begin`, `add` and `finish` work on a fixed array.
#![forbid(unsafe_code)]

/// Samples per block: 10 ms at 48 kHz.
pub const BLOCK: usize = 480;

/// Where the limiter starts working (linear, below full scale).
pub const DEFAULT_THRESHOLD: f32 = 0.9;

/// Release time constant in blocks (200 ms).
const RELEASE_BLOCKS: f32 = 20.0;
/// Attack ramp length in samples (2 ms).
const ATTACK_SAMPLES: usize = 96;

/// Sums members' blocks and limits the result.
#[derive(Debug, Clone)]
pub struct Mixer {
    acc: [f32; BLOCK],
    inputs: usize,
    gain: f32,
    threshold: f32,
    min_gain: f32,
}

impl Default for Mixer {
    fn default() -> Self {
        Self::new(DEFAULT_THRESHOLD)
    }
}

impl Mixer {
    /// `threshold` is clamped to 0.5..=0.99.
    pub fn new(threshold: f32) -> Self {
        let threshold = if threshold.is_finite() {
            threshold.clamp(0.5, 0.99)
        } else {
            DEFAULT_THRESHOLD
        };
        Self {
            acc: [0.0; BLOCK],
            inputs: 0,
            gain: 1.0,
            threshold,
            min_gain: 1.0,
        }
    }

    /// The gain applied at the end of the last block (1.0 = untouched).
    pub fn gain(&self) -> f32 {
        self.gain
    }

    /// The lowest gain applied so far.
    pub fn min_gain(&self) -> f32 {
        self.min_gain
    }

    /// Start a new block.
    pub fn begin(&mut self) {
        // `acc` is not cleared: the first `add` overwrites it, and `finish` without inputs
        // does not read it (most blocks of a party have one voice or none).
        self.inputs = 0;
    }

    /// Add one member's block.
    pub fn add(&mut self, block: &[f32; BLOCK]) {
        let finite = |s: f32| if s.is_finite() { s } else { 0.0 };
        if self.inputs == 0 {
            for (a, &s) in self.acc.iter_mut().zip(block.iter()) {
                *a = finite(s);
            }
        } else {
            for (a, &s) in self.acc.iter_mut().zip(block.iter()) {
                *a += finite(s);
            }
        }
        self.inputs += 1;
    }

    /// Members added since `begin`.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Limit the sum into `out`.
    pub fn finish(&mut self, out: &mut [f32; BLOCK]) {
        if self.inputs == 0 {
            // Nobody is heard: silence, and the gain releases as it would over a silent sum.
            out.fill(0.0);
            self.gain = self.released(1.0);
            return;
        }
        // A sum of finite samples can still overflow to infinity with absurd inputs.
        let mut peak = 0.0f32;
        for a in self.acc.iter_mut() {
            if !a.is_finite() {
                *a = 0.0;
            }
            peak = peak.max(a.abs());
        }
        let needed = if peak > self.threshold {
            self.threshold / peak
        } else {
            1.0
        };
        let start = self.gain;
        if start == 1.0 && needed == 1.0 {
            // Nothing to limit (the usual case): the sum itself, every sample within the
            // threshold, where the knee is the identity.
            out.copy_from_slice(&self.acc);
            return;
        }
        let (end, ramp) = if needed < start {
            (needed, ATTACK_SAMPLES)
        } else {
            (self.released(needed), BLOCK)
        };
        let step = (end - start) / ramp as f32;
        for (i, (o, &a)) in out.iter_mut().zip(self.acc.iter()).enumerate() {
            let g = if i >= ramp {
                end
            } else {
                start + step * (i + 1) as f32
            };
            *o = soft_knee(a * g, self.threshold);
        }
        self.gain = end;
        self.min_gain = self.min_gain.min(end);
    }

    /// The gain after one block of release towards `needed` (at least the current gain).
    fn released(&self, needed: f32) -> f32 {
        let alpha = 1.0 - (-1.0 / RELEASE_BLOCKS).exp();
        let gain = self.gain + (needed - self.gain) * alpha;
        // Within a millionth it is there: the steps of f32 just under 1.0 are too coarse for
        // the last bit of an exponential release to ever arrive.
        if needed - gain < 1e-6 {
            needed
        } else {
            gain
        }
    }

    /// `begin`, `add` each block, `finish`.
    pub fn mix(&mut self, inputs: &[&[f32; BLOCK]], out: &mut [f32; BLOCK]) {
        self.begin();
        for b in inputs {
            self.add(b);
        }
        self.finish(out);
    }
}

/// Identity up to `knee`; above it a tanh curve that meets the line with the same slope and
/// approaches 1.0 without reaching it.
fn soft_knee(x: f32, knee: f32) -> f32 {
    let m = x.abs();
    if m <= knee {
        return x;
    }
    let room = 1.0 - knee;
    let y = knee + room * ((m - knee) / room).tanh();
    y.min(1.0).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(f: f32, amp: f32, phase0: usize) -> [f32; BLOCK] {
        let mut b = [0.0; BLOCK];
        for (i, s) in b.iter_mut().enumerate() {
            *s = amp * (2.0 * std::f32::consts::PI * f * (phase0 + i) as f32 / 48_000.0).sin();
        }
        b
    }

    #[test]
    fn quiet_input_passes_untouched() {
        let mut m = Mixer::default();
        let mut out = [0.0; BLOCK];
        for k in 0..50 {
            let a = sine(440.0, 0.3, k * BLOCK);
            let b = sine(660.0, 0.3, k * BLOCK);
            m.mix(&[&a, &b], &mut out);
            for i in 0..BLOCK {
                assert_eq!(out[i], a[i] + b[i]);
            }
        }
        assert_eq!(m.gain(), 1.0);
    }

    #[test]
    fn loud_party_never_clips_and_gain_is_smooth() {
        let mut m = Mixer::default();
        let mut out = [0.0; BLOCK];
        let mut prev = 0.0f32;
        let mut max_step = 0.0f32;
        // 2 s quiet, 4 s of eight loud members in phase, 4 s quiet again
        for k in 0..1000 {
            let loud = (200..600).contains(&k);
            let amp = if loud { 0.9 } else { 0.05 };
            let blocks: Vec<[f32; BLOCK]> = (0..8).map(|_| sine(220.0, amp, k * BLOCK)).collect();
            let refs: Vec<&[f32; BLOCK]> = blocks.iter().collect();
            m.mix(&refs, &mut out);
            for &s in &out {
                assert!((-1.0..=1.0).contains(&s));
                max_step = max_step.max((s - prev).abs());
                prev = s;
            }
        }
        // A 220 Hz sine of amplitude 1 moves at most 2*pi*220/48000 = 0.029 per sample; the
        // onset of 8 x 0.9 in one block may step through the soft knee, but nothing like a click
        // of full scale.
        assert!(max_step < 0.25, "max step {max_step}");
        assert!(m.min_gain() < 0.2);
        assert!(m.gain() > 0.9, "released: {}", m.gain());
        // Released all the way (4 s of quiet), so a quiet block passes untouched again.
        assert_eq!(m.gain(), 1.0);
        let quiet = sine(440.0, 0.3, 0);
        m.mix(&[&quiet], &mut out);
        assert_eq!(out, quiet);
    }

    /// Nobody heard (no `add`) is the same as adding silence: silent output, the same release.
    #[test]
    fn no_inputs_is_silence_and_the_gain_releases_as_usual() {
        let (mut skipping, mut adding) = (Mixer::default(), Mixer::default());
        let (mut out_s, mut out_a) = ([1.0; BLOCK], [1.0; BLOCK]);
        let loud = sine(220.0, 0.9, 0);
        for m in [&mut skipping, &mut adding] {
            m.mix(&[&loud, &loud, &loud], &mut [0.0; BLOCK]);
        }
        for k in 0..100 {
            skipping.mix(&[], &mut out_s);
            adding.mix(&[&[0.0; BLOCK]], &mut out_a);
            assert_eq!(out_s, out_a, "block {k}");
            assert_eq!(skipping.gain(), adding.gain(), "block {k}");
        }
        assert!(out_s.iter().all(|&s| s == 0.0));
        assert!(skipping.gain() > 0.9);
        // And the first member after silence is not summed onto stale samples.
        let quiet = sine(440.0, 0.3, 0);
        skipping.mix(&[&quiet], &mut out_s);
        adding.mix(&[&[0.0; BLOCK], &quiet], &mut out_a);
        assert_eq!(out_s, out_a);
    }

    #[test]
    fn garbage_in_stays_in_range() {
        let mut m = Mixer::new(f32::NAN);
        let mut out = [0.0; BLOCK];
        let mut a = [f32::MAX; BLOCK];
        a[3] = f32::NAN;
        a[4] = f32::INFINITY;
        a[5] = f32::NEG_INFINITY;
        let b = [f32::MAX; BLOCK];
        m.mix(&[&a, &b], &mut out);
        assert!(out
            .iter()
            .all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
        m.mix(&[], &mut out);
        assert!(out
            .iter()
            .all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
    }
}
