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

/// An offer whose BUNDLE group shares one ICE/DTLS transport, as a single-transport stack needs.
///
/// JSEP's `balanced` bundle policy (aiortc's default, and browsers' with `max-compat`) gathers a
/// separate transport per media type for the initial offer: each bundled m-section has its own
/// `a=ice-ufrag`, `a=ice-pwd` and candidates, and the offerer keeps only the first mid's
/// transport (RFC 8843's offerer-tagged m-section) once the answer accepts the BUNDLE. `rtc`
/// runs one transport per connection and refuses such an offer outright ("conflicting
/// ice-ufrag values"). So before the stack sees it, every other bundled m-section whose ICE
/// credentials differ gets the tagged section's `ice-ufrag`, `ice-pwd` and `fingerprint`, and
/// loses its own candidates (they belong to the transport the offerer discards). Offers whose
/// bundled sections already agree, like the recorded PS5 offers, come back unchanged
/// (borrowed). Line endings are kept.
pub fn unify_bundle_transport(sdp: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    // (content, line ending) pairs; sections split at m= lines (index 0 = session part).
    let mut sections: Vec<Vec<(&str, &str)>> = vec![Vec::new()];
    for raw in sdp.split_inclusive('\n') {
        let content = raw.trim_end_matches(['\r', '\n']);
        let ending = &raw[content.len()..];
        if content.starts_with("m=") {
            sections.push(Vec::new());
        }
        sections.last_mut().unwrap().push((content, ending));
    }
    let attr = |sec: &[(&str, &str)], key: &str| -> Option<String> {
        sec.iter()
            .find_map(|(l, _)| l.trim().strip_prefix(key).map(|v| v.trim().to_owned()))
    };
    let Some(group) = attr(&sections[0], "a=group:BUNDLE") else {
        return Cow::Borrowed(sdp);
    };
    let mids: Vec<&str> = group.split_whitespace().collect();
    let Some(tagged_mid) = mids.first() else {
        return Cow::Borrowed(sdp);
    };
    let mid_of = |sec: &[(&str, &str)]| attr(sec, "a=mid:");
    let Some(tagged) = sections[1..]
        .iter()
        .find(|s| mid_of(s).as_deref() == Some(*tagged_mid))
    else {
        return Cow::Borrowed(sdp);
    };
    let session_ufrag = attr(&sections[0], "a=ice-ufrag:");
    let session_pwd = attr(&sections[0], "a=ice-pwd:");
    let (Some(ufrag), Some(pwd)) = (
        attr(tagged, "a=ice-ufrag:").or_else(|| session_ufrag.clone()),
        attr(tagged, "a=ice-pwd:").or_else(|| session_pwd.clone()),
    ) else {
        return Cow::Borrowed(sdp);
    };
    let fingerprint = attr(tagged, "a=fingerprint:");
    let mut changed = false;
    let mut out = String::with_capacity(sdp.len());
    for (i, sec) in sections.iter().enumerate() {
        let rewrite = i > 0
            && mid_of(sec).is_some_and(|m| m != *tagged_mid && mids.contains(&m.as_str()))
            && (attr(sec, "a=ice-ufrag:").is_some_and(|u| u != ufrag)
                || attr(sec, "a=ice-pwd:").is_some_and(|p| p != pwd));
        changed |= rewrite;
        for (line, ending) in sec {
            let l = line.trim();
            let line = if !rewrite {
                (*line).to_owned()
            } else if l.starts_with("a=candidate:") {
                continue;
            } else if l.starts_with("a=ice-ufrag:") {
                format!("a=ice-ufrag:{ufrag}")
            } else if l.starts_with("a=ice-pwd:") {
                format!("a=ice-pwd:{pwd}")
            } else if let (true, Some(fp)) = (l.starts_with("a=fingerprint:"), &fingerprint) {
                format!("a=fingerprint:{fp}")
            } else {
                (*line).to_owned()
            };
            out.push_str(&line);
            out.push_str(ending);
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(sdp)
    }
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

    /// aiortc 1.4's offer (bundle policy `balanced`): audio and data channel in one BUNDLE,
    /// each with its own ICE credentials and candidate, then `a=end-of-candidates`.
    const AIORTC_OFFER: &str =
        "v=0\r\no=- 4004326883 4004326883 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\na=msid-semantic:WMS *\r\n\
m=audio 51452 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 127.0.0.1\r\na=sendrecv\r\na=mid:0\r\n\
a=rtcp-mux\r\na=rtpmap:96 opus/48000/2\r\na=ptime:40\r\n\
a=candidate:16572de6 1 udp 2130706431 127.0.0.1 51452 typ host\r\na=end-of-candidates\r\n\
a=ice-ufrag:cgon\r\na=ice-pwd:xYHV6hmIDkXG5JD71Wpkcu\r\n\
a=fingerprint:sha-256 C4:55:6E\r\na=setup:actpass\r\n\
m=application 52020 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 127.0.0.1\r\na=mid:1\r\n\
a=sctp-port:5000\r\n\
a=candidate:16572de6 1 udp 2130706431 127.0.0.1 52020 typ host\r\na=end-of-candidates\r\n\
a=ice-ufrag:4U1V\r\na=ice-pwd:KxkueEEhXuwSy1ZQb6zKAO\r\n\
a=fingerprint:sha-256 C4:55:6E\r\na=setup:actpass\r\n";

    #[test]
    fn bundle_with_a_transport_per_m_line_is_unified_on_the_first_mid() {
        let out = unify_bundle_transport(AIORTC_OFFER);
        assert!(matches!(out, std::borrow::Cow::Owned(_)));
        let (audio, data) = out.split_once("m=application").unwrap();
        // The tagged (audio) section is untouched.
        assert_eq!(audio, AIORTC_OFFER.split_once("m=application").unwrap().0);
        // The data section now names the audio transport and drops its own candidate.
        assert!(data.contains("a=ice-ufrag:cgon\r\n"), "{data}");
        assert!(
            data.contains("a=ice-pwd:xYHV6hmIDkXG5JD71Wpkcu\r\n"),
            "{data}"
        );
        assert!(!data.contains("4U1V") && !data.contains("KxkueE"), "{data}");
        assert!(!data.contains("a=candidate:"), "{data}");
        assert!(data.contains("a=end-of-candidates\r\n"), "{data}");
        assert!(data.contains("a=sctp-port:5000\r\n"), "{data}");
        assert_eq!(out.matches("a=ice-ufrag:").count(), 2);
        assert!(out.split_inclusive('\n').all(|l| l.ends_with("\r\n")));
        // Nothing else moved: the same lines less one candidate.
        assert_eq!(out.lines().count(), AIORTC_OFFER.lines().count() - 1);
        // Idempotent, and the parsed audio facts are the same.
        assert!(matches!(
            unify_bundle_transport(&out),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(audio_params(&out), audio_params(AIORTC_OFFER));
        // LF-only offers too.
        let lf = AIORTC_OFFER.replace("\r\n", "\n");
        let out_lf = unify_bundle_transport(&lf);
        assert_eq!(out_lf, out.replace("\r\n", "\n"));
    }

    #[test]
    fn offers_that_already_share_a_transport_are_left_alone() {
        // The recorded PS5 shape: both sections carry the same credentials.
        assert!(matches!(
            unify_bundle_transport(FIXTURE),
            std::borrow::Cow::Borrowed(_)
        ));
        // No BUNDLE: not ours to merge (a single-transport stack cannot take it either way).
        let unbundled = AIORTC_OFFER.replace("a=group:BUNDLE 0 1\r\n", "");
        assert!(matches!(
            unify_bundle_transport(&unbundled),
            std::borrow::Cow::Borrowed(_)
        ));
        // The data section outside the group stays as it is.
        let partial = AIORTC_OFFER.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0");
        assert!(matches!(
            unify_bundle_transport(&partial),
            std::borrow::Cow::Borrowed(_)
        ));
        for junk in [
            "",
            "a=group:BUNDLE\r\n",
            "a=group:BUNDLE 7\r\nm=audio 9 x 96\r\n",
        ] {
            assert_eq!(unify_bundle_transport(junk), junk);
        }
    }
}
