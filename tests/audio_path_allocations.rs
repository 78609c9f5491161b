//! The audio path (ring -> pump -> output) allocates nothing per block once
//! running. A counting allocator tallies allocations per thread; the pump's
//! output sees its own thread's tally stay flat after the first blocks.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use obs_psn_party::audio::pump::{BlockOutput, Pump};
use obs_psn_party::audio::ring::{audio_ring, BLOCK_FRAMES, SAMPLE_RATE};
use support::counting_alloc::{thread_allocations, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Records the pump thread's allocation tally at every block (into a
/// preallocated buffer, so recording allocates nothing either).
struct TallyOutput {
    start: Instant,
    tallies: Arc<Mutex<Vec<u64>>>,
}

impl BlockOutput for TallyOutput {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn output(&mut self, _block: &[f32; BLOCK_FRAMES], _ts: u64) {
        let tally = thread_allocations();
        let mut tallies = self.tallies.lock().unwrap();
        if tallies.len() < tallies.capacity() {
            tallies.push(tally);
        }
    }
}

#[test]
fn the_pump_allocates_nothing_per_block() {
    let (mut writer, reader) = audio_ring(SAMPLE_RATE as usize);
    let tallies = Arc::new(Mutex::new(Vec::with_capacity(400)));
    let output = TallyOutput {
        start: Instant::now(),
        tallies: tallies.clone(),
    };
    let mut pump = Pump::start("alloc-test-pump", reader, output).unwrap();
    let block = [0.25f32; BLOCK_FRAMES];
    let writes_before = thread_allocations();
    // Two seconds of real-time 10 ms writes, with a few bursts.
    for i in 0..200 {
        writer.write(&block);
        if i % 50 == 0 {
            for _ in 0..10 {
                writer.write(&block);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let writes_after = thread_allocations();
    pump.stop();
    let tallies = tallies.lock().unwrap();
    assert!(
        tallies.len() >= 200,
        "only {} blocks came out",
        tallies.len()
    );
    // Skip the first blocks (thread start-up), then the tally must be flat.
    let steady = &tallies[10..];
    assert_eq!(
        steady.first(),
        steady.last(),
        "the pump thread allocated {} times over {} blocks",
        steady.last().unwrap() - steady.first().unwrap(),
        steady.len()
    );
    // The producer side (RingWriter::write) allocates nothing either, apart
    // from the test's own sleeping.
    assert_eq!(writes_after - writes_before, 0, "writes allocated");
}
