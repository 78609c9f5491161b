//! Which of a member's ICE candidates we use (docs/network.md "Remote candidates").
//!
//! A member's SDP names every address its console has. Some must never get our connectivity
//! checks: loopback and link-local addresses are the member's own machine or wire, not a path
//! to it (and checks to them would hit whatever listens on ours), multicast is never a peer,
//! and an mDNS name (`….local`) would need a multicast query we never send. The count is
//! capped so a hostile or broken offer cannot make us send checks to hundreds of addresses.
//! Loopback is allowed only when we bind loopback ourselves (the tests against psn-sim).

use std::net::IpAddr;

/// Why a candidate was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Loopback,
    LinkLocal,
    Multicast,
    Unspecified,
    MulticastDns,
    NotUdp,
    Malformed,
    OverLimit,
}

impl Dropped {
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::Loopback => "loopback",
            Dropped::LinkLocal => "link-local",
            Dropped::Multicast => "multicast",
            Dropped::Unspecified => "unspecified address",
            Dropped::MulticastDns => "mDNS name",
            Dropped::NotUdp => "not UDP",
            Dropped::Malformed => "malformed",
            Dropped::OverLimit => "over the limit",
        }
    }
}

/// The judgement of one candidate (`candidate:…` with or without `a=`), ignoring the limit.
pub fn judge(candidate: &str, allow_loopback: bool) -> Result<(), Dropped> {
    let value = candidate.trim().trim_start_matches("a=");
    let value = value.strip_prefix("candidate:").ok_or(Dropped::Malformed)?;
    // foundation component transport priority address port "typ" type ...
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    if fields.len() < 8 || fields[6] != "typ" {
        return Err(Dropped::Malformed);
    }
    if !fields[2].eq_ignore_ascii_case("udp") {
        return Err(Dropped::NotUdp);
    }
    let address = fields[4];
    let Ok(ip) = address.parse::<IpAddr>() else {
        return Err(if address.to_ascii_lowercase().ends_with(".local") {
            Dropped::MulticastDns
        } else {
            Dropped::Malformed
        });
    };
    if ip.is_unspecified() {
        return Err(Dropped::Unspecified);
    }
    if ip.is_multicast() || ip == IpAddr::from([255, 255, 255, 255]) {
        return Err(Dropped::Multicast);
    }
    if ip.is_loopback() && !allow_loopback {
        return Err(Dropped::Loopback);
    }
    if is_link_local(&ip) {
        return Err(Dropped::LinkLocal);
    }
    Ok(())
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Counts a peer's remote candidates across its SDP and any trickled later.
#[derive(Debug, Default)]
pub struct RemoteCandidates {
    used: usize,
}

impl RemoteCandidates {
    /// Whether to use this candidate; counts it when used.
    pub fn admit(
        &mut self,
        candidate: &str,
        allow_loopback: bool,
        max: usize,
    ) -> Result<(), Dropped> {
        judge(candidate, allow_loopback)?;
        if self.used >= max {
            return Err(Dropped::OverLimit);
        }
        self.used += 1;
        Ok(())
    }
}

/// The SDP with only the candidates we use; what was dropped is counted by reason, for one
/// log line. Other lines pass unchanged.
pub fn filter_sdp(
    sdp: &str,
    counter: &mut RemoteCandidates,
    allow_loopback: bool,
    max: usize,
) -> (String, Vec<(Dropped, usize)>) {
    let mut out = String::with_capacity(sdp.len());
    let mut dropped: Vec<(Dropped, usize)> = Vec::new();
    // BUNDLE: the same candidate is repeated under every m-line; count it once.
    let mut seen: Vec<(&str, Result<(), Dropped>)> = Vec::new();
    for line in sdp.split_inclusive('\n') {
        let content = line.trim_end();
        if let Some(value) = content.strip_prefix("a=candidate:") {
            let verdict = match seen.iter().find(|(v, _)| *v == value) {
                Some((_, verdict)) => *verdict,
                None => {
                    let verdict = counter.admit(content, allow_loopback, max);
                    seen.push((value, verdict));
                    verdict
                }
            };
            if let Err(why) = verdict {
                match dropped.iter_mut().find(|(d, _)| *d == why) {
                    Some((_, n)) => *n += 1,
                    None => dropped.push((why, 1)),
                }
                continue;
            }
        }
        out.push_str(line);
    }
    (out, dropped)
}

/// "2 loopback, 1 mDNS name" for the log.
pub fn describe(dropped: &[(Dropped, usize)]) -> String {
    dropped
        .iter()
        .map(|(d, n)| format!("{n} {}", d.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(addr: &str) -> String {
        format!("a=candidate:1 1 udp 2130706431 {addr} 50000 typ host")
    }

    #[test]
    fn only_addresses_that_can_be_a_path_to_the_member() {
        assert_eq!(judge(&c("198.51.100.7"), false), Ok(()));
        assert_eq!(judge(&c("10.0.2.2"), false), Ok(()));
        assert_eq!(judge(&c("2001:db8::1"), false), Ok(()));
        assert_eq!(judge(&c("127.0.0.1"), false), Err(Dropped::Loopback));
        assert_eq!(judge(&c("127.0.0.1"), true), Ok(()));
        assert_eq!(judge(&c("::1"), false), Err(Dropped::Loopback));
        assert_eq!(judge(&c("169.254.3.4"), true), Err(Dropped::LinkLocal));
        assert_eq!(judge(&c("fe80::1"), true), Err(Dropped::LinkLocal));
        assert_eq!(judge(&c("224.0.0.251"), true), Err(Dropped::Multicast));
        assert_eq!(judge(&c("ff02::fb"), true), Err(Dropped::Multicast));
        assert_eq!(judge(&c("0.0.0.0"), true), Err(Dropped::Unspecified));
        assert_eq!(
            judge(&c("2f1c6a8e-0b1d-4c5e-9a53-1f6c1f3a0d2e.local"), true),
            Err(Dropped::MulticastDns)
        );
        assert_eq!(
            judge(
                "candidate:1 1 tcp 1 10.0.0.1 9 typ host tcptype active",
                true
            ),
            Err(Dropped::NotUdp)
        );
        assert_eq!(judge("candidate:1 1 udp", true), Err(Dropped::Malformed));
        assert_eq!(
            judge(
                "candidate:2 1 udp 1694498815 203.0.113.9 61000 typ srflx raddr 10.0.2.2 rport 50000",
                false
            ),
            Ok(())
        );
    }

    #[test]
    fn an_sdp_keeps_at_most_the_limit_and_says_what_it_dropped() {
        let mut sdp = String::from("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n");
        for i in 0..40 {
            sdp.push_str(&format!(
                "a=candidate:{i} 1 udp 2130706431 198.51.100.{i} 5000 typ host\r\n"
            ));
        }
        sdp.push_str(&c("127.0.0.1"));
        sdp.push_str("\r\na=mid:0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
        // The BUNDLE repeats the first candidate under the second m-line: counted once.
        sdp.push_str("a=candidate:0 1 udp 2130706431 198.51.100.0 5000 typ host\r\na=mid:1\r\n");
        let mut counter = RemoteCandidates::default();
        let (out, dropped) = filter_sdp(&sdp, &mut counter, false, 32);
        assert_eq!(out.matches("a=candidate:").count(), 33);
        assert!(out.contains("a=mid:1\r\n") && out.starts_with("v=0\r\n"));
        assert_eq!(describe(&dropped), "8 over the limit, 1 loopback");
        // The repeat of a dropped one is dropped too.
        let again = "a=candidate:39 1 udp 2130706431 198.51.100.39 5000 typ host\r\n";
        let (out, _) = filter_sdp(
            &format!("{sdp}{again}"),
            &mut RemoteCandidates::default(),
            false,
            32,
        );
        assert_eq!(out.matches("a=candidate:").count(), 33);
        // A trickled candidate after that is over the limit too.
        assert_eq!(
            counter.admit(&c("198.51.100.200"), false, 32),
            Err(Dropped::OverLimit)
        );
    }
}
