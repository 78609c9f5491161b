//! The lock-free hand-over between whoever produces a source's audio (the party
//! playout clock, or the test tone) and that source's OBS pump.
//!
//! One single-producer single-consumer ring of mono f32 PCM at 48 kHz per OBS
//! source. Neither side ever waits on the other: a full ring drops the new
//! write (and counts it), an empty ring gives the pump nothing to output.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Every source's audio is mono f32 at this rate.
pub const SAMPLE_RATE: u32 = 48_000;
/// The pump hands OBS blocks of 10 ms.
pub const BLOCK_FRAMES: usize = SAMPLE_RATE as usize / 100;
/// Default ring size: 500 ms. The party's playout writes 10 ms blocks in real time, so the
/// ring holds only what the pump has not taken yet: after a stall of the delivery thread,
/// the audio of the stall. The pump goes on through up to 250 ms of that
/// (`pump::MAX_CATCH_UP_NS`) and re-anchors after a longer one, keeping only the newest
/// 100 ms; twice the catch-up is room enough. (It was one second: 15 sources x 188 KiB
/// resident, docs/performance.md "Memory added to OBS".)
pub const DEFAULT_CAPACITY_FRAMES: usize = SAMPLE_RATE as usize / 2;

/// What both ends share besides the samples themselves.
#[derive(Default)]
struct RingShared {
    /// The pump thread to wake after a write (set once by the reader).
    reader_thread: OnceLock<Thread>,
    /// Frames the producer had to drop because the ring was full.
    dropped_frames: AtomicU64,
    /// Set when the reader is gone, so the producer can stop early.
    reader_closed: AtomicBool,
}

/// Creates a ring holding `capacity_frames` samples and returns its two ends.
pub fn audio_ring(capacity_frames: usize) -> (RingWriter, RingReader) {
    let (prod, cons) = HeapRb::<f32>::new(capacity_frames.max(BLOCK_FRAMES)).split();
    let shared = Arc::new(RingShared::default());
    (
        RingWriter {
            prod,
            shared: shared.clone(),
        },
        RingReader { cons, shared },
    )
}

/// The producer's end. Owned by exactly one producer at a time.
pub struct RingWriter {
    prod: HeapProd<f32>,
    shared: Arc<RingShared>,
}

impl RingWriter {
    /// Appends `samples` whole, or drops them whole if they do not fit (so the
    /// reader never sees a torn write), then wakes the reader. Never blocks,
    /// never allocates. Returns whether the samples were written.
    pub fn write(&mut self, samples: &[f32]) -> bool {
        let written = self.write_deferred(samples);
        self.wake_reader();
        written
    }

    /// As `write`, without waking the reader: a producer that writes many
    /// rings in one go (the playout's tick) wakes their reader once after the
    /// last write (`wake_reader`), so the one delivery thread finds every
    /// block in one wake instead of waking for each ring.
    pub fn write_deferred(&mut self, samples: &[f32]) -> bool {
        if self.prod.vacant_len() >= samples.len() {
            self.prod.push_slice(samples);
            true
        } else {
            self.shared
                .dropped_frames
                .fetch_add(samples.len() as u64, Ordering::Relaxed);
            false
        }
    }

    /// Wakes the reader (after `write_deferred`).
    pub fn wake_reader(&self) {
        if let Some(thread) = self.shared.reader_thread.get() {
            thread.unpark();
        }
    }

    /// Frames dropped so far because the ring was full.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped_frames.load(Ordering::Relaxed)
    }

    /// True once the reader (the OBS source) has gone away.
    pub fn is_closed(&self) -> bool {
        self.shared.reader_closed.load(Ordering::Acquire)
    }
}

/// Wakes the readers of `writers` after `write_deferred`, each reader thread
/// once: the rings all share the one delivery thread, and a second unpark
/// after it has already run and parked again would only wake it for nothing.
pub fn wake_readers<'a>(writers: impl IntoIterator<Item = &'a RingWriter>) {
    let mut last: Option<std::thread::ThreadId> = None;
    for writer in writers {
        if let Some(thread) = writer.shared.reader_thread.get() {
            if last != Some(thread.id()) {
                thread.unpark();
                last = Some(thread.id());
            }
        }
    }
}

