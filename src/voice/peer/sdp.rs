//! What the voice pipeline needs to know from a member's SDP, read without any WebRTC stack:
//! the Opus payload type and its RTP clock rate (16000 as recorded, 48000 per RFC 7587), the
//! RED payload type that wraps Opus, and the packet time.
//!
//! Lenient on purpose: unknown lines are skipped, CRLF or LF both work, and anything that
//! does not parse leaves the field at its default rather than failing.

/// The audio section's codec facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioParams {
    /// The audio m-line's `a=mid`, if any.
    pub mid: Option<String>,
    pub opus_pt: u8,
    /// The Opus RTP clock rate from `a=rtpmap` (never assume 48000).
    pub clock_rate: u32,
    pub channels: u8,
    /// `useinbandfec=1` in the Opus fmtp.
    pub inband_fec: bool,
    /// A RED payload type whose fmtp names the Opus payload type.
    pub red_pt: Option<u8>,
    /// `a=ptime` in ms, if given.
    pub ptime_ms: Option<u32>,
}

/// Find the first audio m-section with Opus. `None` if there is none.
pub fn audio_params(sdp: &str) -> Option<AudioParams> {
    let mut in_audio = false;
    let mut found: Option<AudioParams> = None;
    let mut mid = None;
    let mut ptime = None;
    let mut red: Vec<(u8, String)> = Vec::new();
    let mut fmtp: Vec<(u8, String)> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            if in_audio && found.is_some() {
                break;
            }
            in_audio = m.starts_with("audio ");
            continue;
        }
        if !in_audio {
            continue;
        }
        if let Some(v) = line.strip_prefix("a=mid:") {
            mid = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("a=ptime:") {
            ptime = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("a=rtpmap:") {
            let mut it = v.splitn(2, ' ');
            let (Some(pt), Some(enc)) = (it.next(), it.next()) else {
                continue;
            };
            let Ok(pt) = pt.parse::<u8>() else {
                continue;
            };
            let mut parts = enc.split('/');
            let name = parts.next().unwrap_or("").to_ascii_lowercase();
            let rate = parts.next().and_then(|r| r.parse::<u32>().ok());
            let channels = parts.next().and_then(|c| c.parse::<u8>().ok()).unwrap_or(1);
            match (name.as_str(), rate) {
                ("opus", Some(rate)) if found.is_none() && rate > 0 => {
                    found = Some(AudioParams {
                        mid: None,
                        opus_pt: pt,
                        clock_rate: rate,
                        channels,
                        inband_fec: false,
                        red_pt: None,
                        ptime_ms: None,
                    });
                }
                ("red", _) => red.push((pt, String::new())),
                _ => {}
            }
        } else if let Some(v) = line.strip_prefix("a=fmtp:") {
            let mut it = v.splitn(2, ' ');
            if let (Some(pt), Some(params)) = (it.next(), it.next()) {
                if let Ok(pt) = pt.parse::<u8>() {
                    fmtp.push((pt, params.to_string()));
                }
            }
        }
    }
    let mut p = found?;
    p.mid = mid;
    p.ptime_ms = ptime;
    for (pt, params) in &fmtp {
        if *pt == p.opus_pt {
            p.inband_fec = params
                .split(';')
                .map(str::trim)
                .any(|kv| kv.eq_ignore_ascii_case("useinbandfec=1"));
        }
    }
    for (pt, _) in &mut red {
        // RED's fmtp lists the payload types it carries, e.g. "96/96".
        let carries_opus = fmtp.iter().any(|(fpt, params)| {
            fpt == pt
                && params
                    .split('/')
                    .all(|x| x.trim().parse::<u8>().ok() == Some(p.opus_pt))
        });
        if carries_opus && p.red_pt.is_none() {
            p.red_pt = Some(*pt);
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../tests/voice_fixtures/member-offer.sdp");

    #[test]
    fn fixture_offer() {
        let p = audio_params(FIXTURE).unwrap();
        assert_eq!(
            p,
            AudioParams {
                mid: Some("0".into()),
                opus_pt: 96,
                clock_rate: 16_000,
                channels: 2,
                inband_fec: true,
                red_pt: Some(63),
                ptime_ms: Some(40),
            }
        );
    }

    #[test]
    fn rfc7587_clock_and_garbage() {
        let sdp = "v=0\nm=audio 9 UDP/TLS/RTP/SAVPF 111\na=rtpmap:111 opus/48000/2\n";
        assert_eq!(audio_params(sdp).unwrap().clock_rate, 48_000);
        assert!(audio_params("").is_none());
        assert!(audio_params("m=audio\na=rtpmap:x opus/y\na=rtpmap:96 opus/0/2").is_none());
        assert!(audio_params("m=video 9 x 96\na=rtpmap:96 opus/48000/2").is_none());
    }
}
