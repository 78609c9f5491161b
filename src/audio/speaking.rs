//! Who is speaking: a per-member voice activity state from the decoded voice, computed on the
//! playout thread and published through atomics, so the overlay, the obs-websocket events and the
//! properties read it without a lock and the audio path allocates nothing.
//!
//! A 10 ms block is "voiced" when its RMS level is above a floor well over what the decoder
//! makes of a DTX pause (silence, or concealment fading out), and well under quiet speech. The
//! state turns on after a short run of voiced blocks (a click does not light the avatar) and off
//! only after a hangover of quiet blocks (the pauses between words do not make it flicker).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::ring::BLOCK_FRAMES;

/// RMS level a block must exceed to count as voice: -46 dBFS. Speech in a party sits around
/// -30..-15 dBFS; a DTX pause decodes to silence or to concealment that fades below this.
pub const VOICE_FLOOR_RMS: f32 = 0.005;
/// Consecutive voiced 10 ms blocks before the state turns on (20 ms).
pub const ATTACK_BLOCKS: u32 = 2;
/// Consecutive quiet 10 ms blocks before the state turns off (350 ms): longer than the gaps
/// between words, short enough that the avatar goes dark when someone stops.
pub const HANGOVER_BLOCKS: u32 = 35;

/// What readers see of one member's speaking state. Written only by the playout thread.
#[derive(Debug, Default)]
pub struct SpeakingState {
    speaking: AtomicBool,
    /// Bumped on every change, so a reader polling now and then sees a start and stop that
    /// both happened since its last look.
    changes: AtomicU64,
    /// Playout time (ns from the playout epoch) of the first voiced block of the talkspurt
    /// that turned the state on: when that voice reached the member's sources.
    onset_ns: AtomicU64,
    /// Playout time the state last changed.
    changed_ns: AtomicU64,
}

impl SpeakingState {
    pub fn is_speaking(&self) -> bool {
        self.speaking.load(Ordering::Acquire)
    }

    /// How many times the state has changed.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// (onset of the current/last talkspurt, time of the last change), playout ns.
    pub fn times_ns(&self) -> (u64, u64) {
        (
            self.onset_ns.load(Ordering::Acquire),
            self.changed_ns.load(Ordering::Acquire),
        )
    }

