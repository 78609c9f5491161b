//! The rtcBridge voice path (PROTOCOL.md section 6 "rtcBridge relay", section 7).
//!
//! Opened when the signalling machine ([`super::signalling`]) asks for it: peer-to-peer with a
//! member failed (`voice_path` = `"auto"`) or from the start (`"bridge"`). Create a bridge,
//! link it to the party, add our peer (the bridge's offer comes back), answer it with a
//! [`WebrtcPeer`] and send the answer. Our answer's audio is `recvonly`: we take whatever the
//! bridge sends down (its `sendrecv` or `sendonly` audio m-lines). Each track's packets arrive
//! named `rtc-bridge:<msid stream id>`; [`BridgeSide::route`] decides whose voice a stream is: a
//! roster member's account id is that member [I] (only while they are on the bridge, so a
//! voice is never heard twice), anything else is the pseudo-member "party (bridge)"
//! ([`BRIDGE_MEMBER`], `member` = `"bridge"` picks it), which the mix plays.
//!
//! A stream's first packet comes through the follower's loop, which decides its target and
//! routes the stream's [`TrackFeed`] to that ring; from then on the peer's reader writes the
//! stream's packets into it directly. After every control event the routes are checked
//! against the same rule ([`BridgeSide::check_routes`]), so a stream never feeds a target the
//! rule no longer gives it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::feed::{SharedSender, TrackFeed};
use super::pipeline::PlayoutControl;
use super::signalling::Signalling;
use crate::audio::playout::{MemberInfo, Silence};

use crate::psn::bridge::BridgeApi;
use crate::psn::client::PsnClient;
use crate::psn::model::Bridge;
use crate::psn::party_api::PartyApi;
use crate::voice::peer::sdp::{audio_params, AudioParams};
use crate::voice::peer::webrtc_rs::WebrtcPeer;
use crate::voice::peer::{PacketSink, PeerEvent, PeerOptions, RtpEvent, TrackSinks, VoicePeer};

/// The member id of the bridge's connection; its packets are `rtc-bridge:<stream id>`.
pub const BRIDGE_PEER: &str = "rtc-bridge";

/// The playout id of the pseudo-member that plays what the bridge sends without naming a
/// member (the `member` setting picks it as `"bridge"`, [`super::settings::BRIDGE_SELECTOR`]).
pub const BRIDGE_MEMBER: &str = "party-bridge";
pub use super::settings::BRIDGE_MEMBER_NAME;

/// The user's own account and whether they want their own console heard ("Include my own
/// console"): a bridge stream of that account follows the same rule.
#[derive(Debug, Clone, Copy)]
pub struct OwnAccount<'a> {
    pub account_id: &'a str,
    pub include: bool,
}

/// Where a bridge stream's packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeTarget<'a> {
    /// That member's (or the user's own console's) playout entry.
    Member(&'a str),
    /// The "party (bridge)" pseudo-member: a stream no member is named for.
    Party,
    /// Nowhere: the member is heard peer-to-peer, or it is the user's own account and they
    /// did not choose to include it.
    Dropped,
}

/// Decides a bridge stream's target from its id: `named` when signalling knows a member by it
/// (a console member whose voice we want), `on_bridge` when that member's voice comes over the
/// bridge. The user's own account is never mixed as "party (bridge)".
pub fn bridge_target<'a>(
    stream: &'a str,
    own: OwnAccount<'_>,
    named: bool,
    on_bridge: bool,
) -> BridgeTarget<'a> {
    let ours = stream == own.account_id;
    if ours && !own.include {
        return BridgeTarget::Dropped;
    }
    match (named, on_bridge) {
        (true, true) => BridgeTarget::Member(stream),
        (true, false) => BridgeTarget::Dropped, // their voice comes peer-to-peer
        (false, _) if ours => BridgeTarget::Member(stream),
        (false, _) => BridgeTarget::Party,
    }
}

/// The bridge connection's tracks by stream id, each with its route (shared with the peer's
/// track readers, which ask for their stream's feed once when the track starts).
#[derive(Default)]
pub struct BridgeTracks {
    by_stream: Mutex<HashMap<String, TrackFeed>>,
}

