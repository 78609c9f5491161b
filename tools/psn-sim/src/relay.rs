//! The network between a voice member and the user. Every packet of a member's peer-to-peer
//! connection crosses a pair of loopback UDP sockets here: the user is told the member is at
//! `user_facing`, the member is told the user is at `member_facing`, and each side sees the
//! other's packets come from exactly the address it was told. That is what lets the simulator
//! take the network away (`SimHandle::set_network(false)`) the way a dead router does: every
//! packet vanishes, both ways, ICE consent included, and comes back when the network does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Packets the relays dropped while the network was down (all members together).
pub static DROPPED_WHILE_DOWN: AtomicU64 = AtomicU64::new(0);

pub(crate) struct Relay {
    /// Where the user's side sends to reach the member.
    pub user_facing: SocketAddr,
    /// Where the member sends to reach the user.
    pub member_facing: SocketAddr,
    /// The member's own socket, learned from its SDP.
    member: Arc<Mutex<Option<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Two fresh loopback sockets and the task that forwards between them while `network_up`.
    pub async fn bind(network_up: watch::Receiver<bool>) -> std::io::Result<Relay> {
        let user_side = UdpSocket::bind("127.0.0.1:0").await?;
        let member_side = UdpSocket::bind("127.0.0.1:0").await?;
        let member = Arc::new(Mutex::new(None));
        let relay = Relay {
            user_facing: user_side.local_addr()?,
            member_facing: member_side.local_addr()?,
            member: member.clone(),
            task: tokio::spawn(forward(user_side, member_side, member, network_up)),
        };
        Ok(relay)
    }

    pub fn set_member(&self, addr: SocketAddr) {
        *self.member.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    user_side: UdpSocket,
    member_side: UdpSocket,
    member: Arc<Mutex<Option<SocketAddr>>>,
    network_up: watch::Receiver<bool>,
) {
    // The user's address is learned from its first packet, as a NAT learns it.
    let mut user: Option<SocketAddr> = None;
    let mut from_user = vec![0u8; 2048];
    let mut from_member = vec![0u8; 2048];
    loop {
        tokio::select! {
            r = user_side.recv_from(&mut from_user) => {
                let Ok((n, src)) = r else { return };
                user = Some(src);
                if !*network_up.borrow() {
                    DROPPED_WHILE_DOWN.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let to = *member.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(to) = to {
                    let _ = member_side.send_to(&from_user[..n], to).await;
                }
            }
            r = member_side.recv_from(&mut from_member) => {
                let Ok((n, _)) = r else { return };
                if !*network_up.borrow() {
                    DROPPED_WHILE_DOWN.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(to) = user {
                    let _ = user_side.send_to(&from_member[..n], to).await;
                }
            }
        }
    }
}

/// The member's SDP as the user gets it: its 127.0.0.1 host candidate (the member's real
/// socket, remembered) now names the relay's user-facing port.
pub(crate) fn member_sdp_via(relay: &Relay, sdp: &str) -> String {
    rewrite_candidates(sdp, |addr| {
        if let Some(addr) = addr {
            relay.set_member(addr);
        }
        relay.user_facing
    })
}

/// The user's SDP as the member gets it: every UDP candidate names the relay's member-facing
/// socket.
pub(crate) fn user_sdp_via(relay: &Relay, sdp: &str) -> String {
    rewrite_candidates(sdp, |_| relay.member_facing)
}

/// `a=candidate:<foundation> <component> udp <priority> <address> <port> typ ...`: address and
/// port replaced by what `to` returns for the candidate's own address.
fn rewrite_candidates(sdp: &str, mut to: impl FnMut(Option<SocketAddr>) -> SocketAddr) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines() {
        let mut fields: Vec<String> = line.split(' ').map(str::to_owned).collect();
        if line.starts_with("a=candidate:")
            && fields.len() > 5
            && fields[2].eq_ignore_ascii_case("udp")
        {
            let own = format!("{}:{}", fields[4], fields[5]).parse().ok();
            let via = to(own);
            fields[4] = via.ip().to_string();
            fields[5] = via.port().to_string();
            out.push_str(&fields.join(" "));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_both_ways_and_drops_while_down() {
        let (up_tx, up_rx) = watch::channel(true);
        let relay = Relay::bind(up_rx).await.unwrap();
        let user = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let member = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sdp = format!(
            "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 {} typ host\r\n",
            member.local_addr().unwrap().port()
        );
        let told_user = member_sdp_via(&relay, &sdp);
        assert!(told_user.contains(&format!(" 127.0.0.1 {} typ host", relay.user_facing.port())));
        let user_sdp = "a=candidate:9 1 UDP 2130706431 192.0.2.7 5000 typ host\r\nm=audio 9\r\n";
        let told_member = user_sdp_via(&relay, user_sdp);
        assert!(told_member.contains(&format!(
            " 127.0.0.1 {} typ host",
            relay.member_facing.port()
        )));
        assert!(told_member.contains("m=audio 9"));

        let mut buf = [0u8; 64];
        user.send_to(b"ping", relay.user_facing).await.unwrap();
        let (n, src) = member.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], src), (&b"ping"[..], relay.member_facing));
        member.send_to(b"pong", relay.member_facing).await.unwrap();
        let (n, src) = user.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], src), (&b"pong"[..], relay.user_facing));

        up_tx.send_replace(false);
        let before = DROPPED_WHILE_DOWN.load(Ordering::Relaxed);
        user.send_to(b"lost", relay.user_facing).await.unwrap();
        member.send_to(b"lost", relay.member_facing).await.unwrap();
        let got = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            member.recv_from(&mut buf),
        )
        .await;
        assert!(got.is_err(), "a packet crossed a network that was down");
        assert!(DROPPED_WHILE_DOWN.load(Ordering::Relaxed) >= before + 2);

        up_tx.send_replace(true);
        user.send_to(b"back", relay.user_facing).await.unwrap();
        let (n, _) = member.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"back");
    }
}