    fn publish(&self, speaking: bool, onset_ns: u64, now_ns: u64) {
        self.onset_ns.store(onset_ns, Ordering::Release);
        self.changed_ns.store(now_ns, Ordering::Release);
        self.speaking.store(speaking, Ordering::Release);
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Back to quiet without counting a change (a member's audio was replaced).
    fn reset(&self) {
        if self.speaking.swap(false, Ordering::AcqRel) {
            self.changes.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// The detector's own state, owned by the playout thread (no sharing, no allocation).
#[derive(Debug)]
pub struct SpeakingDetector {
    speaking: bool,
    voiced_run: u32,
    quiet_run: u32,
    /// Playout time of the first block of the current voiced run.
    run_start_ns: u64,
}

impl SpeakingDetector {
    /// A detector starting quiet; `state` is reset to quiet too.
    pub fn new(state: &SpeakingState) -> Self {
        state.reset();
        SpeakingDetector {
            speaking: false,
            voiced_run: 0,
            quiet_run: 0,
            run_start_ns: 0,
        }
    }

    /// Looks at one 10 ms block pulled at playout time `now_ns` and publishes a change.
    pub fn feed(&mut self, block: &[f32; BLOCK_FRAMES], now_ns: u64, state: &SpeakingState) {
        if block_rms(block) <= VOICE_FLOOR_RMS {
            self.feed_silence(now_ns, state);
            return;
        }
        if self.voiced_run == 0 {
            self.run_start_ns = now_ns;
        }
        self.voiced_run = self.voiced_run.saturating_add(1);
        self.quiet_run = 0;
        if !self.speaking && self.voiced_run >= ATTACK_BLOCKS {
            self.speaking = true;
            state.publish(true, self.run_start_ns, now_ns);
        }
    }

    /// One 10 ms block of silence at `now_ns` (a member with nothing to play): no samples to
    /// look at, only the hangover to count.
    pub fn feed_silence(&mut self, now_ns: u64, state: &SpeakingState) {
        self.voiced_run = 0;
        if !self.speaking {
            return;
        }
        self.quiet_run = self.quiet_run.saturating_add(1);
        if self.quiet_run >= HANGOVER_BLOCKS {
            self.speaking = false;
            let onset = state.onset_ns.load(Ordering::Relaxed);
            state.publish(false, onset, now_ns);
        }
    }
}

fn block_rms(block: &[f32; BLOCK_FRAMES]) -> f32 {
    let sum: f32 = block.iter().map(|s| s * s).sum();
    (sum / BLOCK_FRAMES as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn tone(amplitude: f32) -> [f32; BLOCK_FRAMES] {
        let mut b = [0.0; BLOCK_FRAMES];
        for (i, s) in b.iter_mut().enumerate() {
            *s = amplitude * (i as f32 * 0.05).sin();
        }
        b
    }

    /// Feeds `blocks` (10 ms each) from `t` on; returns the time after.
    fn run(
        d: &mut SpeakingDetector,
        s: &SpeakingState,
        block: &[f32; BLOCK_FRAMES],
        blocks: u64,
        t: u64,
    ) -> u64 {
        for k in 0..blocks {
            d.feed(block, t + k * 10 * MS, s);
        }
        t + blocks * 10 * MS
    }

    #[test]
    fn speech_turns_on_after_the_attack_and_off_after_the_hangover() {
        let state = SpeakingState::default();
        let mut d = SpeakingDetector::new(&state);
        let voice = tone(0.3);
        let quiet = [0.0; BLOCK_FRAMES];
        let t = run(&mut d, &state, &quiet, 10, 0);
        assert!(!state.is_speaking());
        d.feed(&voice, t, &state);
        assert!(!state.is_speaking(), "one block is not yet speech");
        d.feed(&voice, t + 10 * MS, &state);
        assert!(state.is_speaking());
        let (onset, changed) = state.times_ns();
        assert_eq!((onset, changed - onset), (t, 10 * MS));
        // Pauses between words (200 ms) do not turn it off.
        let t = run(&mut d, &state, &voice, 30, t + 20 * MS);
        let t = run(&mut d, &state, &quiet, 20, t);
        assert!(state.is_speaking());
        let t = run(&mut d, &state, &voice, 30, t);
        assert_eq!(state.changes(), 1, "no flicker inside the talkspurt");
        let end = t;
        let t = run(&mut d, &state, &quiet, HANGOVER_BLOCKS as u64, t);
        assert!(!state.is_speaking());
        assert_eq!(state.times_ns().1, t - 10 * MS);
        assert!(t - end <= 360 * MS);
        assert_eq!(state.changes(), 2);
    }

    #[test]
    fn dtx_and_comfort_noise_are_not_speech() {
        let state = SpeakingState::default();
        let mut d = SpeakingDetector::new(&state);
        // Concealment fading out / comfort noise: -55 dBFS.
        run(&mut d, &state, &tone(0.0025), 500, 0);
        assert!(!state.is_speaking());
        // A single click.
        d.feed(&tone(0.5), 5_000 * MS, &state);
        run(&mut d, &state, &[0.0; BLOCK_FRAMES], 10, 5_010 * MS);
        assert_eq!(state.changes(), 0);
    }

    /// `feed_silence` (a member with nothing to play) counts as a quiet block.
    #[test]
    fn feeding_silence_is_feeding_a_quiet_block() {
        let (s1, s2) = (SpeakingState::default(), SpeakingState::default());
        let (mut d1, mut d2) = (SpeakingDetector::new(&s1), SpeakingDetector::new(&s2));
        let voice = tone(0.3);
        for k in 0..200u64 {
            let t = k * 10 * MS;
            // Talkspurts of 300 ms every second, with a 100 ms gap inside.
            let talking = matches!(k % 100, 0..10 | 20..40);
            if talking {
                d1.feed(&voice, t, &s1);
                d2.feed(&voice, t, &s2);
            } else {
                d1.feed(&[0.0; BLOCK_FRAMES], t, &s1);
                d2.feed_silence(t, &s2);
            }
            assert_eq!(s1.is_speaking(), s2.is_speaking(), "block {k}");
            assert_eq!(s1.times_ns(), s2.times_ns(), "block {k}");
        }
        assert_eq!((s1.changes(), s2.changes()), (4, 4));
    }

    #[test]
    fn a_new_detector_starts_quiet() {
        let state = SpeakingState::default();
        let mut d = SpeakingDetector::new(&state);
        run(&mut d, &state, &tone(0.3), 5, 0);
        assert!(state.is_speaking());
        let _fresh = SpeakingDetector::new(&state);
        assert!(!state.is_speaking());
    }
}
