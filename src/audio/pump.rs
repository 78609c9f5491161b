//! What moves one OBS source's audio: 10 ms blocks from the source's ring to
//! OBS, stamped by the source's continuous sample clock.
//!
//! `PumpStep` is what happens for one source each time the delivery thread
//! wakes (src/audio/delivery.rs: one thread for every source of the process).
//! It never waits for the producer (an empty ring means nothing is output this
//! time) and never lets the producer wait for OBS (the ring takes up the
//! difference). It knows nothing of libobs: the OBS side is a `BlockOutput`,
//! which keeps this testable without OBS.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::clock::SampleClock;
use super::delivery::{Delivery, Registration};
use super::ring::{RingReader, BLOCK_FRAMES, SAMPLE_RATE};

/// How far ahead of real time the pump hands audio to OBS. Bursts beyond this
/// stay in our ring, so OBS's own per-source buffer stays small.
pub const MAX_LEAD_NS: u64 = 250_000_000;
/// After a re-anchor, audio older than this is thrown away rather than played late.
pub const MAX_BACKLOG_FRAMES: usize = (SAMPLE_RATE as usize / 1000) * 100;
/// How far behind a stall of our own thread may leave the clock and the
/// timestamps still go on (the backlog in the ring is the audio of exactly
/// that time, so once it is out the clock is on time again). Beyond this the
/// clock re-anchors, faded in.
pub const MAX_CATCH_UP_NS: u64 = 250_000_000;
/// The fade-in after a re-anchor: 5 ms, short enough not to eat a syllable,
/// long enough that the jump does not click.
pub const FADE_IN_FRAMES: usize = SAMPLE_RATE as usize / 200;
const BLOCK_NS: u64 = 10_000_000;
/// When the clock is behind and the ring holds less than the gap, the pump
/// waits this long before calling it a new run: a producer that was starved
/// itself writes its catch-up blocks back to back, and the first of them
/// wakes us before the rest are there.
pub const SETTLE_NS: u64 = 3_000_000;

/// Where the pump delivers blocks: OBS in the plugin, a recorder in tests.
pub trait BlockOutput: Send {
    /// The system clock OBS timestamps are on (`os_gettime_ns` in OBS).
    fn now_ns(&self) -> u64;
    /// Delivers one 10 ms block of mono f32 at 48 kHz.
    fn output(&mut self, block: &[f32; BLOCK_FRAMES], timestamp_ns: u64);
}

/// Buckets of the output-call histogram: bucket `i` counts calls that took
/// [2^i, 2^(i+1)) microseconds (bucket 0 also takes calls under 1 us).
pub const OUTPUT_BUCKETS: usize = 24;

/// Counters a source can show and tests can check.
#[derive(Debug, Default)]
pub struct PumpStats {
    pub blocks: AtomicU64,
    /// Runs of timestamps started: the first audio, and audio after the ring
    /// ran dry (the member stopped talking). Normal, inaudible.
    pub runs: AtomicU64,
    /// Times our own thread fell more than `GAP_NS` behind while the ring
    /// held the audio, and the timestamps went on without a jump.
    pub caught_up: AtomicU64,
    /// Timestamp jumps while the ring held audio (a stall longer than
    /// `MAX_CATCH_UP_NS`); each one faded in.
    pub reanchors: AtomicU64,
    pub discarded_frames: AtomicU64,
    /// The longest `BlockOutput::output` call, in nanoseconds.
    pub output_max_ns: AtomicU64,
    /// How long `BlockOutput::output` took, as a log2 histogram in microseconds.
    pub output_us_log2: [AtomicU64; OUTPUT_BUCKETS],
}

