//! "Test network": our NAT type in the words PlayStation owners know from their console's own
//! network test (docs/network.md).
//!
//! One UDP socket (bound where voice binds) asks two STUN servers for its public address:
//! - the address is our own: no NAT, **type 1**;
//! - both servers saw the same address and port: one mapping for every destination, **type 2**
//!   (members behind ordinary routers can reach us through it);
//! - they saw different ports: a new mapping per destination, **type 3** (direct voice is
//!   unlikely; the PSN relay carries it).
//!
//! The button only starts the test on the runtime and returns; the result is kept here for the
//! next time the dialog is drawn.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::UdpSocket;

/// What the last test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatVerdict {
    /// Never run.
    Idle,
    Running,
    /// No STUN server is configured.
    NoServers,
    /// None of these answered.
    NoAnswer(Vec<String>),
    /// Only one server answered: type 2 or 3, cannot tell.
    OneServer {
        server: String,
        mapped: SocketAddr,
    },
    Type1 {
        mapped: SocketAddr,
    },
    Type2 {
        mapped: SocketAddr,
    },
    Type3 {
        first: SocketAddr,
        second: SocketAddr,
    },
}

static LAST: Mutex<NatVerdict> = Mutex::new(NatVerdict::Idle);

/// The last verdict (for the dialog).
pub fn last() -> NatVerdict {
    LAST.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// How long one server gets (requests are repeated every [`RETRANSMIT`] within it).
const PER_SERVER: Duration = Duration::from_millis(1500);
const RETRANSMIT: Duration = Duration::from_millis(250);

/// Starts the test on `runtime` unless one runs; `done` is called when it ends (to redraw).
/// The configuration (`.env` in `config_dir`, the environment, the Advanced field) is read
/// there too, not on the caller's (OBS's UI) thread.
pub fn start(
    runtime: &tokio::runtime::Handle,
    config_dir: Option<std::path::PathBuf>,
    done: impl FnOnce() + Send + 'static,
) {
    {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if *last == NatVerdict::Running {
            return;
        }
        *last = NatVerdict::Running;
    }
    runtime.spawn(async move {
        let config =
            crate::psn::config::PsnConfig::from_env(config_dir.as_deref()).unwrap_or_default();
        let servers = crate::voice::net::stun_servers(&config);
        let bind = crate::voice::net::bind_address(&config);
        let verdict = run(&servers, bind).await;
        log::info!("network test: {verdict:?}");
        *LAST.lock().unwrap_or_else(|e| e.into_inner()) = verdict;
        done();
    });
}

/// The test itself: the first two servers of the list.
pub async fn run(servers: &[String], bind: IpAddr) -> NatVerdict {
    let servers: Vec<&String> = servers.iter().take(2).collect();
    if servers.is_empty() {
        return NatVerdict::NoServers;
    }
    let Ok(socket) = UdpSocket::bind(SocketAddr::new(bind, 0)).await else {
        return NatVerdict::NoAnswer(servers.into_iter().cloned().collect());
    };
    let mut answers: Vec<(String, SocketAddr, IpAddr)> = Vec::new();
    for server in &servers {
        if let Some((mapped, own)) = ask(&socket, server).await {
            answers.push(((*server).clone(), mapped, own));
        }
    }
    match answers.as_slice() {
        [] => NatVerdict::NoAnswer(servers.into_iter().cloned().collect()),
        [(_, mapped, own), ..] if mapped.ip() == *own => NatVerdict::Type1 { mapped: *mapped },
        [(server, mapped, _)] => NatVerdict::OneServer {
            server: server.clone(),
            mapped: *mapped,
        },
        [(_, first, _), (_, second, _), ..] if first == second => {
            NatVerdict::Type2 { mapped: *first }
        }
        [(_, first, _), (_, second, _), ..] => NatVerdict::Type3 {
            first: *first,
            second: *second,
        },
    }
}

/// Our mapped address as `server` sees it, and our own address toward it.
async fn ask(socket: &UdpSocket, server: &str) -> Option<(SocketAddr, IpAddr)> {
    let host_port = server.strip_prefix("stun:").unwrap_or(server);
    let target = tokio::time::timeout(PER_SERVER, tokio::net::lookup_host(host_port))
        .await
        .ok()?
        .ok()?
        .find(|a| a.is_ipv4() == socket.local_addr().map(|l| l.is_ipv4()).unwrap_or(true))?;
    let own = own_address_toward(target).await?;
    let id: [u8; 12] = rand::random();
    let request = binding_request(&id);
    let mut buf = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + PER_SERVER;
    while tokio::time::Instant::now() < deadline {
        socket.send_to(&request, target).await.ok()?;
        let wait = RETRANSMIT.min(deadline - tokio::time::Instant::now());
        if let Ok(Ok((n, from))) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            if from == target {
                if let Some(mapped) = mapped_address(&buf[..n], &id) {
                    return Some((mapped, own));
                }
            }
        }
    }
    None
}

/// The local address the kernel picks to reach `target` (no packet is sent: a UDP "connect"
/// only chooses the route).
async fn own_address_toward(target: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let probe = UdpSocket::bind(any).await.ok()?;
    probe.connect(target).await.ok()?;
    Some(probe.local_addr().ok()?.ip())
}

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// A STUN Binding request (RFC 8489 section 5): header only, no attributes.
pub fn binding_request(id: &[u8; 12]) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    m[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m[8..20].copy_from_slice(id);
    m
}

