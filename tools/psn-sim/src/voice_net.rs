//! Where the simulator's media lives: the voice members' and the rtcBridge's sockets, and the
//! STUN servers the members gather server-reflexive candidates from.
//!
//! By default everything is on 127.0.0.1 and the members' connections cross the fault relay
//! (src/relay.rs). The NAT tests (tools/netlab.sh, docs/network.md) run the `psn-sim` binary in
//! a network namespace behind a NAT instead; there they set, in the environment:
//! - `PSN_SIM_MEMBER_BIND`: the address the members' sockets bind (their private address);
//! - `PSN_SIM_BRIDGE_BIND`: the address the rtcBridge's sockets bind (a public one);
//! - `PSN_SIM_STUN_SERVERS`: comma-separated `stun:host:port`, as the plugin's `PSN_STUN_SERVERS`.
//!
//! Off loopback the members send their real candidates (host and server-reflexive) and the fault
//! relay is not used: the namespaces' routers are the network.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceNet {
    pub member_bind: IpAddr,
    pub bridge_bind: IpAddr,
    pub stun_servers: Vec<String>,
}

impl Default for VoiceNet {
    fn default() -> Self {
        VoiceNet {
            member_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bridge_bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            stun_servers: vec![],
        }
    }
}

impl VoiceNet {
    /// From a lookup of the `PSN_SIM_*` variables (a bad address is an error, not a guess).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut net = VoiceNet::default();
        let addr = |key: &str| -> Result<Option<IpAddr>, String> {
            match get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
            {
                None => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{key}: {v:?} is not an IP address")),
            }
        };
        if let Some(a) = addr("PSN_SIM_MEMBER_BIND")? {
            net.member_bind = a;
        }
        if let Some(a) = addr("PSN_SIM_BRIDGE_BIND")? {
            net.bridge_bind = a;
        }
        if let Some(list) = get("PSN_SIM_STUN_SERVERS") {
            net.stun_servers = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        Ok(net)
    }

    /// The members are on loopback: candidates are the 127.0.0.1 host ones, through the relay.
    pub fn members_on_loopback(&self) -> bool {
        self.member_bind.is_loopback()
    }

    pub fn member_udp_addrs(&self) -> Vec<String> {
        vec![std::net::SocketAddr::new(self.member_bind, 0).to_string()]
    }

    pub fn bridge_udp_addrs(&self) -> Vec<String> {
        vec![std::net::SocketAddr::new(self.bridge_bind, 0).to_string()]
    }

    /// The ICE servers for a member's connection (none on loopback).
    pub fn ice_servers(&self) -> Vec<webrtc::peer_connection::RTCIceServer> {
        if self.stun_servers.is_empty() || self.members_on_loopback() {
            return vec![];
        }
        vec![webrtc::peer_connection::RTCIceServer {
            urls: self.stun_servers.clone(),
            ..Default::default()
        }]
    }

    /// Whether an SDP candidate line is one a member sends: on loopback its 127.0.0.1 host
    /// candidates (as before), on a real network every UDP candidate it gathered.
    pub fn keeps_candidate(&self, line: &str) -> bool {
        if !line.starts_with("a=candidate:") {
            return false;
        }
        if self.members_on_loopback() {
            return line.contains(" 127.0.0.1 ");
        }
        line.split(' ')
            .nth(2)
            .is_some_and(|t| t.eq_ignore_ascii_case("udp"))
    }
}

static NET: OnceLock<VoiceNet> = OnceLock::new();

/// The process's media placement: set once by the binary ([`set`]), else the loopback default.
pub fn get() -> &'static VoiceNet {
    NET.get_or_init(VoiceNet::default)
}

/// Sets the placement (before the first member is made); `false` if it was already fixed.
pub fn set(net: VoiceNet) -> bool {
    NET.set(net).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_by_default_and_real_addresses_from_the_environment() {
        let net = VoiceNet::from_lookup(|_| None).unwrap();
        assert!(net.members_on_loopback());
        assert!(net.ice_servers().is_empty());
        assert!(net.keeps_candidate("a=candidate:1 1 udp 2130706431 127.0.0.1 4000 typ host"));
        assert!(!net.keeps_candidate("a=candidate:1 1 udp 2130706431 10.0.2.2 4000 typ host"));
        let net = VoiceNet::from_lookup(|k| match k {
            "PSN_SIM_MEMBER_BIND" => Some("10.0.2.2".into()),
            "PSN_SIM_STUN_SERVERS" => Some("stun:198.51.100.2:3478, ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(net.member_udp_addrs(), vec!["10.0.2.2:0".to_string()]);
        assert_eq!(net.ice_servers()[0].urls, vec!["stun:198.51.100.2:3478"]);
        assert!(net.keeps_candidate(
            "a=candidate:2 1 udp 1694498815 203.0.113.2 5000 typ srflx raddr 10.0.2.2 rport 4000"
        ));
        assert!(!net.keeps_candidate("a=candidate:3 1 tcp 1 10.0.2.2 9 typ host"));
        assert!(
            VoiceNet::from_lookup(|k| (k == "PSN_SIM_BRIDGE_BIND").then(|| "nope".into())).is_err()
        );
    }
}