/// The consumer's end, owned by the source's pump.
pub struct RingReader {
    cons: HeapCons<f32>,
    shared: Arc<RingShared>,
}

impl RingReader {
    /// Registers the thread that `RingWriter::write` wakes. Only the first
    /// registration counts: a ring has one reader for its whole life.
    pub fn wake_on_write(&self, thread: Thread) {
        let _ = self.shared.reader_thread.set(thread);
    }

    /// Frames waiting to be read.
    pub fn available_frames(&self) -> usize {
        self.cons.occupied_len()
    }

    /// Fills `block` with the next whole block if one is there.
    pub fn pop_block(&mut self, block: &mut [f32; BLOCK_FRAMES]) -> bool {
        if self.cons.occupied_len() < BLOCK_FRAMES {
            return false;
        }
        self.cons.pop_slice(block) == BLOCK_FRAMES
    }

    /// Throws away the oldest `frames` buffered samples (used after a long
    /// stall, so stale audio is not played late). Returns how many went.
    pub fn discard_frames(&mut self, frames: usize) -> usize {
        self.cons.skip(frames)
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.shared.reader_closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_come_out_in_order_and_whole() {
        let (mut w, mut r) = audio_ring(4 * BLOCK_FRAMES);
        let samples: Vec<f32> = (0..BLOCK_FRAMES * 2 + 7).map(|i| i as f32).collect();
        assert!(w.write(&samples));
        let mut block = [0.0; BLOCK_FRAMES];
        assert!(r.pop_block(&mut block));
        assert_eq!(block[0], 0.0);
        assert_eq!(block[BLOCK_FRAMES - 1], (BLOCK_FRAMES - 1) as f32);
        assert!(r.pop_block(&mut block));
        assert_eq!(block[0], BLOCK_FRAMES as f32);
        // 7 frames remain: not a whole block.
        assert!(!r.pop_block(&mut block));
        assert_eq!(r.available_frames(), 7);
    }

    #[test]
    fn a_write_that_does_not_fit_is_dropped_whole_and_counted() {
        let (mut w, r) = audio_ring(BLOCK_FRAMES * 2);
        assert!(w.write(&[0.5; BLOCK_FRAMES]));
        assert!(!w.write(&[0.5; BLOCK_FRAMES * 2]));
        assert_eq!(w.dropped_frames(), (BLOCK_FRAMES * 2) as u64);
        assert_eq!(r.available_frames(), BLOCK_FRAMES);
    }

    #[test]
    fn the_writer_learns_when_the_reader_is_gone() {
        let (w, r) = audio_ring(BLOCK_FRAMES);
        assert!(!w.is_closed());
        drop(r);
        assert!(w.is_closed());
    }

    #[test]
    fn deferred_writes_to_many_rings_wake_their_reader_once_it_is_told() {
        let (mut w1, r1) = audio_ring(BLOCK_FRAMES * 4);
        let (mut w2, r2) = audio_ring(BLOCK_FRAMES * 4);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            r1.wake_on_write(std::thread::current());
            r2.wake_on_write(std::thread::current());
            ready_tx.send(()).unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while r1.available_frames() + r2.available_frames() < 2 * BLOCK_FRAMES
                && std::time::Instant::now() < deadline
            {
                std::thread::park_timeout(std::time::Duration::from_secs(1));
            }
            r1.available_frames() + r2.available_frames()
        });
        ready_rx.recv().unwrap();
        assert!(w1.write_deferred(&[0.0; BLOCK_FRAMES]));
        assert!(w2.write_deferred(&[0.0; BLOCK_FRAMES]));
        wake_readers([&w1, &w2]);
        assert_eq!(reader.join().unwrap(), 2 * BLOCK_FRAMES);
    }

    #[test]
    fn a_write_wakes_the_registered_reader() {
        let (mut w, r) = audio_ring(BLOCK_FRAMES * 4);
        let reader = std::thread::spawn(move || {
            r.wake_on_write(std::thread::current());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while r.available_frames() == 0 && std::time::Instant::now() < deadline {
                std::thread::park_timeout(std::time::Duration::from_secs(1));
            }
            r.available_frames()
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        w.write(&[0.0; BLOCK_FRAMES]);
        assert_eq!(reader.join().unwrap(), BLOCK_FRAMES);
    }
}
