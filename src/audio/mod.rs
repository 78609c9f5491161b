//! Audio between the producers (party playout, test tone) and OBS: the
//! lock-free rings, the continuous sample clock, the pump, the mixer.

#[cfg(feature = "test-host")]
pub mod analysis;
pub mod clock;
pub mod delivery;
pub mod mix;
pub mod playout;
pub mod pump;
pub mod ring;
pub mod speaking;
#[cfg(feature = "test-producer")]
pub mod test_tone;
pub mod thread;