impl BridgeTracks {
    fn feed(&self, stream: &str) -> TrackFeed {
        let mut streams = self.by_stream.lock().unwrap_or_else(|e| e.into_inner());
        streams.entry(stream.to_owned()).or_default().clone()
    }

    /// The routed streams, by id.
    fn routed(&self) -> Vec<(String, TrackFeed)> {
        let streams = self.by_stream.lock().unwrap_or_else(|e| e.into_inner());
        streams
            .iter()
            .filter(|(_, t)| t.is_routed())
            .map(|(s, t)| (s.clone(), t.clone()))
            .collect()
    }

    /// No stream feeds `sender` any more.
    fn unroute(&self, sender: &SharedSender) {
        let streams = self.by_stream.lock().unwrap_or_else(|e| e.into_inner());
        for track in streams.values().filter(|t| t.feeds(sender)) {
            track.route(None);
        }
    }

    fn clear(&self) {
        let mut streams = self.by_stream.lock().unwrap_or_else(|e| e.into_inner());
        for (_, track) in streams.drain() {
            track.route(None);
        }
    }
}

impl TrackSinks for BridgeTracks {
    fn sink_for(&self, track: &str) -> Arc<dyn PacketSink> {
        let stream = track
            .strip_prefix(BRIDGE_PEER)
            .and_then(|s| s.strip_prefix(':'))
            .unwrap_or(track);
        Arc::new(self.feed(stream))
    }
}

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
        options: PeerOptions,
        peer_tx: mpsc::Sender<PeerEvent>,
        tracks: Arc<BridgeTracks>,
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
            let webrtc = Arc::new(
                WebrtcPeer::new(BRIDGE_PEER.into(), options, peer_tx)
                    .tagging_streams()
                    .with_sinks(tracks),
            );
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

/// The bridge as one party's voice links hold it: being opened (in a task of its own: opening
/// takes several PSN calls, and the loop that forwards every member's packets must not wait on
/// them), open, and the playout streams it feeds, by playout id (account id or
/// [`BRIDGE_MEMBER`]).
#[derive(Default)]
pub struct BridgeSide {
    link: Option<BridgeLink>,
    opening: Option<JoinHandle<Result<BridgeLink, String>>>,
    feeds: HashMap<String, (SharedSender, MemberInfo)>,
    tracks: Arc<BridgeTracks>,
}

impl BridgeSide {
    /// Starts opening a bridge (the outcome comes from [`BridgeSide::opening_finished`]).
    pub fn start_opening(
        &mut self,
        client: Arc<PsnClient>,
        session_id: String,
        options: PeerOptions,
        peer_tx: mpsc::Sender<PeerEvent>,
    ) {
        log::info!("opening the rtcBridge");
        let tracks = self.tracks.clone();
        self.opening = Some(tokio::spawn(async move {
            BridgeLink::open(client, &session_id, options, peer_tx, tracks).await
        }));
    }

    /// The outcome of the opening, once it has finished (`None` while it runs or when none
    /// was started).
    pub async fn opening_finished(&mut self) -> Option<Result<(), String>> {
        let task = self.opening.take_if(|t| t.is_finished())?;
        let opened = task
            .await
            .unwrap_or_else(|e| Err(format!("the bridge task: {e}")));
        Some(opened.map(|bridge| {
            log::info!(
                "rtcBridge answered (Opus at {} Hz)",
                bridge.params.clock_rate
            );
            self.link = Some(bridge);
        }))
    }

    /// Closes the bridge (one being opened too, so it is deleted on PSN as well); its
    /// streams leave the playout, or go back to silence for members still in the party.
    pub async fn close(&mut self, playout: &dyn PlayoutControl) {
        if let Some(task) = self.opening.take() {
            // Let it finish (bounded) so the bridge it made is closed on PSN too.
            if let Ok(Ok(Ok(bridge))) = tokio::time::timeout(Duration::from_secs(2), task).await {
                bridge.close().await;
            }
        }
        self.tracks.clear();
        if let Some(bridge) = self.link.take() {
            bridge.close().await;
        }
        for (id, (_, info)) in self.feeds.drain() {
            if id == BRIDGE_MEMBER {
                playout.remove_member(&id);
            } else {
                playout.add_member(info, Box::new(Silence));
            }
        }
    }

