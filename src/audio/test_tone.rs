//! A test-only producer: a sine tone written into a source's ring in real
//! time, in bursts of a chosen length. It stands in for the party playout in
//! the libobs tests until voice exists, and stays out of release builds
//! (cargo feature `test-producer`).

use std::f64::consts::TAU;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use super::ring::{RingWriter, SAMPLE_RATE};
use crate::runtime::RuntimeRef;

/// The ring a tone source gets: one second, so a burst of the setting's longest (1000 ms)
/// fits (the party's rings are shorter: it writes 10 ms at a time).
pub const RING_FRAMES: usize = SAMPLE_RATE as usize;

/// What the tone sounds like and how it is delivered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSpec {
    pub hz: f64,
    pub amplitude: f32,
    /// Samples are written every `burst_ms`, `burst_ms` worth at a time.
    pub burst_ms: u32,
}

/// A running tone task. `stop` ends it and gives the ring back.
pub struct ToneProducer {
    spec: ToneSpec,
    runtime: RuntimeRef,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<RingWriter>>,
}

impl ToneProducer {
    pub fn start(runtime: &RuntimeRef, spec: ToneSpec, writer: RingWriter) -> ToneProducer {
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = runtime.spawn(run(spec, writer, stop_rx));
        ToneProducer {
            spec,
            runtime: runtime.clone(),
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    pub fn spec(&self) -> ToneSpec {
        self.spec
    }

    /// Stops the task and waits (at most one second) for the ring to come back.
    pub fn stop(mut self) -> Option<RingWriter> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take()?;
        // The timer must be created inside the runtime, hence the async block.
        let waited = async { tokio::time::timeout(Duration::from_secs(1), task).await };
        self.runtime.handle().block_on(waited).ok()?.ok()
    }
}

impl Drop for ToneProducer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    spec: ToneSpec,
    mut writer: RingWriter,
    mut stop: oneshot::Receiver<()>,
) -> RingWriter {
    let burst_frames = (SAMPLE_RATE as usize * spec.burst_ms.max(1) as usize) / 1000;
    let mut samples = vec![0.0f32; burst_frames];
    let step = TAU * spec.hz / f64::from(SAMPLE_RATE);
    let mut phase = 0.0f64;
    let period = Duration::from_millis(u64::from(spec.burst_ms.max(1)));
    let mut ticks = interval_at(Instant::now(), period);
    // A late tick is followed by the missed ones at once: the tone keeps
    // real-time pace on average, as a real producer would.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticks.tick() => {
                for sample in samples.iter_mut() {
                    *sample = spec.amplitude * phase.sin() as f32;
                    phase = (phase + step) % TAU;
                }
                writer.write(&samples);
                if writer.is_closed() {
                    break;
                }
            }
        }
    }
    writer
}
