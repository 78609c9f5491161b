//! Timestamps for the blocks a source hands to OBS.
//!
//! OBS places a source's audio by its timestamp. Stamping each block with
//! "now" makes consecutive blocks of a burst overlap, and OBS drops bursts
//! longer than its 70 ms smoothing window (measured on 29.0.2). So each source
//! keeps a continuous sample clock: anchored to the system clock when a run of
//! audio starts, then advanced by exactly the samples it has output.
//!
//! The clock does not decide when a run ends; the pump does (`PumpStep`),
//! because only it knows whether the audio was waiting in the ring (our own
//! thread was late: keep the timestamps going) or was not there at all (the
//! member stopped talking: start a new run).

/// How far behind the system clock the sample clock may fall before the pump
/// looks at why. OBS itself smooths jumps under 70 ms.
pub const GAP_NS: u64 = 70_000_000;

/// How far ahead of the system clock the first block of a run is stamped. A
/// block that arrives a little late (thread scheduling) is then still on time
/// for OBS, so OBS never needs to grow its audio buffering for us.
pub const ANCHOR_LEAD_NS: u64 = 20_000_000;

/// A continuous clock in samples, anchored to a nanosecond system time.
#[derive(Debug, Clone)]
pub struct SampleClock {
    sample_rate: u64,
    anchor_ns: Option<u64>,
    samples_since_anchor: u64,
}

impl SampleClock {
    pub fn new(sample_rate: u32) -> Self {
        Self {
            sample_rate: u64::from(sample_rate.max(1)),
            anchor_ns: None,
            samples_since_anchor: 0,
        }
    }

    /// The time of the next sample to be output, if anchored.
    pub fn next_ns(&self) -> Option<u64> {
        self.anchor_ns.map(|anchor| {
            anchor
                + (u128::from(self.samples_since_anchor) * 1_000_000_000
                    / u128::from(self.sample_rate)) as u64
        })
    }

    /// How far the next sample's time lies behind `now_ns` (0 when on time
    /// or ahead, or not anchored).
    pub fn lateness_ns(&self, now_ns: u64) -> u64 {
        self.next_ns().map_or(0, |next| now_ns.saturating_sub(next))
    }

    /// True if, at system time `now_ns`, continuing the clock would stamp
    /// audio more than `GAP_NS` in the past.
    pub fn is_behind(&self, now_ns: u64) -> bool {
        self.lateness_ns(now_ns) > GAP_NS
    }

    /// Starts a new run of timestamps at `now_ns` plus the lead.
    pub fn anchor(&mut self, now_ns: u64) {
        self.anchor_ns = Some(now_ns + ANCHOR_LEAD_NS);
        self.samples_since_anchor = 0;
    }

    /// Stamps a block of `frames` samples and advances the clock past it.
    /// Anchors at `now_ns` if no run has started yet.
    pub fn stamp(&mut self, frames: usize, now_ns: u64) -> u64 {
        if self.anchor_ns.is_none() {
            self.anchor(now_ns);
        }
        let ts = self.next_ns().unwrap_or(now_ns);
        self.samples_since_anchor += frames as u64;
        ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn first_block_is_anchored_slightly_ahead_of_now() {
        let mut clock = SampleClock::new(48_000);
        assert_eq!(clock.stamp(480, 5_000 * MS), 5_000 * MS + ANCHOR_LEAD_NS);
    }

    #[test]
    fn a_burst_gets_continuous_timestamps() {
        let mut clock = SampleClock::new(48_000);
        let now = 1_000 * MS;
        let stamps: Vec<u64> = (0..20).map(|_| clock.stamp(480, now)).collect();
        for (i, pair) in stamps.windows(2).enumerate() {
            assert_eq!(pair[1] - pair[0], 10 * MS, "block {i}");
        }
    }

    #[test]
    fn no_drift_over_an_hour_of_blocks() {
        let mut clock = SampleClock::new(48_000);
        let start = clock.stamp(480, 0);
        let blocks = 360_000u64; // one hour of 10 ms blocks
        let mut last = start;
        for i in 1..blocks {
            last = clock.stamp(480, i * 10 * MS);
        }
        assert_eq!(last - start, (blocks - 1) * 10 * MS);
    }

    #[test]
    fn late_blocks_within_the_window_stay_continuous() {
        let mut clock = SampleClock::new(48_000);
        let first = clock.stamp(480, 0);
        // Delivered 60 ms late: still continuous, and not behind.
        let now = first + 10 * MS + 60 * MS;
        assert!(!clock.is_behind(now));
        assert_eq!(clock.stamp(480, now), first + 10 * MS);
    }

    #[test]
    fn a_new_anchor_starts_at_now_plus_the_lead() {
        let mut clock = SampleClock::new(48_000);
        let first = clock.stamp(480, 0);
        let resume = first + 10 * MS + GAP_NS + 1;
        assert!(clock.is_behind(resume));
        clock.anchor(resume);
        assert_eq!(clock.stamp(480, resume), resume + ANCHOR_LEAD_NS);
    }

    #[test]
    fn non_48k_rates_advance_by_their_own_sample_period() {
        let mut clock = SampleClock::new(16_000);
        let a = clock.stamp(160, 0);
        let b = clock.stamp(160, 0);
        assert_eq!(b - a, 10 * MS);
    }
}
