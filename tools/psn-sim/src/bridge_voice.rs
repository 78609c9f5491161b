//! The rtcBridge's media (PROTOCOL.md section 6 "rtcBridge relay", section 7): a real WebRTC
//! peer per bridge peer that sends the party's voices down to the user.
//!
//! Whether a real bridge ever sends audio down is unknown [U]; this one does, so the plugin's
//! bridge path can be tested. When the plugin adds a peer to a bridge that is linked to a party,
//! the offer in the 201 is a live connection's SDP: one `sendrecv` audio m-line per stream plus
//! the data channel, BUNDLEd, Opus `opus/16000/2` (the requested `samplingRates: [16000]`),
//! candidates inline. What the streams carry is [`BridgeAudio`]:
//! - `PerMember` (default): one stream per voice member, its `a=msid` stream id = the member's
//!   account id [I: our naming, so the plugin can map it to the member];
//! - `Mix`: one stream, stream id `-` (names nobody), the sum of the members' voices.
//!
//! The user's answer (`POST …/answer`) is applied to that connection; sending starts once it is
//! connected. Deleting the peer or the bridge closes it. A bridge not linked to a party with
//! voice members offers the recorded `recvonly` shape with no connection behind it, as before.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
    RTCSessionDescription, Registry,
};

use crate::Inner;

/// The bridge's Opus payload type (as in the recorded bridge offer's shape).
pub const BRIDGE_OPUS_PT: u8 = 111;

/// What a bridge sends down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BridgeAudio {
    /// One stream per voice member, named by account id in `a=msid`.
    #[default]
    PerMember,
    /// One unnamed stream: the sum of the members' voices.
    Mix,
}

/// A bridge peer's media, as `GET /_sim/bridges` and [`crate::SimHandle::bridge_status`] show it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BridgeStatus {
    pub bridge_id: String,
    pub peer_id: String,
    /// offered, connecting, connected, closed, failed
    pub state: String,
    /// The streams' msid stream ids (account ids, or `-` for the mix).
    pub streams: Vec<String>,
    pub answers_received: u32,
}

/// A live bridge peer.
pub(crate) struct BridgeMedia {
    pc: Arc<dyn PeerConnection>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl BridgeMedia {
    async fn close(self) {
        for s in self.senders {
            s.abort();
        }
        let _ = self.pc.close().await;
    }
}

struct Handler {
    gathered: Arc<Notify>,
    connected: watch::Sender<bool>,
    w: Weak<Inner>,
    peer_id: String,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let s = match state {
            RTCPeerConnectionState::Connected => {
                let _ = self.connected.send(true);
                "connected"
            }
            RTCPeerConnectionState::Connecting => "connecting",
            RTCPeerConnectionState::Failed => "failed",
            RTCPeerConnectionState::Closed => "closed",
            _ => return,
        };
        if let Some(inner) = self.w.upgrade() {
            if let Some(b) = inner.lock().bridge_status.get_mut(&self.peer_id) {
                b.state = s.into();
            }
        }
    }
}

fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn opus16() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".into(),
        clock_rate: 16_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;stereo=0;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

/// One voice the bridge carries: account id, tone.
type Voice = (String, f64);

/// The voices of the party `bridge_id` is linked to, or `None` if it is linked to none.
fn party_voices(inner: &Inner, bridge_id: &str) -> Option<Vec<Voice>> {
    let st = inner.lock();
    let party = st
        .parties
        .values()
        .find(|p| p.bridges.iter().any(|b| b == bridge_id))?;
    Some(
        party
            .members
            .iter()
            .filter_map(|m| {
                st.voice_status
                    .get(&m.account_id)
                    .map(|v| (m.account_id.clone(), v.tone_hz))
            })
            .collect(),
    )
}

/// A live offer for a new bridge peer (`addPeer`, `reoffer`). `None`: the bridge is not linked
/// to a party with voice members, the recorded static offer stands.
pub(crate) async fn offer(
    inner: &Arc<Inner>,
    bridge_id: &str,
    peer_id: &str,
) -> Option<Result<String, String>> {
    let voices = party_voices(inner, bridge_id).filter(|v| !v.is_empty())?;
    Some(live_offer(inner, bridge_id, peer_id, voices).await)
}