impl PumpStats {
    fn note_output(&self, took_ns: u64) {
        self.output_max_ns.fetch_max(took_ns, Ordering::Relaxed);
        let us = took_ns / 1000;
        let bucket = (u64::BITS - us.leading_zeros()).saturating_sub(1) as usize;
        self.output_us_log2[bucket.min(OUTPUT_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// The median output call, as the upper bound of its histogram bucket in
    /// microseconds (so "< 2 us", "< 4 us", ...); `None` before any call.
    pub fn output_median_us_below(&self) -> Option<u64> {
        let counts: Vec<u64> = self
            .output_us_log2
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if total > 0 && seen * 2 >= total {
                return Some(2 << i);
            }
        }
        None
    }

    /// One line for the log when a source goes away.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} blocks, output call median < {} us, max {} us; {} runs, {} stalls caught up, {} re-anchors, {} frames discarded",
            get(&self.blocks),
            self.output_median_us_below().unwrap_or(0),
            get(&self.output_max_ns) / 1000,
            get(&self.runs),
            get(&self.caught_up),
            get(&self.reanchors),
            get(&self.discarded_frames),
        )
    }
}

/// One source on the delivery thread. Dropping it (or `stop`) unregisters
/// it; once that returns, its output is never called again.
pub struct Pump {
    registration: Option<Registration>,
    stats: Arc<PumpStats>,
}

impl Pump {
    /// Starts delivering `reader` into `output` on the process's delivery
    /// thread (started by the first source, stopped after the last). `name`
    /// says in the log which source failed, if one does.
    pub fn start(
        name: &str,
        reader: RingReader,
        output: impl BlockOutput + 'static,
    ) -> std::io::Result<Pump> {
        let stats = Arc::new(PumpStats::default());
        let registration =
            Delivery::shared()?.register(name, reader, Box::new(output), stats.clone());
        Ok(Pump {
            registration: Some(registration),
            stats,
        })
    }

    pub fn stats(&self) -> &PumpStats {
        &self.stats
    }

