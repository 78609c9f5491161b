//! Party voice: everything between a member's RTP packets and 10 ms blocks of f32 at 48 kHz.
//!
//! - `peer`: the WebRTC connection behind a small trait of our own ([`peer::PeerEvent`])
//! - `rtp`: what a peer hands over per packet, RED (RFC 2198) unpacking, Opus TOC parsing
//! - `jitter`: per-member jitter buffer on an injected clock (reorder, dedupe, FEC/RED/PLC, DTX, drift)
//! - `decode`: libopus decode of what the jitter buffer says to play
//! - `member`: jitter buffer + decoder = exactly 480 samples per 10 ms pull, allocation-free
//!
//! Nothing here uses `unsafe`, and nothing panics on what the network sends: a malformed
//! packet is treated as lost.
#![forbid(unsafe_code)]

pub mod decode;
pub mod jitter;
pub mod member;
pub mod net;
pub mod peer;
pub mod rtp;

/// Output sample rate of every decoded member stream (Hz).
pub const OUTPUT_RATE: u32 = 48_000;
/// Samples in one 10 ms output block at [`OUTPUT_RATE`].
pub const BLOCK: usize = 480;

/// Samples in `ms` milliseconds at [`OUTPUT_RATE`]: tuning written as a duration, not a count.
pub(crate) const fn samples_48k(ms: usize) -> usize {
    ms * (OUTPUT_RATE as usize / 1000)
}

/// Nanoseconds in `ms` milliseconds (the clock the member and jitter buffer run on).
pub(crate) const fn ms_ns(ms: i64) -> i64 {
    ms * 1_000_000
}

/// Root mean square of `samples` (0 for none): the level the decoder's concealment and the
/// member's quiet-block dropping compare.
pub(crate) fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
}