    /// The member's voice no longer comes from the bridge (they left, or connected directly).
    pub fn forget(&mut self, account_id: &str) {
        if let Some((sender, _)) = self.feeds.remove(account_id) {
            self.tracks.unroute(&sender);
        }
    }

    /// Un-routes every stream whose target the rule no longer gives it (checked after each
    /// control event: the machine may have changed who is on the bridge, named, trusted); its
    /// next packet comes through the loop again and [`BridgeSide::route`] decides anew.
    pub fn check_routes(&mut self, signalling: &Signalling, own: OwnAccount<'_>) {
        for (stream, track) in self.tracks.routed() {
            let target = target_of(&stream, signalling, own);
            let still = target
                .and_then(|t| self.feeds.get(t))
                .is_some_and(|(sender, _)| track.feeds(sender));
            if !still {
                track.route(None);
            }
        }
    }

    /// A packet from the bridge, on the stream named `stream` (its msid stream id), that no
    /// route took: into the playout entry it belongs to, and the stream is routed there. The
    /// first packet for a target starts its pipeline with `start` (given the playout id and
    /// the bridge's Opus).
    pub fn route(
        &mut self,
        stream: &str,
        packet: &RtpEvent,
        signalling: &Signalling,
        own: OwnAccount<'_>,
        start: impl FnOnce(&str, &AudioParams) -> Option<(SharedSender, MemberInfo)>,
    ) {
        let Some(target) = target_of(stream, signalling, own) else {
            return;
        };
        if !self.feeds.contains_key(target) {
            let Some(link) = self.link.as_ref() else {
                return;
            };
            let Some(started) = start(target, &link.params) else {
                return;
            };
            self.feeds.insert(target.to_owned(), started);
        }
        if let Some((feed, _)) = self.feeds.get(target) {
            feed.lock().unwrap_or_else(|e| e.into_inner()).send(packet);
            // The packets after this one go straight from the peer's reader.
            self.tracks.feed(stream).route(Some(feed.clone()));
        }
    }
}

/// The playout id a bridge stream's packets go to, or `None` when they are not played.
fn target_of<'a>(stream: &'a str, signalling: &Signalling, own: OwnAccount<'_>) -> Option<&'a str> {
    if signalling.distrusted(stream) {
        return None; // a sender who wrote someone else's identity is not played
    }
    match bridge_target(
        stream,
        own,
        signalling.online_id(stream).is_some(),
        signalling.on_bridge(stream),
    ) {
        BridgeTarget::Member(id) => Some(id),
        BridgeTarget::Party => Some(BRIDGE_MEMBER),
        BridgeTarget::Dropped => None,
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;

    #[test]
    fn the_users_own_account_follows_include_my_own_console() {
        let off = OwnAccount {
            account_id: "me",
            include: false,
        };
        let on = OwnAccount {
            account_id: "me",
            include: true,
        };
        // Our own account: never "party (bridge)"; heard only when included.
        for (named, on_bridge) in [(false, false), (false, true), (true, true)] {
            assert_eq!(
                bridge_target("me", off, named, on_bridge),
                BridgeTarget::Dropped
            );
        }
        assert_eq!(
            bridge_target("me", on, false, false),
            BridgeTarget::Member("me")
        );
        assert_eq!(
            bridge_target("me", on, true, true),
            BridgeTarget::Member("me")
        );
        // Others: by name when on the bridge, dropped when heard p2p, else the party stream.
        assert_eq!(
            bridge_target("42", off, true, true),
            BridgeTarget::Member("42")
        );
        assert_eq!(bridge_target("42", off, true, false), BridgeTarget::Dropped);
        assert_eq!(bridge_target("-", off, false, false), BridgeTarget::Party);
    }
}
