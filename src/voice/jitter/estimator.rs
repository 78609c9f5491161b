//! Arrival statistics for the jitter buffer: the base transit (fastest recent packet) and a
//! histogram of how much later than that packets arrive.
//!
//! `transit = arrival - timestamp_as_ns`. The sender's clock offset, the network's fixed
//! delay and the sender's clock drift all sit in `transit`; the windowed minimum (`base`)
//! follows them, and what is left over (`transit - base`) is the jitter a packet suffered.

/// Length of one bucket of the windowed minimum.
const BUCKET_NS: u64 = 1_000_000_000;
/// Buckets kept: the base is the fastest packet of the last 7 to 8 seconds.
const WINDOW: usize = 8;
/// Histogram bins of 1 ms; the last bin collects everything later.
const BINS: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct DelayEstimator {
    epochs: [u64; WINDOW],
    mins: [i64; WINDOW],
    hist: [f32; BINS],
    forget: f32,
    samples: u32,
    newest_epoch: u64,
    /// [`Self::base`], kept since the last update (the playout asks for it several times a
    /// pull, the window changes only with packets).
    base: Option<i64>,
}

impl DelayEstimator {
    /// `forget` per packet: 0.995 is a time constant of 200 packets (8 s at 40 ms).
    pub(crate) fn new(forget: f32) -> Self {
        Self {
            epochs: [u64::MAX; WINDOW],
            mins: [i64::MAX; WINDOW],
            hist: [0.0; BINS],
            forget: forget.clamp(0.5, 0.99999),
            samples: 0,
            newest_epoch: 0,
            base: None,
        }
    }

    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.forget);
    }

    /// Packets seen since the last reset.
    pub(crate) fn samples(&self) -> u32 {
        self.samples
    }

    /// The fastest transit of the window, if any packet was seen.
    pub(crate) fn base(&self) -> Option<i64> {
        self.base
    }

    fn window_min(&self) -> Option<i64> {
        let oldest = self.newest_epoch.saturating_sub(WINDOW as u64 - 1);
        self.epochs
            .iter()
            .zip(self.mins.iter())
            .filter(|(e, _)| **e != u64::MAX && **e >= oldest)
            .map(|(_, m)| *m)
            .min()
    }

    /// Record one packet; returns its jitter (transit above the base) in ns.
    pub(crate) fn update(&mut self, arrival_ns: u64, transit_ns: i64) -> i64 {
        let epoch = arrival_ns / BUCKET_NS;
        if epoch > self.newest_epoch || self.samples == 0 {
            self.newest_epoch = epoch;
        }
        // A packet older than the window (arrival clock went back) only counts for the histogram.
        if epoch + WINDOW as u64 > self.newest_epoch {
            let i = (epoch % WINDOW as u64) as usize;
            if self.epochs[i] != epoch {
                self.epochs[i] = epoch;
                self.mins[i] = transit_ns;
            } else if transit_ns < self.mins[i] {
                self.mins[i] = transit_ns;
            }
        }
        self.base = self.window_min();
        let base = self.base.unwrap_or(transit_ns);
        let jitter = transit_ns.saturating_sub(base).max(0);
        let bin = usize::try_from(jitter / 1_000_000)
            .unwrap_or(BINS - 1)
            .min(BINS - 1);
        for h in self.hist.iter_mut() {
            *h *= self.forget;
        }
        self.hist[bin] += 1.0 - self.forget;
        self.samples = self.samples.saturating_add(1);
        jitter
    }

    /// The delay (ms above the base) that a fraction `q` of recent packets did not exceed.
    pub(crate) fn quantile_ms(&self, q: f32) -> f32 {
        let total: f32 = self.hist.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        let want = total * q.clamp(0.0, 1.0);
        let mut acc = 0.0;
        for (i, h) in self.hist.iter().enumerate() {
            acc += h;
            if acc >= want {
                return (i + 1) as f32;
            }
        }
        BINS as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_is_windowed_minimum() {
        let mut e = DelayEstimator::new(0.99);
        e.update(0, 50_000_000);
        e.update(100_000_000, 20_000_000);
        assert_eq!(e.base(), Some(20_000_000));
        // ten seconds later with slower packets only, the fast one has left the window
        for s in 1..=10u64 {
            e.update(s * 1_000_000_000, 30_000_000);
        }
        assert_eq!(e.base(), Some(30_000_000));
    }

    #[test]
    fn quantile_tracks_spread() {
        let mut e = DelayEstimator::new(0.995);
        for i in 0..2000u64 {
            let j = (i * 7919 % 41) as i64 * 1_000_000; // 0..=40 ms, spread evenly
            e.update(i * 40_000_000, 10_000_000 + j);
        }
        let q = e.quantile_ms(0.95);
        assert!((36.0..=42.0).contains(&q), "q95 {q}");
    }
}
