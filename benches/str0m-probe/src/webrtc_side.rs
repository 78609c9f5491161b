//! Side (a): the plugin's own receive peer, as the plugin runs it: one `WebrtcPeer` per member
//! (webrtc-rs 0.21, receive-only interceptors) on the plugin's one-worker runtime `psn-rt`
//! (`obs_psn_party::runtime`), each track's packets going straight into the member's ring
//! through its `TrackFeed` (decision 0011).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::rings::MemberFeed;
use crate::senders::Offer;
use obs_psn_party::runtime::RuntimeRef;
use obs_psn_party::voice::peer::webrtc_rs::WebrtcPeer;
use obs_psn_party::voice::peer::{PeerEvent, PeerOptions, VoicePeer};

/// The threads of this side: the plugin's runtime (its worker and blocking threads).
pub fn is_side_thread(name: &str) -> bool {
    name == "psn-rt"
}

pub struct WebrtcSide {
    rt: RuntimeRef,
    peers: Vec<Arc<WebrtcPeer>>,
    /// Packets that came through the events channel instead of a routed feed (should be 0).
    unrouted: Arc<AtomicU64>,
}

impl WebrtcSide {
    pub fn start() -> Result<Self, String> {
        Ok(Self {
            rt: RuntimeRef::acquire().map_err(|e| e.to_string())?,
            peers: vec![],
            unrouted: Arc::default(),
        })
    }

    /// Answers a member's offer with a new peer whose track feeds `feed`.
    pub fn answer(&mut self, offer: &Offer, feed: Arc<MemberFeed>) -> Result<String, String> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(256);
        let peer = Arc::new(
            WebrtcPeer::new(offer.account.as_str().into(), PeerOptions::loopback(), tx)
                .with_sinks(feed),
        );
        // What the party follower's loop would get: state changes, and packets of tracks
        // nobody routed (none here: every feed is routed before the offer is answered).
        let unrouted = self.unrouted.clone();
        self.rt.spawn(async move {
            while let Some(ev) = rx.recv().await {
                if let PeerEvent::Rtp(_) = ev {
                    unrouted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let (p, offer) = (peer.clone(), offer.sdp.clone());
        let answered = self
            .rt
            .handle()
            .block_on(self.rt.spawn(async move { p.answer(&offer).await }))
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.peers.push(peer);
        Ok(answered)
    }

    pub fn unrouted(&self) -> u64 {
        self.unrouted.load(Ordering::Relaxed)
    }

    /// Closes every peer; the runtime stops when the last holder (this) goes.
    pub fn close(self) {
        for p in self.peers {
            let _ = self
                .rt
                .handle()
                .block_on(self.rt.spawn(async move { p.close().await }));
        }
    }
}
