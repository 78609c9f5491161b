#![no_main]
//! RTP packets of any shape into one member's receive path (jitter buffer, RED, FEC, libopus
//! decode, playout): it must take them and keep producing 10 ms blocks, never panic.
//!
//! Each packet is 9 bytes of header (payload type, sequence, timestamp, arrival step) then a
//! length byte and the payload, so the fuzzer reaches reordering, duplicates, clock jumps and
//! garbage Opus alike.

use libfuzzer_sys::fuzz_target;
use obs_psn_party::voice::member::{Member, MemberConfig};
use obs_psn_party::voice::BLOCK;
use obs_psn_party::voice::rtp::RtpIn;

fuzz_target!(|data: &[u8]| {
    let clock = if data.first().is_some_and(|b| b & 1 == 1) { 48_000 } else { 16_000 };
    let mut cfg = MemberConfig::new(clock, 96);
    cfg.red_pt = Some(63);
    let Ok(mut member) = Member::new(cfg) else { return };
    let mut out = [0f32; BLOCK];
    let mut now_ns = 0u64;
    let mut rest = data.get(1..).unwrap_or_default();
    while rest.len() >= 10 {
        let (head, tail) = rest.split_at(10);
        let len = usize::from(head[9]).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        // 96 (Opus), 63 (RED) or anything else, as the first byte says.
        let payload_type = match head[0] % 4 {
            0 | 1 => 96,
            2 => 63,
            _ => head[0],
        };
        now_ns += u64::from(head[7]) * 1_000_000;
        member.push(&RtpIn {
            payload_type,
            seq: u16::from_be_bytes([head[1], head[2]]),
            timestamp: u32::from_be_bytes([head[3], head[4], head[5], head[6]]),
            marker: head[8] & 1 == 1,
            payload,
            arrival_ns: now_ns,
        });
        for _ in 0..head[8] >> 6 {
            now_ns += 10_000_000;
            member.pull_10ms(now_ns, &mut out);
            assert!(out.iter().all(|s| s.is_finite()), "non-finite samples");
        }
    }
});
