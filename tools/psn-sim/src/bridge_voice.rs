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
use std::sync::Arc;
use std::time::Duration;

use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

use crate::peer::{
    e2s, offer_with_datachannel, opus_codec, opus_track, stack_peer, state_name, Side,
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
    let codecs = vec![RTCRtpCodecParameters {
        rtp_codec: opus_codec(16_000),
        payload_type: BRIDGE_OPUS_PT,
    }];
    let (connected_tx, connected) = watch::channel(false);
    let (w, peer) = (Arc::downgrade(inner), peer_id.to_owned());
    let (pc, gathered) = stack_peer(Side::Bridge, codecs, move |state| {
        if state == RTCPeerConnectionState::Connected {
            let _ = connected_tx.send(true);
        }
        // A bridge peer's status has no "disconnected": it stays "connected" through a blip.
        let name = state_name(state).filter(|&n| n != "disconnected");
        if let (Some(name), Some(inner)) = (name, w.upgrade()) {
            if let Some(b) = inner.lock().bridge_status.get_mut(&peer) {
                b.state = name.into();
            }
        }
    })
    .await?;
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
        let track = opus_track(stream.clone(), &uuid, "bridge-voice", ssrc, 16_000);
        pc.add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(e2s)?;
        tracks.push((track, ssrc, carried.clone()));
    }
    let sdp = offer_with_datachannel(&pc, &gathered).await?;
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