    /// Unregisters the source. Returns at once unless the delivery thread is
    /// inside this very source's `output` call; then it waits for that call.
    pub fn stop(&mut self) {
        if let Some(registration) = self.registration.take() {
            registration.unregister();
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the pump does for one source each time it wakes: hand OBS every whole
/// block that is due, stamped by the source's clock. Public so the benchmarks
/// can drive it on virtual time (benches/receive_path.rs); the delivery thread
/// runs one per source.
pub struct PumpStep {
    clock: SampleClock,
    block: [f32; BLOCK_FRAMES],
    fade_in: bool,
    /// Since when the ring has held less than the gap (see `SETTLE_NS`).
    settling_since: Option<u64>,
}

impl Default for PumpStep {
    fn default() -> Self {
        Self::new()
    }
}

fn frames_ns(frames: usize) -> u64 {
    frames as u64 * 1_000_000_000 / u64::from(SAMPLE_RATE)
}

impl PumpStep {
    pub fn new() -> Self {
        PumpStep {
            clock: SampleClock::new(SAMPLE_RATE),
            block: [0.0; BLOCK_FRAMES],
            fade_in: false,
            settling_since: None,
        }
    }

    /// Moves what is due from `reader` to `output`. Never waits, never
    /// allocates. Returns the system time at which blocks held back by
    /// `MAX_LEAD_NS` become due, if any are.
    pub fn run<O: BlockOutput + ?Sized>(
        &mut self,
        reader: &mut RingReader,
        output: &mut O,
        stats: &PumpStats,
    ) -> Option<u64> {
        let available = reader.available_frames();
        if available < BLOCK_FRAMES {
            return None;
        }
        let now = output.now_ns();
        if self.clock.next_ns().is_none() {
            self.clock.anchor(now);
            stats.runs.fetch_add(1, Ordering::Relaxed);
        } else if self.clock.is_behind(now) {
            if let Some(due) = self.fall_behind(now, available, reader, stats) {
                return Some(due);
            }
        }
        self.settling_since = None;
        loop {
            let next = self.clock.next_ns().unwrap_or(now);
            if next > now + MAX_LEAD_NS {
                return Some(next - MAX_LEAD_NS);
            }
            if !reader.pop_block(&mut self.block) {
                return None;
            }
            if std::mem::take(&mut self.fade_in) {
                for (i, sample) in self.block[..FADE_IN_FRAMES].iter_mut().enumerate() {
                    *sample *= i as f32 / FADE_IN_FRAMES as f32;
                }
            }
            let timestamp = self.clock.stamp(BLOCK_FRAMES, now);
            let before = output.now_ns();
            output.output(&self.block, timestamp);
            stats.note_output(output.now_ns().saturating_sub(before));
            stats.blocks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The clock is more than `GAP_NS` behind. Why decides what happens.
    /// Returns when to look again if it cannot tell yet.
    fn fall_behind(
        &mut self,
        now: u64,
        available: usize,
        reader: &mut RingReader,
        stats: &PumpStats,
    ) -> Option<u64> {
        let late = self.clock.lateness_ns(now);
        // The audio of the whole gap is waiting: the producer kept writing
        // and only this thread was late (a busy machine), or the producer
        // was late and wrote its catch-up.
        let audio_was_there = frames_ns(available) + BLOCK_NS >= late;
        if audio_was_there && late <= MAX_CATCH_UP_NS {
            // Go on without a jump: the backlog goes out at once with the
            // timestamps it would have had.
            stats.caught_up.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if !audio_was_there {
            // Maybe the first of a starved producer's catch-up blocks: look
            // again shortly before calling it a new run.
            let since = *self.settling_since.get_or_insert(now);
            if now < since + SETTLE_NS {
                return Some(since + SETTLE_NS);
            }
        }
        // Keep only the newest bit, so the source's delay does not grow.
        let excess = available.saturating_sub(MAX_BACKLOG_FRAMES);
        let excess = excess - excess % BLOCK_FRAMES;
        if excess > 0 {
            reader.discard_frames(excess);
            stats
                .discarded_frames
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
        self.clock.anchor(now);
        if audio_was_there {
            // Too far behind to keep going: a jump. Fade it in so it does not click.
            self.fade_in = true;
            stats.reanchors.fetch_add(1, Ordering::Relaxed);
        } else {
            // The ring ran dry (the member stopped talking: since issue 21 a
            // silent member's ring gets nothing at all): this audio starts a new run.
            stats.runs.fetch_add(1, Ordering::Relaxed);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::clock::ANCHOR_LEAD_NS;
    use crate::audio::ring::{audio_ring, RingWriter};
    use std::ops::Range;
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    const MS: u64 = 1_000_000;

    /// Records what the pump outputs, on a virtual clock the test moves.
    #[derive(Clone, Default)]
    struct Virtual {
        now: Arc<AtomicU64>,
        blocks: Arc<Mutex<Vec<(u64, f32, f32)>>>,
    }

    impl Virtual {
        fn at(&self, ns: u64) {
            self.now.store(ns, Ordering::Relaxed);
        }
        fn stamps(&self) -> Vec<u64> {
            self.blocks.lock().unwrap().iter().map(|b| b.0).collect()
        }
    }

    impl BlockOutput for Virtual {
        fn now_ns(&self) -> u64 {
            self.now.load(Ordering::Relaxed)
        }
        fn output(&mut self, block: &[f32; BLOCK_FRAMES], ts: u64) {
            self.blocks
                .lock()
                .unwrap()
                .push((ts, block[0], block[BLOCK_FRAMES - 1]));
        }
    }

    /// One source's pump step between a producer's ring and a virtual OBS
    /// clock: what each test below drives.
    struct Rig {
        writer: RingWriter,
        reader: RingReader,
        out: Virtual,
        stats: PumpStats,
        step: PumpStep,
    }

    impl Rig {
        fn new() -> Self {
            let (writer, reader) = audio_ring(SAMPLE_RATE as usize);
            Rig {
                writer,
                reader,
                out: Virtual::default(),
                stats: PumpStats::default(),
                step: PumpStep::new(),
            }
        }

        /// The producer writes `blocks` blocks of `level` in one go.
        fn write(&mut self, level: f32, blocks: usize) {
            assert!(self.writer.write(&vec![level; blocks * BLOCK_FRAMES]));
        }

        /// The pump wakes at `t_ns`; returns when it wants to run again.
        fn run_at(&mut self, t_ns: u64) -> Option<u64> {
            self.out.at(t_ns);
            self.step.run(&mut self.reader, &mut self.out, &self.stats)
        }

        /// The producer writes a block every 10 ms from `start_ns`; the pump
        /// runs after each write except for the block numbers in `stalls`.
        fn real_time(&mut self, start_ns: u64, blocks: u64, stalls: &[Range<u64>]) {
            for i in 0..blocks {
                self.write(1.0, 1);
                if !stalls.iter().any(|stall| stall.contains(&i)) {
                    self.run_at(start_ns + i * 10 * MS);
                }
            }
        }
    }

    fn count(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn assert_continuous(stamps: &[u64]) {
        for (i, pair) in stamps.windows(2).enumerate() {
            assert_eq!(pair[1] - pair[0], 10 * MS, "jump after block {i}");
        }
    }

    #[test]
    fn a_stall_of_our_own_thread_catches_up_without_a_jump() {
        let mut rig = Rig::new();
        // 1 s of real-time blocks, then the pump misses 150 ms while the
        // producer goes on writing, then real time again.
        let missed = 100..115;
        rig.real_time(1_000 * MS, 200, &[missed]);
        assert_continuous(&rig.out.stamps());
        assert_eq!(rig.out.stamps().len(), 200);
        let stats = &rig.stats;
        assert_eq!(count(&stats.caught_up), 1);
        assert_eq!(count(&stats.reanchors), 0);
        assert_eq!(count(&stats.runs), 1);
        assert_eq!(count(&stats.discarded_frames), 0);
    }

    #[test]
    fn resuming_after_silence_starts_a_new_run_not_a_reanchor() {
        let mut rig = Rig::new();
        rig.write(1.0, 1);
        rig.run_at(0);
        // The member is silent for 2 s: the ring gets nothing, the pump
        // wakes now and then and finds it empty.
        for t in (10..2_000).step_by(500) {
            rig.run_at(t * MS);
        }
        rig.write(1.0, 1);
        // It waits a moment (a starved producer's catch-up would follow at once).
        let due = rig.run_at(2_000 * MS);
        assert_eq!(due, Some(2_000 * MS + SETTLE_NS));
        assert_eq!(rig.out.stamps().len(), 1);
        rig.run_at(2_000 * MS + SETTLE_NS);
        let resumed = 2_000 * MS + SETTLE_NS + ANCHOR_LEAD_NS;
        assert_eq!(rig.out.stamps(), vec![ANCHOR_LEAD_NS, resumed]);
        assert_eq!(count(&rig.stats.runs), 2);
        assert_eq!(count(&rig.stats.reanchors), 0);
        assert_eq!(count(&rig.stats.caught_up), 0);
        // The new run is not faded: it starts from the member's own silence.
        assert_eq!(rig.out.blocks.lock().unwrap()[1].1, 1.0);
    }

    #[test]
    fn a_starved_producer_catching_up_in_a_burst_keeps_the_timestamps() {
        let mut rig = Rig::new();
        rig.real_time(0, 50, &[]);
        // The producer misses 120 ms after its block at 490 ms, then writes
        // them back to back; its first write wakes the pump before the
        // others are in.
        rig.write(1.0, 1);
        let due = rig.run_at(610 * MS).expect("waits to see");
        for _ in 0..12 {
            rig.write(1.0, 1);
        }
        rig.run_at(due);
        assert_continuous(&rig.out.stamps());
        assert_eq!(rig.out.stamps().len(), 63);
        assert_eq!(count(&rig.stats.caught_up), 1);
        assert_eq!(count(&rig.stats.runs), 1);
    }

    #[test]
    fn a_stall_too_long_to_catch_up_reanchors_faded_in_and_counted() {
        let mut rig = Rig::new();
        rig.write(0.5, 1);
        rig.run_at(0);
        // 400 ms during which the producer wrote and the pump did not run.
        rig.write(0.5, 40);
        rig.run_at(400 * MS);
        assert_eq!(count(&rig.stats.reanchors), 1);
        assert_eq!(count(&rig.stats.caught_up), 0);
        let discarded = count(&rig.stats.discarded_frames) as usize;
        assert_eq!(discarded, 40 * BLOCK_FRAMES - MAX_BACKLOG_FRAMES);
        let blocks = rig.out.blocks.lock().unwrap();
        assert_eq!(blocks[1].0, 400 * MS + ANCHOR_LEAD_NS);
        // Faded in from silence, then full level.
        assert_eq!(blocks[1].1, 0.0);
        assert_eq!(blocks[1].2, 0.5);
        assert_eq!(blocks[2].1, 0.5);
    }

    #[test]
    fn every_stall_within_the_catch_up_limit_is_caught_up_and_a_longer_one_reanchors() {
        let mut rig = Rig::new();
        // Three stalls of 130 ms (caught up: the clock is on time again after
        // each), then one of 300 ms (too far behind).
        rig.real_time(0, 500, &[50..63, 150..163, 250..263, 350..380]);
        assert_eq!(count(&rig.stats.caught_up), 3);
        assert_eq!(count(&rig.stats.reanchors), 1);
        // Up to the long stall, one run without a jump.
        assert_continuous(&rig.out.stamps()[..350]);
    }

    #[test]
    fn a_burst_beyond_the_lead_waits_in_the_ring_and_says_when_it_is_due() {
        let mut rig = Rig::new();
        rig.write(1.0, 50);
        let due = rig.run_at(0).expect("a due time");
        let sent = rig.out.stamps().len() as u64;
        // The blocks up to 250 ms ahead went out, the rest waits.
        assert!(sent * 10 * MS + ANCHOR_LEAD_NS > MAX_LEAD_NS);
        assert!(sent < 50);
        assert_eq!(due, ANCHOR_LEAD_NS + sent * 10 * MS - MAX_LEAD_NS);
        rig.run_at(due);
        assert!(rig.out.stamps().len() as u64 > sent);
        assert_continuous(&rig.out.stamps());
    }

    #[test]
    fn output_times_are_counted() {
        let stats = PumpStats::default();
        for us in [1, 3, 3, 3, 900] {
            stats.note_output(us * 1000);
        }
        assert_eq!(stats.output_median_us_below(), Some(4));
        assert_eq!(stats.output_max_ns.load(Ordering::Relaxed), 900_000);
        assert!(stats.summary().contains("max 900 us"));
    }

    /// Records what the pump outputs, on a real clock.
    #[derive(Clone)]
    struct Recorder {
        start: Instant,
        blocks: Arc<Mutex<Vec<(u64, f32)>>>,
    }

    impl BlockOutput for Recorder {
        fn now_ns(&self) -> u64 {
            self.start.elapsed().as_nanos() as u64
        }
        fn output(&mut self, block: &[f32; BLOCK_FRAMES], ts: u64) {
            self.blocks.lock().unwrap().push((ts, block[0]));
        }
    }

    fn recorder() -> Recorder {
        Recorder {
            start: Instant::now(),
            blocks: Arc::default(),
        }
    }

    #[test]
    fn bursts_come_out_with_continuous_timestamps() {
        let _turn = crate::audio::delivery::tests::one_at_a_time();
        let (mut writer, reader) = audio_ring(SAMPLE_RATE as usize);
        let rec = recorder();
        let mut pump = Pump::start("test-pump", reader, rec.clone()).unwrap();
        // Three bursts of 200 ms, 200 ms apart: block i carries value i.
        let mut next = 0;
        for _ in 0..3 {
            for _ in 0..20 {
                writer.write(&[next as f32; BLOCK_FRAMES]);
                next += 1;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // However busy the machine, the last burst comes out.
        let deadline = Instant::now() + Duration::from_secs(30);
        while rec.blocks.lock().unwrap().len() < 60 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        pump.stop();
        let blocks = rec.blocks.lock().unwrap();
        assert_eq!(blocks.len(), 60);
        for (i, pair) in blocks.windows(2).enumerate() {
            assert_eq!(pair[1].1, pair[0].1 + 1.0, "order after block {i}");
        }
        // The bursts are 200 ms of audio each 200+ ms: on a busy machine a
        // late wake may start a new run, but never a re-anchor.
        assert_eq!(pump.stats().reanchors.load(Ordering::Relaxed), 0);
    }
}