/// The (XOR-)MAPPED-ADDRESS of a Binding success response to our request `id`.
pub fn mapped_address(msg: &[u8], id: &[u8; 12]) -> Option<SocketAddr> {
    if msg.len() < 20
        || u16::from_be_bytes([msg[0], msg[1]]) != BINDING_SUCCESS
        || msg[4..8] != MAGIC_COOKIE.to_be_bytes()
        || &msg[8..20] != id
    {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    let body = msg.get(20..20 + len)?;
    let mut plain = None;
    let mut i = 0;
    while i + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[i], body[i + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[i + 2], body[i + 3]]));
        let value = body.get(i + 4..i + 4 + alen)?;
        match kind {
            ATTR_XOR_MAPPED_ADDRESS => return address(value, Some(id)),
            ATTR_MAPPED_ADDRESS => plain = address(value, None),
            _ => {}
        }
        i += 4 + alen.div_ceil(4) * 4;
    }
    plain
}

/// An address attribute's value; XORed with the cookie (and the id for IPv6) when `xor`.
fn address(value: &[u8], xor: Option<&[u8; 12]>) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let mut port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]);
    let mut key = [0u8; 16];
    key[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    if let Some(id) = xor {
        port ^= (MAGIC_COOKIE >> 16) as u16;
        key[4..].copy_from_slice(id);
    }
    let xored = |bytes: &[u8]| -> Vec<u8> {
        bytes
            .iter()
            .zip(key.iter())
            .map(|(b, k)| if xor.is_some() { b ^ k } else { *b })
            .collect()
    };
    let ip: IpAddr = match family {
        0x01 => {
            let b: [u8; 4] = xored(value.get(4..8)?).try_into().ok()?;
            IpAddr::from(b)
        }
        0x02 => {
            let b: [u8; 16] = xored(value.get(4..20)?).try_into().ok()?;
            IpAddr::from(b)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(id: &[u8; 12], attr: u16, value: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
        m.extend_from_slice(&((4 + value.len()) as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(id);
        m.extend_from_slice(&attr.to_be_bytes());
        m.extend_from_slice(&(value.len() as u16).to_be_bytes());
        m.extend_from_slice(value);
        m
    }

    #[test]
    fn reads_the_xor_mapped_and_the_plain_mapped_address() {
        let id = [7u8; 12];
        // 203.0.113.1:37763, XORed with the cookie.
        let port = 37763u16 ^ 0x2112;
        let ip = [203 ^ 0x21, 0x12, 113 ^ 0xA4, 1 ^ 0x42]; // 0 ^ 0x12 = 0x12
        let mut v = vec![0, 1];
        v.extend_from_slice(&port.to_be_bytes());
        v.extend_from_slice(&ip);
        let msg = response(&id, ATTR_XOR_MAPPED_ADDRESS, &v);
        assert_eq!(
            mapped_address(&msg, &id),
            Some("203.0.113.1:37763".parse().unwrap())
        );
        assert_eq!(
            mapped_address(&msg, &[8u8; 12]),
            None,
            "another request's answer"
        );
        let plain = response(
            &id,
            ATTR_MAPPED_ADDRESS,
            &[0, 1, 0x13, 0x88, 198, 51, 100, 7],
        );
        assert_eq!(
            mapped_address(&plain, &id),
            Some("198.51.100.7:5000".parse().unwrap())
        );
        assert_eq!(mapped_address(&msg[..23], &id), None, "cut short");
        let req = binding_request(&id);
        assert_eq!(&req[..4], &[0, 1, 0, 0]);
    }

    /// A STUN server on loopback that answers with a fixed mapping per server.
    async fn fake_server(mapped: SocketAddr) -> String {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                if n < 20 {
                    continue;
                }
                let id: [u8; 12] = buf[8..20].try_into().unwrap();
                let mapped = if mapped.port() == 0 { from } else { mapped };
                let IpAddr::V4(v4) = mapped.ip() else {
                    continue;
                };
                let mut v = vec![0, 1];
                v.extend_from_slice(&(mapped.port() ^ 0x2112).to_be_bytes());
                let o = v4.octets();
                v.extend_from_slice(&[o[0] ^ 0x21, o[1] ^ 0x12, o[2] ^ 0xA4, o[3] ^ 0x42]);
                let _ = s
                    .send_to(&response(&id, ATTR_XOR_MAPPED_ADDRESS, &v), from)
                    .await;
            }
        });
        format!("stun:{addr}")
    }

    #[tokio::test]
    async fn names_the_nat_type_from_two_servers() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        // The mapping is our own address: no NAT.
        let own = fake_server("0.0.0.0:0".parse().unwrap()).await;
        assert!(matches!(
            run(std::slice::from_ref(&own), lo).await,
            NatVerdict::Type1 { .. }
        ));
        let a = fake_server("203.0.113.1:4000".parse().unwrap()).await;
        let same = fake_server("203.0.113.1:4000".parse().unwrap()).await;
        let other = fake_server("203.0.113.1:4001".parse().unwrap()).await;
        assert!(matches!(
            run(&[a.clone(), same], lo).await,
            NatVerdict::Type2 { .. }
        ));
        assert!(matches!(
            run(&[a.clone(), other], lo).await,
            NatVerdict::Type3 { .. }
        ));
        assert!(matches!(run(&[a], lo).await, NatVerdict::OneServer { .. }));
        assert_eq!(run(&[], lo).await, NatVerdict::NoServers);
        // Nobody listens there (a port just closed).
        let closed = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let silent = format!("stun:{closed}");
        assert_eq!(
            run(std::slice::from_ref(&silent), lo).await,
            NatVerdict::NoAnswer(vec![silent])
        );
    }
}
