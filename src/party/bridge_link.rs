//! The rtcBridge voice path (PROTOCOL.md section 6 "rtcBridge relay", section 7).
//!
//! Opened by [`super::voice_links`] when peer-to-peer with a member fails (`voice_path` =
//! `"auto"`) or from the start (`"bridge"`): create a bridge, link it to the party, add our
//! peer (the bridge's offer comes back), answer it with a [`WebrtcPeer`] and send the answer.
//! Our answer's audio is `recvonly`: we take whatever the bridge sends down (its `sendrecv` or
//! `sendonly` audio m-lines). Each track's packets arrive named `bridge:<msid stream id>`;
//! which member a stream id names is decided by the links (a roster account id names that
//! member [I], anything else is the "party (bridge)" pseudo-member).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::psn::bridge::{Bridge, BridgeApi};
use crate::psn::client::PsnClient;
use crate::psn::session::PartyApi;
use crate::voice::peer::sdp::{audio_params, AudioParams};
use crate::voice::peer::webrtc_rs::WebrtcPeer;
use crate::voice::peer::{PeerEvent, PeerOptions, VoicePeer};

/// The member id of the bridge's connection; its packets are `bridge:<stream id>`.
pub const BRIDGE_PEER: &str = "bridge";

/// How long deleting the bridge may take when the party is over for us.
const DELETE_TIMEOUT: Duration = Duration::from_millis(250);

/// Our peer on a bridge linked to the party.
pub struct BridgeLink {
    api: BridgeApi,
    bridge: Bridge,
    /// Our peer on the bridge (deleted with the bridge).
    pub peer_id: String,
    pub peer: Arc<WebrtcPeer>,
    /// The Opus the bridge sends (its offer's payload type and clock).
    pub params: AudioParams,
}

impl BridgeLink {
    /// Create, link, add our peer, answer. The error text is for the log and the status.
    pub async fn open(
        client: Arc<PsnClient>,
        session_id: &str,
        udp_addrs: Vec<String>,
        peer_tx: mpsc::Sender<PeerEvent>,
    ) -> Result<BridgeLink, String> {
        let api = BridgeApi::new(client.clone());
        let bridge = api
            .create()
            .await
            .map_err(|e| format!("create bridge: {e}"))?;
        let opened = async {
            PartyApi::new(client)
                .link_bridge(session_id, &bridge)
                .await
                .map_err(|e| format!("link bridge: {e}"))?;
            let peer = api
                .add_peer(&bridge)
                .await
                .map_err(|e| format!("add bridge peer: {e}"))?;
            let params = audio_params(&peer.offer_sdp)
                .ok_or_else(|| "the bridge's offer has no Opus".to_owned())?;
            let options = PeerOptions {
                udp_addrs,
                ..PeerOptions::default()
            };
            let webrtc =
                Arc::new(WebrtcPeer::new(BRIDGE_PEER.into(), options, peer_tx).tagging_streams());
            let answer = match webrtc.answer(&peer.offer_sdp).await {
                Ok(answer) => answer,
                Err(e) => {
                    webrtc.close().await;
                    return Err(format!("answer the bridge: {e}"));
                }
            };
            if let Err(e) = api.answer(&bridge, &peer.peer_id, &answer).await {
                webrtc.close().await;
                return Err(format!("send the bridge answer: {e}"));
            }
            Ok((peer.peer_id, webrtc, params))
        };
        match opened.await {
            Ok((peer_id, peer, params)) => Ok(BridgeLink {
                api,
                bridge,
                peer_id,
                peer,
                params,
            }),
            Err(e) => {
                let _ = tokio::time::timeout(DELETE_TIMEOUT, api.delete(&bridge)).await;
                Err(e)
            }
        }
    }

    /// Closes our connection and deletes the bridge (with our peer on it), giving PSN at most
    /// [`DELETE_TIMEOUT`]: the party is over for us and the last source may be going.
    pub async fn close(self) {
        self.peer.close().await;
        let _ = tokio::time::timeout(DELETE_TIMEOUT, self.api.delete(&self.bridge)).await;
    }
}
