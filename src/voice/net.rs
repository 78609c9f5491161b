//! Voice networking: where the voice sockets bind and which STUN servers tell us our public
//! address (docs/network.md).
//!
//! Every member sits behind their own home router, and so do we. Our host candidates name
//! addresses inside our LAN; a server-reflexive candidate (our router's public address and
//! port, as a STUN server saw it) is what lets two ordinary NATs meet. PSN carries complete
//! SDPs, so gathering is bounded ([`GATHER_TIMEOUT`]) and whatever was found goes out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::psn::config::{PsnConfig, DEFAULT_STUN_SERVERS};
use crate::voice::peer::PeerOptions;

/// How long an offer or answer waits for STUN: long enough for a server across an ocean
/// (a few hundred ms), short enough that the member hears back at once.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(1);

/// The Advanced field "STUN servers" (`stun_servers`), when the user filled it: it wins over
/// the environment and `.env`. One hub per module, so one value per process.
static STUN_SETTING: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Sets (non-empty, parsed) or clears (empty) the Advanced field's value; a value that does
/// not parse is logged and ignored. Used by connections made from then on.
pub fn set_stun_setting(value: &str) {
    let value = value.trim();
    let parsed = if value.is_empty() {
        None
    } else {
        match crate::psn::config::parse_stun_servers(value) {
            Ok(list) => Some(list),
            Err(e) => {
                log::warn!("{e}; using the environment's or the default STUN servers");
                None
            }
        }
    };
    *STUN_SETTING.lock().unwrap_or_else(|e| e.into_inner()) = parsed;
}

/// The STUN servers in effect: the Advanced field, else `PSN_STUN_SERVERS`, else the defaults.
pub fn stun_servers(config: &PsnConfig) -> Vec<String> {
    if let Some(list) = STUN_SETTING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        return list;
    }
    match &config.stun_servers {
        Some(list) => list.clone(),
        None => DEFAULT_STUN_SERVERS.iter().map(|s| s.to_string()).collect(),
    }
}

/// The address the voice sockets bind: `PSN_VOICE_BIND`, else every interface.
pub fn bind_address(config: &PsnConfig) -> IpAddr {
    config
        .voice_bind
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The peers' options from the configuration. Binding loopback means a test against a local
/// simulator: loopback candidates are then allowed and no STUN server is asked (none could
/// answer a loopback socket).
pub fn peer_options(config: &PsnConfig) -> PeerOptions {
    let bind = bind_address(config);
    let loopback = bind.is_loopback();
    PeerOptions {
        udp_addrs: vec![SocketAddr::new(bind, 0).to_string()],
        stun_servers: if loopback {
            vec![]
        } else {
            stun_servers(config)
        },
        gather_timeout: GATHER_TIMEOUT,
        allow_loopback: loopback,
        ..PeerOptions::default()
    }
}

/// What the last gathering found, for the member lines (why a connection is not direct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Gathering {
    /// No offer or answer made yet.
    Unknown = 0,
    /// No STUN server configured: host candidates only.
    NoStun = 1,
    /// STUN servers configured, none answered within [`GATHER_TIMEOUT`].
    StunFailed = 2,
    /// At least one server-reflexive candidate went out.
    PublicAddress = 3,
}

static LAST_GATHERING: AtomicU8 = AtomicU8::new(0);
/// "Every STUN server failed" is logged once per process, not per member.
static STUN_FAILURE_LOGGED: AtomicBool = AtomicBool::new(false);

/// Records what a finished gathering put into our SDP and logs once when STUN gave nothing.
pub fn note_gathering(stun_servers: &[String], local_sdp: &str) {
    let srflx = local_sdp
        .lines()
        .any(|l| l.starts_with("a=candidate:") && l.contains(" typ srflx"));
    let result = if srflx {
        Gathering::PublicAddress
    } else if stun_servers.is_empty() {
        Gathering::NoStun
    } else {
        if !STUN_FAILURE_LOGGED.swap(true, Ordering::Relaxed) {
            log::warn!(
                "no STUN server answered within {} ms ({}): voice offers only this machine's own \
                 addresses; members behind another NAT may connect only through PSN's relay",
                GATHER_TIMEOUT.as_millis(),
                stun_servers.join(", ")
            );
        }
        Gathering::StunFailed
    };
    if result == Gathering::PublicAddress {
        STUN_FAILURE_LOGGED.store(false, Ordering::Relaxed);
    }
    LAST_GATHERING.store(result as u8, Ordering::Relaxed);
}

/// What the last gathering found.
pub fn last_gathering() -> Gathering {
    match LAST_GATHERING.load(Ordering::Relaxed) {
        1 => Gathering::NoStun,
        2 => Gathering::StunFailed,
        3 => Gathering::PublicAddress,
        _ => Gathering::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_binds_allow_loopback_and_ask_no_stun() {
        let mut config = PsnConfig {
            voice_bind: Some(IpAddr::from([127, 0, 0, 1])),
            stun_servers: Some(vec!["stun:198.51.100.2:3478".into()]),
            ..PsnConfig::default()
        };
        let o = peer_options(&config);
        assert_eq!(o.udp_addrs, vec!["127.0.0.1:0"]);
        assert!(o.allow_loopback && o.stun_servers.is_empty());
        config.voice_bind = None;
        let o = peer_options(&config);
        assert_eq!(o.udp_addrs, vec!["0.0.0.0:0"]);
        assert!(!o.allow_loopback);
        assert_eq!(o.stun_servers, vec!["stun:198.51.100.2:3478"]);
        assert_eq!(o.gather_timeout, GATHER_TIMEOUT);
        config.stun_servers = None;
        assert_eq!(
            peer_options(&config).stun_servers.len(),
            DEFAULT_STUN_SERVERS.len()
        );
    }

    #[test]
    fn gathering_results() {
        note_gathering(&[], "a=candidate:1 1 udp 1 10.0.1.2 5000 typ host\r\n");
        assert_eq!(last_gathering(), Gathering::NoStun);
        let servers = vec!["stun:198.51.100.2:3478".to_string()];
        note_gathering(&servers, "a=candidate:1 1 udp 1 10.0.1.2 5000 typ host\r\n");
        assert_eq!(last_gathering(), Gathering::StunFailed);
        note_gathering(
            &servers,
            "a=candidate:2 1 udp 1 203.0.113.1 6000 typ srflx raddr 10.0.1.2 rport 5000\r\n",
        );
        assert_eq!(last_gathering(), Gathering::PublicAddress);
    }
}
