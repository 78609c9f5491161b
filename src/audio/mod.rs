//! Audio between the producers (party playout, test tone) and OBS: the
//! lock-free rings, the continuous sample clock, and the pump.

pub mod analysis;
pub mod clock;
pub mod limiter;
pub mod playout;
pub mod pump;
pub mod ring;
#[cfg(feature = "test-producer")]
pub mod test_tone;
