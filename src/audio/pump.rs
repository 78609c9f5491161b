//! The pump: one thread per OBS source that moves 10 ms blocks from the
//! source's ring to OBS, stamped by the source's continuous sample clock.
//!
//! The pump never waits for the producer (an empty ring means nothing is
//! output this time) and never lets the producer wait for OBS (the ring takes
//! up the difference). It knows nothing of libobs: the OBS side is a
//! `BlockOutput`, which keeps this testable without OBS.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::clock::SampleClock;
use super::ring::{RingReader, BLOCK_FRAMES, SAMPLE_RATE};

/// How far ahead of real time the pump hands audio to OBS. Bursts beyond this
/// stay in our ring, so OBS's own per-source buffer stays small.
pub const MAX_LEAD_NS: u64 = 250_000_000;
/// After a gap, audio older than this is thrown away rather than played late.
pub const MAX_BACKLOG_FRAMES: usize = (SAMPLE_RATE as usize / 1000) * 100;
/// The pump wakes at least this often even if no producer wakes it.
const IDLE_WAKE: Duration = Duration::from_millis(10);

/// Where the pump delivers blocks: OBS in the plugin, a recorder in tests.
pub trait BlockOutput: Send + 'static {
    /// The system clock OBS timestamps are on (`os_gettime_ns` in OBS).
    fn now_ns(&self) -> u64;
    /// Delivers one 10 ms block of mono f32 at 48 kHz.
    fn output(&mut self, block: &[f32; BLOCK_FRAMES], timestamp_ns: u64);
}

/// Counters a source can show and tests can check.
#[derive(Debug, Default)]
pub struct PumpStats {
    pub blocks: AtomicU64,
    pub reanchors: AtomicU64,
    pub discarded_frames: AtomicU64,
}

/// A running pump. Dropping it (or `stop`) stops and joins the thread.
pub struct Pump {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<PumpStats>,
}

impl Pump {
    /// Starts a pump thread named `name` draining `reader` into `output`.
    pub fn start(
        name: &str,
        mut reader: RingReader,
        mut output: impl BlockOutput,
    ) -> std::io::Result<Pump> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PumpStats::default());
        let thread = {
            let stop = stop.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    reader.wake_on_write(std::thread::current());
                    let run = AssertUnwindSafe(|| {
                        pump_loop(&mut reader, &mut output, &stop, &stats);
                    });
                    if catch_unwind(run).is_err() {
                        // The source goes silent; OBS keeps running.
                        log::error!("audio pump stopped after an internal error");
                    }
                })?
        };
        Ok(Pump {
            stop,
            thread: Some(thread),
            stats,
        })
    }

    pub fn stats(&self) -> &PumpStats {
        &self.stats
    }

    /// Stops the thread and waits for it (it wakes within `IDLE_WAKE`).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pump_loop(
    reader: &mut RingReader,
    output: &mut impl BlockOutput,
    stop: &AtomicBool,
    stats: &PumpStats,
) {
    let mut pump = PumpStep::new();
    while !stop.load(Ordering::Acquire) {
        pump.run(reader, output, stats);
        std::thread::park_timeout(IDLE_WAKE);
    }
}

/// What the pump does each time it wakes: hand OBS every whole block that is
/// due, stamped by the source's clock. Public so the benchmarks can drive it
/// on virtual time (benches/receive_path.rs); the pump thread is this in a loop.
pub struct PumpStep {
    clock: SampleClock,
    block: [f32; BLOCK_FRAMES],
}

impl Default for PumpStep {
    fn default() -> Self {
        Self::new()
    }
}

impl PumpStep {
    pub fn new() -> Self {
        PumpStep {
            clock: SampleClock::new(SAMPLE_RATE),
            block: [0.0; BLOCK_FRAMES],
        }
    }

    /// Moves what is due from `reader` to `output`. Never waits, never allocates.
    pub fn run(
        &mut self,
        reader: &mut RingReader,
        output: &mut impl BlockOutput,
        stats: &PumpStats,
    ) {
        let now = output.now_ns();
        if self.clock.is_behind(now) {
            // A real gap: whatever piled up meanwhile is late already. Keep
            // only the newest bit so the source's delay does not grow.
            let excess = reader.available_frames().saturating_sub(MAX_BACKLOG_FRAMES);
            let excess = excess - excess % BLOCK_FRAMES;
            if excess > 0 {
                reader.discard_frames(excess);
                stats
                    .discarded_frames
                    .fetch_add(excess as u64, Ordering::Relaxed);
            }
        }
        while self
            .clock
            .next_ns()
            .is_none_or(|next| next <= now + MAX_LEAD_NS)
            && reader.pop_block(&mut self.block)
        {
            let timestamp = self.clock.stamp(BLOCK_FRAMES, now);
            output.output(&self.block, timestamp);
            stats.blocks.fetch_add(1, Ordering::Relaxed);
        }
        stats
            .reanchors
            .store(self.clock.reanchors(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::ring::audio_ring;
    use std::sync::Mutex;
    use std::time::Instant;

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
        pump.stop();
        let blocks = rec.blocks.lock().unwrap();
        assert_eq!(blocks.len(), 60);
        for (i, pair) in blocks.windows(2).enumerate() {
            assert_eq!(pair[1].0 - pair[0].0, 10_000_000, "gap after block {i}");
            assert_eq!(pair[1].1, pair[0].1 + 1.0, "order after block {i}");
        }
        assert_eq!(pump.stats().reanchors.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn stop_is_prompt_and_joins_the_thread() {
        let (_writer, reader) = audio_ring(SAMPLE_RATE as usize);
        let mut pump = Pump::start("test-pump", reader, recorder()).unwrap();
        let t = Instant::now();
        pump.stop();
        assert!(t.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn a_long_stall_drops_the_backlog_instead_of_playing_it_late() {
        let (mut writer, reader) = audio_ring(SAMPLE_RATE as usize);
        let rec = recorder();
        let mut pump = Pump::start("test-pump", reader, rec.clone()).unwrap();
        writer.write(&[1.0; BLOCK_FRAMES]);
        std::thread::sleep(Duration::from_millis(300));
        // 500 ms arrive at once after a 300 ms silence: a real gap.
        writer.write(&[2.0; 50 * BLOCK_FRAMES]);
        std::thread::sleep(Duration::from_millis(100));
        pump.stop();
        assert_eq!(pump.stats().reanchors.load(Ordering::Relaxed), 1);
        let discarded = pump.stats().discarded_frames.load(Ordering::Relaxed) as usize;
        assert_eq!(discarded, 50 * BLOCK_FRAMES - MAX_BACKLOG_FRAMES);
    }
}