async fn live_offer(
    inner: &Arc<Inner>,
    bridge_id: &str,
    peer_id: &str,
    voices: Vec<Voice>,
) -> Result<String, String> {
    close(inner, peer_id).await;
    let mode = inner.lock().bridge_audio;
    let mut me = MediaEngine::default();
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus16(),
            payload_type: BRIDGE_OPUS_PT,
        },
        RtpCodecKind::Audio,
    )
    .map_err(e2s)?;
    let registry = register_default_interceptors(Registry::new(), &mut me).map_err(e2s)?;
    let gathered = Arc::new(Notify::new());
    let (connected_tx, connected) = watch::channel(false);
    let pc: Arc<dyn PeerConnection> = Arc::new(
        PeerConnectionBuilder::new()
            .with_media_engine(me)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                gathered: gathered.clone(),
                connected: connected_tx,
                w: Arc::downgrade(inner),
                peer_id: peer_id.to_owned(),
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
            .build()
            .await
            .map_err(e2s)?,
    );
    // (stream id, the voices it carries)
    let streams: Vec<(String, Vec<Voice>)> = match mode {
        BridgeAudio::PerMember => voices
            .iter()
            .map(|v| (v.0.clone(), vec![v.clone()]))
            .collect(),
        BridgeAudio::Mix if voices.is_empty() => vec![],
        BridgeAudio::Mix => vec![("-".to_owned(), voices.clone())],
    };
    let mut tracks = Vec::new();
    for (i, (stream, carried)) in streams.iter().enumerate() {
        let ssrc = 0x4252_0000 | (i as u32 + 1);
        let uuid = uuid::Uuid::new_v4().to_string();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            stream.clone(),
            format!("{uuid}_1_CELT/40"),
            "bridge-voice".into(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus16(),
                ..Default::default()
            }],
        )));
        pc.add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(e2s)?;
        tracks.push((track, ssrc, carried.clone()));
    }
    pc.create_data_channel("psn", None).await.map_err(e2s)?;
    let offer = pc.create_offer(None).await.map_err(e2s)?;
    pc.set_local_description(offer).await.map_err(e2s)?;
    let _ = tokio::time::timeout(Duration::from_secs(3), gathered.notified()).await;
    let sdp = pc
        .local_description()
        .await
        .ok_or("no local description")?
        .sdp;
    let senders = tracks
        .into_iter()
        .map(|(track, ssrc, carried)| {
            let w = Arc::downgrade(inner);
            let mut connected = connected.clone();
            tokio::spawn(async move {
                let wait = connected.wait_for(|c| *c);
                if !matches!(
                    tokio::time::timeout(Duration::from_secs(30), wait).await,
                    Ok(Ok(_))
                ) {
                    return;
                }
                let account = carried[0].0.clone();
                let tones = carried.iter().map(|v| v.1).collect();
                let spec = crate::voice::VoiceSpec {
                    clock_rate: 16_000,
                    ..Default::default()
                };
                crate::voice::send_media(
                    w,
                    account,
                    spec,
                    tones,
                    u64::from(ssrc),
                    (ssrc, BRIDGE_OPUS_PT),
                    track,
                )
                .await;
            })
        })
        .collect();
    let mut st = inner.lock();
    st.bridge_status.insert(
        peer_id.to_owned(),
        BridgeStatus {
            bridge_id: bridge_id.to_owned(),
            peer_id: peer_id.to_owned(),
            state: "offered".into(),
            streams: streams.iter().map(|s| s.0.clone()).collect(),
            answers_received: 0,
        },
    );
    st.bridge_media
        .insert(peer_id.to_owned(), BridgeMedia { pc, senders });
    Ok(sdp)
}

/// The user's answer for a live bridge peer. `Ok(false)`: no live peer (static offer).
pub(crate) async fn answer(inner: &Arc<Inner>, peer_id: &str, sdp: &str) -> Result<bool, String> {
    let pc = inner.lock().bridge_media.get(peer_id).map(|m| m.pc.clone());
    let Some(pc) = pc else {
        return Ok(false);
    };
    if !sdp.contains("m=audio") {
        return Err("bridge answer has no m=audio".into());
    }
    let desc = RTCSessionDescription::answer(sdp.to_owned()).map_err(e2s)?;
    pc.set_remote_description(desc).await.map_err(e2s)?;
    if let Some(b) = inner.lock().bridge_status.get_mut(peer_id) {
        b.answers_received += 1;
        if b.state == "offered" {
            b.state = "connecting".into();
        }
    }
    Ok(true)
}

/// Closes a bridge peer's connection (deleted peer, re-offer).
pub(crate) async fn close(inner: &Arc<Inner>, peer_id: &str) {
    let media = inner.lock().bridge_media.remove(peer_id);
    if let Some(m) = media {
        m.close().await;
        if let Some(b) = inner.lock().bridge_status.get_mut(peer_id) {
            b.state = "closed".into();
        }
    }
}

/// Closes every peer of a deleted bridge.
pub(crate) async fn close_bridge(inner: &Arc<Inner>, bridge_id: &str) {
    let peers: Vec<String> = inner
        .lock()
        .bridge_status
        .values()
        .filter(|b| b.bridge_id == bridge_id)
        .map(|b| b.peer_id.clone())
        .collect();
    for p in peers {
        close(inner, &p).await;
    }
}

/// Status of every bridge peer with media, by peer id.
pub fn status(inner: &Inner) -> BTreeMap<String, BridgeStatus> {
    inner.lock().bridge_status.clone()
}
