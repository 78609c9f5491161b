//! The playout-thread side of consent and the speaking meter: each member's audio passes a
//! gate the playout thread reads and writes without locks (silent when the user's consent
//! setting does not allow them, in the mix and in their own source alike; metered either way
//! for the "speaking" line). The playout the hub and the follower share adds every member
//! behind their gate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::pipeline::PlayoutControl;
use super::settings::Consent;
use crate::audio::playout::{MemberAudio, MemberInfo, Playout};
use crate::audio::ring::BLOCK_FRAMES;

/// A member whose voice peaked above this in the last `SPEAKING_HOLD` is "speaking".
const SPEAKING_LEVEL: f32 = 0.01;
const SPEAKING_HOLD_NS: u64 = 400_000_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per-member switch and level meter, read and written without locks by the
/// playout thread.
#[derive(Debug)]
struct MemberGate {
    allowed: AtomicBool,
    last_pull_ns: AtomicU64,
    last_voice_ns: AtomicU64,
}

impl MemberGate {
    fn speaking(&self) -> bool {
        let voice = self.last_voice_ns.load(Ordering::Relaxed);
        voice > 0
            && self
                .last_pull_ns
                .load(Ordering::Relaxed)
                .saturating_sub(voice)
                < SPEAKING_HOLD_NS
    }
}

/// A member's audio behind their gate: silent when not allowed (in the mix
/// and in their own source alike).
struct GatedAudio {
    inner: Box<dyn MemberAudio>,
    gate: Arc<MemberGate>,
}

impl MemberAudio for GatedAudio {
    fn pull_10ms(&mut self, now_ns: u64, out: &mut [f32; BLOCK_FRAMES]) {
        self.inner.pull_10ms(now_ns, out);
        let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        self.gate.last_pull_ns.store(now_ns, Ordering::Relaxed);
        if peak > SPEAKING_LEVEL {
            self.gate.last_voice_ns.store(now_ns, Ordering::Relaxed);
        }
        if !self.gate.allowed.load(Ordering::Relaxed) {
            out.fill(0.0);
        }
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
                    last_pull_ns: AtomicU64::new(0),
                    last_voice_ns: AtomicU64::new(0),
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
        let audio = Box::new(GatedAudio { inner: audio, gate });
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
            fn pull_10ms(&mut self, _now: u64, out: &mut [f32; BLOCK_FRAMES]) {
                out.fill(0.5);
            }
        }
        let gates = Gates::default();
        let gate = gates.gate("7");
        let mut audio = GatedAudio {
            inner: Box::new(Tone),
            gate,
        };
        let mut block = [0.0; BLOCK_FRAMES];
        audio.pull_10ms(1_000, &mut block);
        assert!(block.iter().all(|s| *s == 0.5));
        gates.set_consent(Consent {
            only_allowed: true,
            allowed: HashMap::new(),
        });
        audio.pull_10ms(2_000, &mut block);
        assert!(block.iter().all(|s| *s == 0.0), "not allowed: silent");
        assert!(gates.speaking("7") && gates.muted("7"));
    }
}
