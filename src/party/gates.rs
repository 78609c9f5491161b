//! The playout-thread side of consent and the speaking meter: each member's audio passes a
//! gate the playout thread reads and writes without locks (silent when the user's consent
//! setting does not allow them, in the mix and in their own source alike; metered either way
//! for the "speaking" line). The playout the hub and the follower share adds every member
//! behind their gate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::pipeline::PlayoutControl;
use super::settings::Consent;
use crate::audio::playout::{MemberAudio, MemberInfo, Playout, Pulled};
use crate::audio::ring::BLOCK_FRAMES;
use crate::audio::speaking::{SpeakingDetector, SpeakingState};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-member switch and speaking state, read and written without locks by the
/// playout thread.
#[derive(Debug)]
struct MemberGate {
    allowed: AtomicBool,
    speech: SpeakingState,
}

impl MemberGate {
    fn speaking(&self) -> bool {
        self.speech.is_speaking()
    }
}

/// A member's audio behind their gate: silent when not allowed (in the mix
/// and in their own source alike). Speech is detected before the gate, so the
/// properties can say a muted member talks (the overlay and events do not).
struct GatedAudio {
    inner: Box<dyn MemberAudio>,
    gate: Arc<MemberGate>,
    detector: SpeakingDetector,
}

impl GatedAudio {
    fn new(inner: Box<dyn MemberAudio>, gate: Arc<MemberGate>) -> Self {
        let detector = SpeakingDetector::new(&gate.speech);
        GatedAudio {
            inner,
            gate,
            detector,
        }
    }
}

impl MemberAudio for GatedAudio {
    fn pull_10ms(&mut self, now_ns: u64, out: &mut [f32; BLOCK_FRAMES]) -> Pulled {
        if self.inner.pull_10ms(now_ns, out) == Pulled::Silent {
            self.detector.feed_silence(now_ns, &self.gate.speech);
            return Pulled::Silent;
        }
        self.detector.feed(out, now_ns, &self.gate.speech);
        if !self.gate.allowed.load(Ordering::Relaxed) {
            // Not allowed: heard nowhere, as if silent.
            return Pulled::Silent;
        }
        Pulled::Audio
    }
}

#[derive(Default)]
pub struct Gates {
    consent: Mutex<Consent>,
    members: Mutex<HashMap<String, Arc<MemberGate>>>,
}

impl Gates {
    fn gate(&self, account_id: &str) -> Arc<MemberGate> {
        let allowed = lock(&self.consent).allows(account_id);
        let mut members = lock(&self.members);
        let gate = members
            .entry(account_id.to_owned())
            .or_insert_with(|| {
                Arc::new(MemberGate {
                    allowed: AtomicBool::new(allowed),
                    speech: SpeakingState::default(),
                })
            })
            .clone();
        gate.allowed.store(allowed, Ordering::Relaxed);
        gate
    }

    pub fn set_consent(&self, consent: Consent) {
        let mut current = lock(&self.consent);
        if *current == consent {
            return;
        }
        for (id, gate) in lock(&self.members).iter() {
            gate.allowed.store(consent.allows(id), Ordering::Relaxed);
        }
        *current = consent;
    }

    pub fn muted(&self, account_id: &str) -> bool {
        !lock(&self.consent).allows(account_id)
    }

    pub fn speaking(&self, account_id: &str) -> bool {
        lock(&self.members)
            .get(account_id)
            .is_some_and(|g| g.speaking())
    }
}

/// The playout, shared by the hub (for subscriptions) and the follower (for members).
pub struct SharedPlayout {
    pub playout: Mutex<Playout>,
    pub gates: Arc<Gates>,
}

impl SharedPlayout {
    pub fn with<R>(&self, f: impl FnOnce(&Playout) -> R) -> R {
        f(&lock(&self.playout))
    }
}

impl PlayoutControl for SharedPlayout {
    fn add_member(&self, info: MemberInfo, audio: Box<dyn MemberAudio>) {
        let gate = self.gates.gate(&info.account_id);
        let audio = Box::new(GatedAudio::new(audio, gate));
        self.with(|p| p.add_member(info, audio));
    }
    fn remove_member(&self, account_id: &str) {
        self.with(|p| p.remove_member(account_id));
    }
    fn epoch(&self) -> Instant {
        self.with(|p| p.epoch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gated_member_is_silent_and_still_metered() {
        struct Tone;
        impl MemberAudio for Tone {
            fn pull_10ms(&mut self, _now: u64, out: &mut [f32; BLOCK_FRAMES]) -> Pulled {
                out.fill(0.5);
                Pulled::Audio
            }
        }
        let gates = Gates::default();
        let gate = gates.gate("7");
        let mut audio = GatedAudio::new(Box::new(Tone), gate);
        let mut block = [0.0; BLOCK_FRAMES];
        assert_eq!(audio.pull_10ms(1_000, &mut block), Pulled::Audio);
        assert_eq!(audio.pull_10ms(10_001_000, &mut block), Pulled::Audio);
        assert!(block.iter().all(|s| *s == 0.5));
        gates.set_consent(Consent {
            only_allowed: true,
            allowed: HashMap::new(),
        });
        let pulled = audio.pull_10ms(20_001_000, &mut block);
        assert_eq!(pulled, Pulled::Silent, "not allowed: silent");
        assert!(gates.speaking("7") && gates.muted("7"));
    }

    /// A member who falls silent (pulls that do no work) stops speaking after the hangover,
    /// as after quiet blocks.
    #[test]
    fn speaking_goes_off_after_the_hangover_when_a_member_falls_silent() {
        use crate::audio::speaking::HANGOVER_BLOCKS;
        /// Loud for the first `talk` pulls, then silent.
        struct Spurt(u32);
        impl MemberAudio for Spurt {
            fn pull_10ms(&mut self, _now: u64, out: &mut [f32; BLOCK_FRAMES]) -> Pulled {
                if self.0 == 0 {
                    return Pulled::Silent;
                }
                self.0 -= 1;
                out.fill(0.3);
                Pulled::Audio
            }
        }
        let gates = Gates::default();
        let mut audio = GatedAudio::new(Box::new(Spurt(20)), gates.gate("9"));
        let mut block = [0.0; BLOCK_FRAMES];
        let mut silent_pulls = 0;
        for t in 0..200u64 {
            if audio.pull_10ms(t * 10_000_000, &mut block) == Pulled::Silent {
                silent_pulls += 1;
            }
            let speaking = gates.speaking("9");
            match t {
                2..20 => assert!(speaking, "speaking at pull {t}"),
                _ if silent_pulls >= HANGOVER_BLOCKS => assert!(!speaking, "pull {t}"),
                20.. => assert!(speaking, "still in the hangover at pull {t}"),
                _ => {}
            }
        }
        assert_eq!(silent_pulls, 180);
    }
}
