//! The WebRTC connection to one member, behind a small trait of our own.
//!
//! The rest of the plugin sees only [`VoicePeer`] (answer an offer, add a late candidate,
//! close) and the [`PeerEvent`]s it sends: every RTP packet with the member it belongs to,
//! its sequence number, timestamp, payload and arrival time, and connection state changes.
//! Which WebRTC stack sits behind it is decided in docs/decisions/0003-webrtc-stack.md;
//! [`webrtc_rs`] is the implementation on the `webrtc` crate (0.21, sans-IO `rtc` core).

pub mod candidates;
pub mod sdp;
pub mod webrtc_rs;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whose audio a connection carries (the PSN account id named by the signalling message).
pub type MemberId = Arc<str>;

/// One received RTP packet.
#[derive(Debug, Clone)]
pub struct RtpEvent {
    pub member: MemberId,
    pub ssrc: u32,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: bytes::Bytes,
    /// When the packet was handed to us (monotonic).
    pub arrival: Instant,
}

impl RtpEvent {
    /// The packet as the voice pipeline takes it, with its arrival on a clock that starts at
    /// `origin` (the party playout clock's zero).
    pub fn as_rtp_in(&self, origin: Instant) -> crate::voice::rtp::RtpIn<'_> {
        crate::voice::rtp::RtpIn {
            payload_type: self.payload_type,
            seq: self.seq,
            timestamp: self.timestamp,
            marker: self.marker,
            payload: &self.payload,
            arrival_ns: u64::try_from(self.arrival.saturating_duration_since(origin).as_nanos())
                .unwrap_or(u64::MAX),
        }
    }
}

/// Connection progress, as far as the plugin cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// What a peer reports through its events channel: state changes, and the packets of tracks
/// no [`PacketSink`] takes (yet).
#[derive(Debug, Clone)]
pub enum PeerEvent {
    Rtp(RtpEvent),
    State { member: MemberId, state: PeerState },
}

/// Where a track's packets go straight from the task that reads them, with no hop through the
/// events channel and the party follower's loop (a member's packet ring, `party::feed`).
pub trait PacketSink: Send + Sync {
    /// Takes the packet; `false` when nobody takes this track's packets (yet): the packet then
    /// goes to the events channel as [`PeerEvent::Rtp`] and the receiver decides. Never waits
    /// on anything but a short lock, never allocates.
    fn deliver(&self, packet: &RtpEvent) -> bool;
}

/// The sinks of one connection's tracks, asked once per track when it starts.
pub trait TrackSinks: Send + Sync {
    /// The sink of the track whose packets are named `track` (the member, or
    /// `<member>:<stream id>` on a connection that tags its streams).
    fn sink_for(&self, track: &str) -> Arc<dyn PacketSink>;
}

/// How a peer gathers its candidates and which of the member's it uses
/// (docs/network.md; made from the configuration by `crate::voice::net`).
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Local UDP addresses for host candidates: `0.0.0.0:0` (every interface) in the plugin,
    /// `127.0.0.1:0` in loopback tests (`PSN_VOICE_BIND`).
    pub udp_addrs: Vec<String>,
    /// STUN servers (`stun:host:port`) for server-reflexive candidates; none in tests.
    pub stun_servers: Vec<String>,
    /// How long to wait for candidate gathering before answering with what is there. PSN
    /// carries complete SDPs, so this bounds how late an answer goes out.
    pub gather_timeout: Duration,
    /// Whether a member's loopback candidates are used (only when we bind loopback ourselves:
    /// the tests against psn-sim). Never link-local, multicast or mDNS names.
    pub allow_loopback: bool,
    /// At most this many of a member's candidates are used; the rest are logged as dropped.
    pub max_remote_candidates: usize,
}

/// Enough for every interface and family a console has, srflx and relay included.
pub const MAX_REMOTE_CANDIDATES: usize = 32;

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            udp_addrs: vec!["0.0.0.0:0".into()],
            stun_servers: vec![],
            gather_timeout: Duration::from_secs(1),
            allow_loopback: false,
            max_remote_candidates: MAX_REMOTE_CANDIDATES,
        }
    }
}

impl PeerOptions {
    /// Loopback only (tests against psn-sim, other local peers): binds 127.0.0.1, no STUN,
    /// loopback candidates allowed.
    pub fn loopback() -> Self {
        Self {
            udp_addrs: vec!["127.0.0.1:0".into()],
            allow_loopback: true,
            ..Self::default()
        }
    }
}

/// Why a peer operation failed (the stack's message, for the log and the protocol trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerError(pub String);

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "voice peer: {}", self.0)
    }
}

impl std::error::Error for PeerError {}

/// One member's voice connection.
pub trait VoicePeer: Send + Sync {
    /// Take the member's offer (a complete SDP, candidates inline as PSN sends them) and
    /// return our answer, complete with our gathered candidates.
    fn answer(&self, offer_sdp: &str) -> impl Future<Output = Result<String, PeerError>> + Send;

    /// Start a connection from our side: a complete offer (receive-only audio BUNDLEd with a
    /// data channel, Opus at 48 and 16 kHz, candidates gathered). Replaces any earlier one.
    fn offer(&self) -> impl Future<Output = Result<String, PeerError>> + Send;

    /// The member's answer to our last offer; returns what it negotiated (the Opus clock
    /// and payload type the member will send).
    fn accept_answer(
        &self,
        answer_sdp: &str,
    ) -> impl Future<Output = Result<sdp::AudioParams, PeerError>> + Send;

    /// What the last answered offer negotiated (`None` before one, or after our own offer).
    fn negotiated(&self) -> impl Future<Output = Option<sdp::AudioParams>> + Send;

    /// A candidate that arrived after the offer (`a=candidate:` line or its value).
    fn add_remote_candidate(
        &self,
        candidate: &str,
    ) -> impl Future<Output = Result<(), PeerError>> + Send;

    /// Close the connection; no events follow except a final `Closed`.
    fn close(&self) -> impl Future<Output = ()> + Send;
}
