//! The reference of the libobs ratios: bare libopus decoding the packets a run received.
//!
//! psn-sim's voice member (tools/psn-sim/src/voice.rs, `send_media`) is deterministic: the same
//! PCM (`talk_frame`) through a fresh libopus encoder with the same settings gives the same
//! bytes. So the packets of a run are made again here, offline, and the ones the member sent
//! inside the measured window (by its `packets_sent` counter at the window's start and end;
//! with no loss, jitter or duplicates every one of them arrived) are decoded by one libopus
//! decoder per member, timed in this thread's CPU time. The packets before the window are
//! decoded first, untimed, so each decoder is in the state the plugin's was.

use cpu_time::ThreadTime;
use psn_sim::voice::{talk_frame, VoiceSpec};
use std::time::Duration;

/// What one member sent during the window, and before it.
pub struct MemberPackets {
    pub before: Vec<Vec<u8>>,
    pub window: Vec<Vec<u8>>,
}

/// The first `window_end` packets `spec` sends with `tone` (DTX frames are not sent, as
/// psn-sim does), split at `window_start`.
pub fn sent_packets(
    spec: &VoiceSpec,
    tone: f64,
    window_start: u64,
    window_end: u64,
) -> MemberPackets {
    let clock = spec.clock_rate;
    let frame = (clock * spec.ptime_ms / 1000) as usize;
    // The encoder exactly as `send_media` sets it up.
    let mut enc = opus::Encoder::new(clock, opus::Channels::Mono, opus::Application::Voip)
        .expect("opus encoder");
    let _ = enc.set_inband_fec(true);
    let _ = enc.set_packet_loss_perc(10);
    let _ = enc.set_dtx(true);
    let _ = enc.set_bitrate(opus::Bitrate::Bits(24_000));
    let cycle = match (spec.talk_ms, spec.silence_ms) {
        (Some(t), Some(s)) if t > 0 => Some((t, s)),
        _ => None,
    };
    let mut pcm = vec![0f32; frame];
    let mut buf = vec![0u8; 1500];
    let mut out = MemberPackets {
        before: Vec::new(),
        window: Vec::new(),
    };
    let (mut k, mut frames, mut sent) = (0u64, 0u64, 0u64);
    // A silent member sends a DTX refresh every 400 ms: bound the search all the same.
    let max_frames = window_end * 1000 + 100_000;
    while sent < window_end && frames < max_frames {
        let at_ms = frames * u64::from(spec.ptime_ms) + spec.talk_offset_ms;
        frames += 1;
        talk_frame(&[tone], spec.amplitude, k, clock, cycle, at_ms, &mut pcm);
        k += frame as u64;
        let n = enc.encode_float(&pcm, &mut buf).expect("opus encode");
        if n <= 2 {
            continue; // DTX: not sent
        }
        if sent >= window_start {
            out.window.push(buf[..n].to_vec());
        } else {
            out.before.push(buf[..n].to_vec());
        }
        sent += 1;
    }
    out
}

/// Decodes every member's packets with a decoder of its own at 48 kHz (the plugin's output
/// rate); returns the thread CPU time of the window's packets only.
pub fn decode_cpu(members: &[MemberPackets]) -> Duration {
    let mut out = vec![0f32; 5760];
    let mut total = Duration::ZERO;
    for m in members {
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).expect("opus decoder");
        for p in &m.before {
            let _ = dec.decode_float(p, &mut out, false);
        }
        let t = ThreadTime::now();
        std::hint::black_box(decode_window(&mut dec, &m.window, &mut out));
        total += t.elapsed();
    }
    total
}

/// The timed part, a function of its own so callgrind can count only it
/// (`--toggle-collect='*decode_window*'`).
#[inline(never)]
pub fn decode_window(dec: &mut opus::Decoder, packets: &[Vec<u8>], out: &mut [f32]) -> f32 {
    let mut acc = 0.0;
    for p in packets {
        if let Ok(n) = dec.decode_float(p, out, false) {
            acc += out[n.saturating_sub(1)];
        }
    }
    acc
}

/// Writes the packets for a later callgrind run (`party_obs bare-decode FILE`): per member a
/// line "member <before> <window>", then each packet as hex on a line of its own.
pub fn save(path: &std::path::Path, members: &[MemberPackets]) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut text = String::new();
    for m in members {
        let _ = writeln!(text, "member {} {}", m.before.len(), m.window.len());
        for p in m.before.iter().chain(&m.window) {
            for b in p {
                let _ = write!(text, "{b:02x}");
            }
            text.push('\n');
        }
    }
    std::fs::write(path, text)
}

pub fn load(path: &std::path::Path) -> Result<Vec<MemberPackets>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let mut members = Vec::new();
    while let Some(head) = lines.next() {
        let counts: Vec<usize> = head
            .strip_prefix("member ")
            .ok_or("bad packet file")?
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let [before, window] = counts[..] else {
            return Err("bad member line".into());
        };
        let mut packet = || -> Result<Vec<u8>, String> {
            let hex = lines.next().ok_or("short packet file")?;
            (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
                .collect()
        };
        let before = (0..before).map(|_| packet()).collect::<Result<_, _>>()?;
        let window = (0..window).map(|_| packet()).collect::<Result<_, _>>()?;
        members.push(MemberPackets { before, window });
    }
    Ok(members)
}
