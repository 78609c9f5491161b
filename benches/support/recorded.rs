//! A recorded party: 16 members' RTP packets, encoded once with libopus the way a PS5 member
//! sends them (Opus, 16 kHz RTP clock, mono, 40 ms, in-band FEC, DTX, 24 kb/s: the shape of
//! tools/psn-sim's voice members), kept in memory so every benchmark run feeds the same bytes.
//!
//! Each member talks in spurts of 0.8..4 s with pauses of 0.4..3 s (seeded, so runs repeat),
//! with psn-sim's speech-like voice (a tone with shifting harmonics under a syllable envelope)
//! and a faint noise floor. In the pauses libopus's DTX emits 1-2 byte frames, which WebRTC
//! does not send: those packets are missing from the recording, as on the wire.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub const CLOCK_RATE: u32 = 16_000;
pub const PTIME_MS: u64 = 40;
pub const OPUS_PT: u8 = 96;
/// The fundamentals of the 16 voices: none a harmonic of another's within the analysis bands.
pub const TONES: [f64; 16] = [
    300.0, 470.0, 730.0, 1030.0, 330.0, 510.0, 770.0, 1090.0, 360.0, 550.0, 810.0, 1150.0, 390.0,
    590.0, 850.0, 1210.0,
];

/// One RTP packet as the peer hands it over (already SRTP-decrypted and parsed).
#[derive(Clone)]
pub struct RecordedPacket {
    pub member: usize,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: bytes::Bytes,
    /// When the sender sent it, from the start of the recording.
    pub send_ns: u64,
}

pub struct Recording {
    pub members: usize,
    /// In send order.
    pub packets: Vec<RecordedPacket>,
    pub duration_ns: u64,
    /// 40 ms frames per member (sent or DTX).
    pub frames: u64,
}

impl Recording {
    /// Encodes `members` voices of `seconds` each.
    pub fn encode(members: usize, seconds: u64, seed: u64) -> Recording {
        let frame = (CLOCK_RATE as u64 * PTIME_MS / 1000) as usize;
        let frames = seconds * 1000 / PTIME_MS;
        let mut packets = Vec::new();
        for m in 0..members {
            let mut rng = SmallRng::seed_from_u64(seed ^ ((m as u64 + 1) * 0x9e37_79b9));
            let mut enc =
                opus::Encoder::new(CLOCK_RATE, opus::Channels::Mono, opus::Application::Voip)
                    .expect("opus encoder");
            enc.set_inband_fec(true).unwrap();
            enc.set_packet_loss_perc(10).unwrap();
            enc.set_dtx(true).unwrap();
            enc.set_bitrate(opus::Bitrate::Bits(24_000)).unwrap();
            let tone = TONES[m % TONES.len()];
            let mut seq: u16 = rng.random();
            let mut ts: u32 = rng.random();
            let mut pcm = vec![0f32; frame];
            let mut buf = [0u8; 1500];
            // Start at a random point of a talk/pause cycle, so members do not start together.
            let mut talking = rng.random_bool(0.5);
            let mut left_ms: u64 = rng.random_range(0..2000);
            let mut was_sending = false;
            let mut k: u64 = 0;
            for f in 0..frames {
                if left_ms == 0 {
                    talking = !talking;
                    left_ms = if talking {
                        rng.random_range(800..4000)
                    } else {
                        rng.random_range(600..6000)
                    };
                }
                left_ms = left_ms.saturating_sub(PTIME_MS);
                for (i, x) in pcm.iter_mut().enumerate() {
                    let noise = (rng.random::<f32>() - 0.5) * 0.002;
                    *x = noise
                        + if talking {
                            psn_sim::voice::sample(tone, 0.3, k + i as u64, CLOCK_RATE)
                        } else {
                            0.0
                        };
                }
                k += frame as u64;
                let n = enc.encode_float(&pcm, &mut buf).expect("opus encode");
                let this_ts = ts;
                ts = ts.wrapping_add(frame as u32);
                if n <= 2 {
                    was_sending = false;
                    continue;
                }
                let payload = bytes::Bytes::copy_from_slice(&buf[..n]);
                // The first clone of such a buffer allocates its shared header: do it now,
                // so handing packets over later allocates nothing (as the peer's do not).
                drop(payload.clone());
                packets.push(RecordedPacket {
                    member: m,
                    seq,
                    timestamp: this_ts,
                    marker: !was_sending,
                    payload,
                    send_ns: f * PTIME_MS * 1_000_000,
                });
                seq = seq.wrapping_add(1);
                was_sending = true;
            }
        }
        packets.sort_by_key(|p| (p.send_ns, p.member));
        Recording {
            members,
            packets,
            duration_ns: frames * PTIME_MS * 1_000_000,
            frames,
        }
    }

    /// Packets each member sent (the rest of its frames were DTX).
    pub fn sent_per_member(&self) -> Vec<usize> {
        let mut n = vec![0; self.members];
        for p in &self.packets {
            n[p.member] += 1;
        }
        n
    }
}
