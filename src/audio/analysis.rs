//! Measurements on captured audio, for the end-to-end tests and the demo:
//! level, the strength of a frequency, and glitches in a sine tone.

use std::f64::consts::TAU;

/// Root-mean-square level in dBFS (a full-scale sine is about -3 dBFS).
pub fn rms_dbfs(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let power: f64 = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64;
    10.0 * power.max(1e-20).log10()
}

/// The amplitude of the `hz` component (Goertzel), in dB of sine amplitude
/// (a sine of amplitude 1.0 reads 0 dB).
pub fn tone_dbfs(samples: &[f32], sample_rate: u32, hz: f64) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let w = TAU * hz / f64::from(sample_rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let amplitude = 2.0 * power.max(0.0).sqrt() / samples.len() as f64;
    20.0 * amplitude.max(1e-10).log10()
}

/// The level of a `hz` tone in `samples`, measured in 250 ms windows and averaged in power.
///
/// [`tone_dbfs`] over a whole capture adds the tone up in phase, so every phase step (a
/// concealed loss, a block dropped or repeated to follow the sender's clock, a busy machine)
/// cancels part of it: seconds of a clean tone with a few steps can read 10 dB low. Here a
/// step costs only the window it falls in. A pure tone reads the same in both.
pub fn tone_dbfs_windowed(samples: &[f32], sample_rate: u32, hz: f64) -> f64 {
    let window = sample_rate as usize / 4;
    let powers: Vec<f64> = samples
        .chunks_exact(window)
        .map(|w| 10f64.powf(tone_dbfs(w, sample_rate, hz) / 10.0))
        .collect();
    if powers.is_empty() {
        return tone_dbfs(samples, sample_rate, hz);
    }
    10.0 * (powers.iter().sum::<f64>() / powers.len() as f64).log10()
}

/// The strongest frequency between `lo` and `hi` Hz, searched in 1 Hz steps.
pub fn dominant_hz(samples: &[f32], sample_rate: u32, lo: u32, hi: u32) -> f64 {
    let window = &samples[..samples.len().min(sample_rate as usize)];
    (lo..=hi)
        .map(|hz| (hz, tone_dbfs(window, sample_rate, f64::from(hz))))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(hz, _)| f64::from(hz))
        .unwrap_or(0.0)
}

/// How far a pure sine of `hz` departs, sample by sample, from its own
/// recurrence x[n+1] = 2cos(w)x[n] - x[n-1]. Zero for a clean tone at any
/// amplitude or phase; a dropped, repeated or shifted block shows up as a spike.
/// Returns (largest deviation, index where it happened).
pub fn sine_glitch(samples: &[f32], sample_rate: u32, hz: f64) -> (f64, usize) {
    let coeff = 2.0 * (TAU * hz / f64::from(sample_rate)).cos();
    let mut worst = (0.0, 0);
    for (i, w) in samples.windows(3).enumerate() {
        let dev = (f64::from(w[2]) - coeff * f64::from(w[1]) + f64::from(w[0])).abs();
        if dev > worst.0 {
            worst = (dev, i + 1);
        }
    }
    worst
}

/// Longest run of samples with magnitude below `threshold` (a gap in a tone).
pub fn longest_silence(samples: &[f32], threshold: f32) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for &s in samples {
        if s.abs() < threshold {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// Where sound starts after silence: the indices of samples whose magnitude reaches
/// `threshold` after at least `min_silence` samples all below it (talkspurt onsets).
pub fn onsets(samples: &[f32], threshold: f32, min_silence: usize) -> Vec<usize> {
    let mut found = Vec::new();
    let mut quiet = 0usize;
    for (i, &s) in samples.iter().enumerate() {
        if s.abs() >= threshold {
            if quiet >= min_silence {
                found.push(i);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onsets_after_silence_only() {
        let mut x = vec![0.0f32; 1000];
        x.extend(sine(500.0, 0.5, 960)); // onset at 1000 (sine(0) = 0: first loud sample later)
        x.extend(vec![0.0; 50]); // a short pause is no onset
        x.extend(sine(500.0, 0.5, 960));
        x.extend(vec![0.0; 2000]);
        x.extend(sine(500.0, 0.5, 960));
        let found = onsets(&x, 0.1, 500);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!((1000..1010).contains(&found[0]), "{found:?}");
        assert!((4970..4980).contains(&found[1]), "{found:?}");
    }

    fn sine(hz: f64, amp: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (TAU * hz * i as f64 / 48_000.0).sin() as f32)
            .collect()
    }

    #[test]
    fn levels_and_frequencies() {
        let tone = sine(440.0, 0.5, 48_000);
        assert!((rms_dbfs(&tone) - (-9.03)).abs() < 0.1);
        assert!((tone_dbfs(&tone, 48_000, 440.0) - (-6.02)).abs() < 0.1);
        assert!(tone_dbfs(&tone, 48_000, 660.0) < -60.0);
        assert_eq!(dominant_hz(&tone, 48_000, 100, 2000), 440.0);
    }

    #[test]
    fn a_clean_tone_has_no_glitch_and_a_dropped_block_does() {
        let tone = sine(440.0, 0.5, 4_800);
        assert!(sine_glitch(&tone, 48_000, 440.0).0 < 1e-4);
        let mut cut = tone[..1_000].to_vec();
        cut.extend_from_slice(&tone[1_480..]);
        let (dev, at) = sine_glitch(&cut, 48_000, 440.0);
        assert!(dev > 0.01, "{dev}");
        assert!((999..=1_001).contains(&at));
    }

    #[test]
    fn silence_runs() {
        let mut s = vec![0.5f32; 100];
        s.extend(vec![0.0; 480]);
        s.extend(vec![0.5; 10]);
        assert_eq!(longest_silence(&s, 0.01), 480);
    }
}
