//! Voice signalling with the party's members (PROTOCOL.md sections 5-7): one WebRTC link per
//! console member, whoever offers first.
//!
//! - A member's offer (customMessage type `offer`) is answered at once.
//! - A console member who has not offered within [`OFFER_GRACE`] of our joining (or of their
//!   joining, if later) gets our offer; their `answer` completes the link. An offer nobody
//!   answers is repeated every [`ANSWER_WAIT`], at most [`MAX_OFFERS`] times.
//! - Glare (both sides offered): the member's offer wins. We close our offering connection and
//!   answer theirs; an answer to our dropped offer that arrives later is ignored. The rule is
//!   ours to choose (who offers first is unknown, section 7); this one needs nothing from the
//!   member: a console that keeps its own offer sees it answered, and one that yields to ours
//!   just answers too, which we ignore, and the retry after a failed link offers again.
//! - A link that fails or closes is offered again after [`OFFER_GRACE`].
//! - The rtcBridge ([`super::bridge_link`]), by the `voice_path` setting ([`VoicePath`]):
//!   `auto` puts a member on the bridge when peer-to-peer with them fails (the peer reports
//!   Failed, or is not connected [`P2P_TIMEOUT`] after our offer or answer) and keeps them there
//!   while they stay in the party; `bridge` uses only the bridge (no offers, members' offers
//!   ignored); `p2p` never opens one. What the bridge sends is routed by the stream's msid:
//!   a roster member's account id is that member (only while they are on the bridge, so a
//!   voice is never heard twice), anything else is the pseudo-member "party (bridge)"
//!   ([`BRIDGE_MEMBER`], `member` = `"bridge"` picks it), which the mix plays.
//!
//! The session (src/party/session.rs) sends what these methods return and feeds them the
//! push events; this module owns the peers and starts each member's pipeline.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::bridge_link::{BridgeLink, BRIDGE_PEER};
use super::feed::{member_feed, PacketSender};
use super::session::PlayoutControl;
use super::status::{HubStatus, MemberState};
use crate::audio::playout::{MemberInfo, Silence};
use crate::psn::client::PsnClient;
use crate::psn::custom_message::{
    decode_payload, encode_payload, Message, Recipient, Signal, UserRef, PLATFORM_MOBILE_APP,
    PLATFORM_PS5,
};
use crate::psn::session::Member as RosterMember;
use crate::voice::member::{Member, MemberConfig};
use crate::voice::peer::sdp::AudioParams;
use crate::voice::peer::webrtc_rs::WebrtcPeer;
use crate::voice::peer::{MemberId, PeerEvent, PeerOptions, PeerState, VoicePeer};

/// How long a member has to offer before we do.
pub const OFFER_GRACE: Duration = Duration::from_secs(3);
/// How long we wait for the answer to our offer before offering again.
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// Offers per member before we stop offering (their own offer is still answered).
pub const MAX_OFFERS: u32 = 3;
/// A link not connected this long after our offer or answer has failed.
pub const P2P_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after a failed bridge we try again.
pub const BRIDGE_RETRY: Duration = Duration::from_secs(10);
/// The playout id and the online id of the pseudo-member that plays what the bridge sends
/// without naming a member.
pub const BRIDGE_MEMBER: &str = "bridge";
pub const BRIDGE_MEMBER_NAME: &str = "party (bridge)";

/// Which way voices come (the `voice_path` setting, docs/settings.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VoicePath {
    /// Peer-to-peer, the bridge for members it fails with (`"auto"`, the default).
    #[default]
    Auto,
    /// Peer-to-peer only (`"p2p"`).
    P2p,
    /// The bridge only (`"bridge"`).
    Bridge,
}

impl VoicePath {
    pub fn from_setting(value: &str) -> VoicePath {
        match value.trim() {
            "p2p" => VoicePath::P2p,
            "bridge" => VoicePath::Bridge,
            _ => VoicePath::Auto,
        }
    }
}

/// A customMessage to send: recipient and payload.
pub type Outgoing = (Recipient, String);

/// What became of an offer or answer we sent ([`VoiceLinks::signal_sent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    Delivered,
    /// PSN did not pass it on; `transient`: it may next time (5xx, timeout, rate limit).
    Lost {
        transient: bool,
    },
}

/// What the links need from the session.
#[derive(Clone)]
pub struct LinkContext {
    pub playout: Arc<dyn PlayoutControl>,
    pub status: Arc<Mutex<HubStatus>>,
    /// Whether the user's own console is heard in the mix.
    pub include_own_console: bool,
    pub udp_addrs: Vec<String>,
    pub path: VoicePath,
    /// The PSN client for the bridge's calls (`None` in tests without PSN: no bridge).
    pub client: Option<Arc<PsnClient>>,
    /// The jitter buffer preset for members who connect from now on.
    pub jitter: Arc<Mutex<super::hub::JitterPreset>>,
}

impl LinkContext {
    /// The jitter buffer's settings for a member's stream, from the user's preset.
    fn jitter_config(&self, clock_rate: u32) -> crate::voice::jitter::JitterConfig {
        let preset = *self.jitter.lock().unwrap_or_else(|e| e.into_inner());
        preset.config(clock_rate)
    }

    fn set(&self, change: impl FnOnce(&mut HubStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut status);
    }
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    /// We offered and wait for the answer.
    Offering,
    /// Negotiated (we answered their offer, or they answered ours); media flows.
    Live,
}

struct Link {
    peer: Arc<WebrtcPeer>,
    role: LinkRole,
    /// When we offered or answered, and whether it has connected since.
    opened: Instant,
    connected: bool,
    /// The member's packet feed and playout entry, once negotiated.
    feed: Option<(PacketSender, MemberInfo)>,
}

/// When we may offer to a member, and how often we did.
struct OfferPlan {
    due: Instant,
    sent: u32,
}

/// Every member's voice link in one party.
pub struct VoiceLinks {
    ctx: LinkContext,
    me: String,
    peer_tx: mpsc::Sender<PeerEvent>,
    links: HashMap<MemberId, Link>,
    plans: HashMap<String, OfferPlan>,
    seq: u64,
    session_id: String,
    /// Console members' online ids by account id.
    names: HashMap<String, String>,
    /// Members whose voice comes over the bridge (peer-to-peer failed).
    bridged: HashSet<String>,
    bridge: Option<BridgeLink>,
    /// A bridge being opened, in its own task: opening takes several PSN calls, and the
    /// session's loop (which forwards every member's packets) must not wait on them.
    bridge_opening: Option<tokio::task::JoinHandle<Result<BridgeLink, String>>>,
    /// Not before this instant (after a failure) is a bridge opened again.
    bridge_retry_at: Option<Instant>,
    /// The bridge's streams in the playout, by playout id (account id or [`BRIDGE_MEMBER`]).
    bridge_feeds: HashMap<String, (PacketSender, MemberInfo)>,
}

impl VoiceLinks {
    pub fn new(
        ctx: LinkContext,
        me: &str,
        session_id: &str,
        peer_tx: mpsc::Sender<PeerEvent>,
    ) -> Self {
        VoiceLinks {
            ctx,
            me: me.to_owned(),
            peer_tx,
            links: HashMap::new(),
            plans: HashMap::new(),
            seq: 1,
            session_id: session_id.to_owned(),
            names: HashMap::new(),
            bridged: HashSet::new(),
            bridge: None,
            bridge_opening: None,
            bridge_retry_at: None,
            bridge_feeds: HashMap::new(),
        }
    }

    /// Whether the member's voice comes over the bridge.
    pub fn on_bridge(&self, account_id: &str) -> bool {
        self.ctx.path == VoicePath::Bridge || self.bridged.contains(account_id)
    }

    /// The link state of a member (for tests and status).
    pub fn role(&self, account_id: &str) -> Option<LinkRole> {
        self.links.get(account_id).map(|l| l.role)
    }

    /// A console member is in the party from now on: our offer is due after the grace.
    pub fn member_present(&mut self, m: &RosterMember, now: Instant) {
        if !self.wants_voice(m) {
            return;
        }
        self.names.insert(m.account_id.clone(), m.online_id.clone());
        if self.ctx.path == VoicePath::Bridge {
            return;
        }
        self.plans.entry(m.account_id.clone()).or_insert(OfferPlan {
            due: now + OFFER_GRACE,
            sent: 0,
        });
    }

    fn wants_voice(&self, m: &RosterMember) -> bool {
        m.is_console() && (m.account_id != self.me || self.ctx.include_own_console)
    }

    /// Every 250 ms or so: links that did not connect in time fail, offers whose grace ran
    /// out go out (returned, for the session to send), and the bridge opens if it is wanted.
    pub async fn offers_due(
        &mut self,
        roster: &HashMap<String, RosterMember>,
        now: Instant,
    ) -> Vec<Outgoing> {
        let stalled: Vec<String> = self
            .links
            .iter()
            .filter(|(_, l)| !l.connected && now.saturating_duration_since(l.opened) >= P2P_TIMEOUT)
            .map(|(id, _)| id.to_string())
            .collect();
        for id in stalled {
            log::info!(
                "voice with member {} did not connect within {P2P_TIMEOUT:?}",
                mask(&id)
            );
            self.p2p_failed(&id, now).await;
        }
        self.open_bridge_if_wanted(now).await;
        let due: Vec<RosterMember> = roster
            .values()
            .filter(|m| self.wants_voice(m) && !self.on_bridge(&m.account_id))
            .filter(|m| {
                // An open offer of ours is due again when ANSWER_WAIT has passed.
                let live = self.role(&m.account_id) == Some(LinkRole::Live);
                self.plans
                    .get(&m.account_id)
                    .is_some_and(|p| now >= p.due && p.sent < MAX_OFFERS && !live)
            })
            .cloned()
            .collect();
        let mut out = Vec::new();
        for m in due {
            if let Some(message) = self.offer_to(&m).await {
                out.push(message);
            }
        }
        out
    }

    /// What became of our offer or answer to `account_id`, queued for sending at `queued_at`.
    /// The time a link has to connect ([`P2P_TIMEOUT`]) runs from when the member can have our
    /// description: a PSN outage that loses it is not a failed peer-to-peer path and must not
    /// send the member to the bridge. A lost description leaves nothing to connect: the link is
    /// dropped and our own offer goes out after the grace (unless the member offers again
    /// first), without counting against [`MAX_OFFERS`] when the loss was transient (a refusal
    /// counts, so a member PSN will not pass messages to gets at most that many offers). A
    /// result about an older link (one
    /// replaced since the message was queued) changes nothing; returns whether it applied.
    pub async fn signal_sent(
        &mut self,
        account_id: &str,
        queued_at: Instant,
        outcome: SignalOutcome,
        now: Instant,
    ) -> bool {
        let Some(link) = self.links.get_mut(account_id) else {
            return false;
        };
        if link.opened > queued_at {
            return false;
        }
        let transient = match outcome {
            SignalOutcome::Delivered => {
                link.opened = now;
                return true;
            }
            SignalOutcome::Lost { transient } => transient,
        };
        self.drop_link(account_id).await;
        if self.ctx.path == VoicePath::Bridge {
            return true;
        }
        let plan = self
            .plans
            .entry(account_id.to_owned())
            .or_insert(OfferPlan { due: now, sent: 0 });
        if transient {
            plan.sent = plan.sent.saturating_sub(1);
        }
        plan.due = now + OFFER_GRACE;
        true
    }

    /// Peer-to-peer with `account_id` failed: on `auto` the member goes on the bridge, else we
    /// offer again after the grace.
    async fn p2p_failed(&mut self, account_id: &str, now: Instant) {
        self.drop_link(account_id).await;
        if self.ctx.path == VoicePath::Auto && self.names.contains_key(account_id) {
            if self.bridged.insert(account_id.to_owned()) {
                log::info!("member {} goes on the bridge", mask(account_id));
            }
        } else if let Some(plan) = self.plans.get_mut(account_id) {
            plan.due = now + OFFER_GRACE;
            plan.sent = 0;
        }
    }

    async fn open_bridge_if_wanted(&mut self, now: Instant) {
        if let Some(task) = self.bridge_opening.take_if(|t| t.is_finished()) {
            let opened = task
                .await
                .unwrap_or_else(|e| Err(format!("the bridge task: {e}")));
            match opened {
                Ok(bridge) => {
                    log::info!(
                        "rtcBridge answered (Opus at {} Hz)",
                        bridge.params.clock_rate
                    );
                    self.bridge = Some(bridge);
                    // PSN answers again: an earlier failure's error is over.
                    self.ctx.set(|s| s.error = None);
                }
                Err(e) => {
                    log::warn!("the rtcBridge failed: {e}");
                    let text = super::error_text::bridge_failed(BRIDGE_RETRY.as_secs());
                    self.ctx.set(|s| s.error = Some(text));
                    self.bridge_retry_at = Some(now + BRIDGE_RETRY);
                }
            }
            return;
        }
        let wanted = match self.ctx.path {
            VoicePath::Bridge => true,
            VoicePath::Auto => !self.bridged.is_empty(),
            VoicePath::P2p => false,
        };
        if !wanted
            || self.bridge.is_some()
            || self.bridge_opening.is_some()
            || self.bridge_retry_at.is_some_and(|t| now < t)
        {
            return;
        }
        let Some(client) = self.ctx.client.clone() else {
            return;
        };
        log::info!("opening the rtcBridge");
        let session_id = self.session_id.clone();
        let udp_addrs = self.ctx.udp_addrs.clone();
        let peer_tx = self.peer_tx.clone();
        self.bridge_opening = Some(tokio::spawn(async move {
            BridgeLink::open(client, &session_id, udp_addrs, peer_tx).await
        }));
    }

    async fn close_bridge(&mut self) {
        if let Some(task) = self.bridge_opening.take() {
            // Let it finish (bounded) so the bridge it made is closed on PSN too.
            if let Ok(Ok(Ok(bridge))) = tokio::time::timeout(Duration::from_secs(2), task).await {
                bridge.close().await;
            }
        }
        if let Some(bridge) = self.bridge.take() {
            bridge.close().await;
        }
        for (id, (_, info)) in self.bridge_feeds.drain() {
            if id == BRIDGE_MEMBER {
                self.ctx.playout.remove_member(&id);
            } else {
                self.ctx.playout.add_member(info, Box::new(Silence));
            }
        }
    }

    /// A packet from the bridge, on the stream named `stream` (its msid stream id).
    fn route_bridge_packet(&mut self, stream: &str, packet: &crate::voice::peer::RtpEvent) {
        let target = if self.names.contains_key(stream) {
            if !self.on_bridge(stream) {
                return; // their voice comes peer-to-peer
            }
            stream
        } else {
            BRIDGE_MEMBER
        };
        if !self.bridge_feeds.contains_key(target) {
            let Some(params) = self.bridge.as_ref().map(|b| b.params.clone()) else {
                return;
            };
            let mut config = MemberConfig::new(params.clock_rate, params.opus_pt);
            config.jitter = self.ctx.jitter_config(params.clock_rate);
            config.red_pt = params.red_pt;
            let Ok(pipeline) = Member::new(config) else {
                return;
            };
            let own_console = target == self.me;
            let info = match self.names.get(target) {
                Some(online_id) => MemberInfo {
                    account_id: target.to_owned(),
                    online_id: online_id.clone(),
                    in_mix: !own_console || self.ctx.include_own_console,
                    takes_slot: !own_console,
                },
                None => MemberInfo {
                    account_id: BRIDGE_MEMBER.to_owned(),
                    online_id: BRIDGE_MEMBER_NAME.to_owned(),
                    in_mix: true,
                    takes_slot: false,
                },
            };
            log::info!("the bridge carries {}", info.online_id);
            let (feed, audio) = member_feed(pipeline, self.ctx.playout.epoch());
            self.ctx.playout.add_member(info.clone(), Box::new(audio));
            self.ctx
                .set(|s| s.set_member_state(target, MemberState::Connected));
            self.bridge_feeds.insert(target.to_owned(), (feed, info));
        }
        if let Some((feed, _)) = self.bridge_feeds.get_mut(target) {
            feed.send(packet);
        }
    }

    /// Our offer to `m` on a new connection (any earlier one of ours is closed).
    async fn offer_to(&mut self, m: &RosterMember) -> Option<Outgoing> {
        let member: MemberId = m.account_id.as_str().into();
        self.drop_link(&m.account_id).await;
        if let Some(plan) = self.plans.get_mut(&m.account_id) {
            plan.sent += 1;
            plan.due = Instant::now() + ANSWER_WAIT;
        }
        let peer = Arc::new(self.new_peer(&member));
        let sdp = match peer.offer().await {
            Ok(sdp) => sdp,
            Err(e) => {
                log::warn!("could not make a voice offer for {}: {e}", m.online_id);
                peer.close().await;
                return None;
            }
        };
        self.links.insert(
            member.clone(),
            Link {
                peer,
                role: LinkRole::Offering,
                opened: Instant::now(),
                connected: false,
                feed: None,
            },
        );
        self.ctx
            .set(|s| s.set_member_state(&member, MemberState::Connecting));
        log::info!("offering voice to {} (they had not offered)", m.online_id);
        let to = UserRef {
            account_id: m.account_id.clone(),
            platform: platform_code(&m.platform),
        };
        Some(self.message("offer", to, &m.platform, sdp))
    }

    fn new_peer(&self, member: &MemberId) -> WebrtcPeer {
        let options = PeerOptions {
            udp_addrs: self.ctx.udp_addrs.clone(),
            ..PeerOptions::default()
        };
        WebrtcPeer::new(member.clone(), options, self.peer_tx.clone())
    }

    fn message(&mut self, kind: &str, to: UserRef, platform: &str, sdp: String) -> Outgoing {
        let from = UserRef {
            account_id: self.me.clone(),
            platform: PLATFORM_MOBILE_APP,
        };
        self.seq += 1;
        let recipient = Recipient {
            account_id: to.account_id.clone(),
            platform: platform.to_owned(),
        };
        let reply = Message::from_signal(Signal::new(kind, from, to, sdp, self.seq));
        (recipient, encode_payload(&reply))
    }

    /// A customMessage from the party: a member's offer (answered) or their answer to ours.
    pub async fn on_signal(
        &mut self,
        roster: &HashMap<String, RosterMember>,
        payload: &str,
    ) -> Option<Outgoing> {
        let message = match decode_payload(payload) {
            Ok(message) => message,
            Err(e) => {
                log::warn!("a voice message could not be read: {e}");
                return None;
            }
        };
        let signal = message.signal;
        if signal.to.account_id != self.me {
            return None;
        }
        // Whose audio mid 0 carries: the media's user, else the sender.
        let owner = signal
            .medias
            .first()
            .map(|m| m.user.clone())
            .unwrap_or_else(|| signal.from.clone());
        // The member on a console with that account (the user's own PS5 shares our account id).
        let entry = roster
            .values()
            .find(|m| m.account_id == owner.account_id && m.is_console())
            .cloned();
        match signal.kind.as_str() {
            "offer" => self.answer(&signal, &owner, entry.as_ref()).await,
            "answer" => {
                self.answer_received(&signal, &owner, entry.as_ref()).await;
                None
            }
            _ => None,
        }
    }

    async fn answer(
        &mut self,
        signal: &Signal,
        owner: &UserRef,
        entry: Option<&RosterMember>,
    ) -> Option<Outgoing> {
        let online_id = entry.map(|m| m.online_id.clone()).unwrap_or_default();
        let platform = entry.map_or("PS5", |m| m.platform.as_str()).to_owned();
        let member: MemberId = owner.account_id.as_str().into();
        if self.on_bridge(&owner.account_id) {
            log::debug!("{online_id} offered, but their voice comes over the bridge");
            return None;
        }
        if self.role(&owner.account_id) == Some(LinkRole::Offering) {
            // Glare: the member's offer wins (module docs).
            log::info!("{online_id} offered while our offer was out: answering theirs");
        }
        self.drop_link(&owner.account_id).await;
        let peer = Arc::new(self.new_peer(&member));
        let answer = match peer.answer(&signal.sdp).await {
            Ok(answer) => answer,
            Err(e) => {
                log::warn!("could not answer {online_id}'s voice offer: {e}");
                self.ctx
                    .set(|s| s.set_member_state(&member, MemberState::Failed(e.to_string())));
                peer.close().await;
                return None;
            }
        };
        let Some(params) = peer.negotiated().await else {
            peer.close().await;
            return None;
        };
        if !self.start_pipeline(&member, owner, &online_id, peer, &params) {
            return None;
        }
        log::info!(
            "answering {}'s voice offer (Opus at {} Hz)",
            if online_id.is_empty() {
                "a member"
            } else {
                &online_id
            },
            params.clock_rate
        );
        Some(self.message("answer", signal.from.clone(), &platform, answer.clone()))
    }

    async fn answer_received(
        &mut self,
        signal: &Signal,
        owner: &UserRef,
        entry: Option<&RosterMember>,
    ) {
        let online_id = entry.map(|m| m.online_id.clone()).unwrap_or_default();
        let Some(link) = self
            .links
            .get(owner.account_id.as_str())
            .filter(|l| l.role == LinkRole::Offering)
        else {
            // An answer to an offer we dropped (glare) or answered already.
            log::debug!("ignoring an answer from {online_id}: no offer of ours is open");
            return;
        };
        let peer = link.peer.clone();
        let params = match peer.accept_answer(&signal.sdp).await {
            Ok(params) => params,
            Err(e) => {
                log::warn!("{online_id}'s answer to our voice offer was refused: {e}");
                return;
            }
        };
        let member: MemberId = owner.account_id.as_str().into();
        if let Some(link) = self.links.remove(&member) {
            if self.start_pipeline(&member, owner, &online_id, link.peer, &params) {
                log::info!(
                    "{online_id} answered our voice offer (Opus at {} Hz)",
                    params.clock_rate
                );
            }
        }
    }

    /// Starts the member's jitter buffer and decoder and puts them in the playout.
    fn start_pipeline(
        &mut self,
        member: &MemberId,
        owner: &UserRef,
        online_id: &str,
        peer: Arc<WebrtcPeer>,
        params: &AudioParams,
    ) -> bool {
        let mut config = MemberConfig::new(params.clock_rate, params.opus_pt);
        config.jitter = self.ctx.jitter_config(params.clock_rate);
        config.red_pt = params.red_pt;
        let pipeline = match Member::new(config) {
            Ok(pipeline) => pipeline,
            Err(e) => {
                log::warn!("could not start the decoder for {online_id}: {e}");
                let closing = peer.clone();
                tokio::spawn(async move { closing.close().await });
                return false;
            }
        };
        let (feed, stream) = member_feed(pipeline, self.ctx.playout.epoch());
        self.bridge_feeds.remove(owner.account_id.as_str());
        let own_console = owner.account_id == self.me;
        let info = MemberInfo {
            account_id: owner.account_id.clone(),
            online_id: online_id.to_owned(),
            in_mix: !own_console || self.ctx.include_own_console,
            takes_slot: !own_console,
        };
        self.ctx.playout.add_member(info.clone(), Box::new(stream));
        // Keep when we offered: the connect timeout counts from there.
        let opened = self
            .links
            .get(member)
            .map_or_else(Instant::now, |l| l.opened);
        self.links.insert(
            member.clone(),
            Link {
                peer,
                role: LinkRole::Live,
                opened,
                connected: false,
                feed: Some((feed, info)),
            },
        );
        self.ctx
            .set(|s| s.set_member_state(member, MemberState::Connecting));
        true
    }

    /// A peer's packet or state change.
    pub async fn on_peer_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Rtp(packet) => {
                if let Some(stream) = packet
                    .member
                    .strip_prefix(BRIDGE_PEER)
                    .and_then(|s| s.strip_prefix(':'))
                {
                    let stream = stream.to_owned();
                    self.route_bridge_packet(&stream, &packet);
                    return;
                }
                if let Some(feed) = self
                    .links
                    .get_mut(&packet.member)
                    .and_then(|l| l.feed.as_mut())
                {
                    feed.0.send(&packet);
                }
            }
            PeerEvent::State { member, state } if &*member == BRIDGE_PEER => {
                log::info!("rtcBridge connection: {state:?}");
                if matches!(state, PeerState::Failed | PeerState::Closed) && self.bridge.is_some() {
                    self.close_bridge().await;
                    self.bridge_retry_at = Some(Instant::now() + BRIDGE_RETRY);
                }
            }
            PeerEvent::State { member, state } => {
                if !self.links.contains_key(&member) {
                    return; // a connection we closed already
                }
                log::info!("voice connection of member {}: {state:?}", mask(&member));
                self.ctx
                    .set(|s| s.set_member_state(&member, MemberState::from(state)));
                if state == PeerState::Connected {
                    if let Some(link) = self.links.get_mut(&member) {
                        link.connected = true;
                    }
                }
                if matches!(state, PeerState::Failed | PeerState::Closed) {
                    self.p2p_failed(&member, Instant::now()).await;
                }
            }
        }
    }

    /// The member left the party.
    pub async fn member_left(&mut self, account_id: &str) {
        self.plans.remove(account_id);
        self.names.remove(account_id);
        self.bridged.remove(account_id);
        self.bridge_feeds.remove(account_id);
        self.drop_link(account_id).await;
    }

    /// Closes the member's link; a live one's playout entry goes back to silence (the member
    /// keeps their slot while in the party).
    async fn drop_link(&mut self, account_id: &str) {
        if let Some(link) = self.links.remove(account_id) {
            // Closed in its own task: closing a connection takes tens of milliseconds, and
            // the session's loop forwards the other members' packets meanwhile.
            let peer = link.peer.clone();
            tokio::spawn(async move { peer.close().await });
            if let Some((_, info)) = link.feed {
                self.ctx.playout.add_member(info, Box::new(Silence));
            }
        }
    }

    /// Closes every link (the party is over for us).
    pub async fn close_all(&mut self) {
        for (_, link) in self.links.drain() {
            link.peer.close().await;
        }
        self.plans.clear();
        self.close_bridge().await;
    }
}

/// The customMessage platform number of a roster platform name (PROTOCOL.md section 5).
fn platform_code(platform: &str) -> u64 {
    match platform {
        "PS5" => PLATFORM_PS5,
        "PS4" => 4,
        "MOBILE_APP" => PLATFORM_MOBILE_APP,
        _ => 0,
    }
}

/// Account ids in logs are masked (they identify a person).
pub fn mask(account_id: &str) -> String {
    let tail: String = account_id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::playout::MemberAudio;

    /// The playout as the links drive it: who was added, who removed.
    #[derive(Default)]
    struct Recorded {
        added: Mutex<Vec<String>>,
        removed: Mutex<Vec<String>>,
    }

    impl PlayoutControl for Recorded {
        fn add_member(&self, info: MemberInfo, _audio: Box<dyn MemberAudio>) {
            self.added.lock().unwrap().push(info.account_id);
        }
        fn remove_member(&self, account_id: &str) {
            self.removed.lock().unwrap().push(account_id.to_owned());
        }
        fn epoch(&self) -> Instant {
            Instant::now()
        }
    }

    const ME: &str = "1000";
    const MEMBER: &str = "2000";

    fn roster() -> HashMap<String, RosterMember> {
        let m = RosterMember {
            account_id: MEMBER.into(),
            online_id: "glare_ps".into(),
            platform: "PS5".into(),
        };
        HashMap::from([(format!("{MEMBER}/PS5"), m)])
    }

    fn links(playout: Arc<Recorded>) -> VoiceLinks {
        let ctx = LinkContext {
            playout,
            status: Arc::new(Mutex::new(HubStatus::default())),
            include_own_console: false,
            udp_addrs: vec!["127.0.0.1:0".into()],
            path: VoicePath::Auto,
            client: None,
            jitter: Arc::default(),
        };
        VoiceLinks::new(ctx, ME, "session", mpsc::channel(256).0)
    }

    /// The member's side: a customMessage from MEMBER to us.
    fn from_member(kind: &str, sdp: String) -> String {
        let member = UserRef {
            account_id: MEMBER.into(),
            platform: PLATFORM_PS5,
        };
        let me = UserRef {
            account_id: ME.into(),
            platform: PLATFORM_MOBILE_APP,
        };
        encode_payload(&Message::from_signal(Signal::new(kind, member, me, sdp, 7)))
    }

    fn sdp_of(payload: &str) -> String {
        decode_payload(payload).unwrap().signal.sdp
    }

    fn member_peer() -> WebrtcPeer {
        let options = PeerOptions {
            udp_addrs: vec!["127.0.0.1:0".into()],
            ..PeerOptions::default()
        };
        WebrtcPeer::new("us".into(), options, mpsc::channel(256).0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_offer_before_the_grace_then_one() {
        let playout = Arc::new(Recorded::default());
        let mut links = links(playout.clone());
        let roster = roster();
        let t0 = Instant::now();
        links.member_present(&roster.values().next().unwrap().clone(), t0);
        assert!(links
            .offers_due(&roster, t0 + OFFER_GRACE / 2)
            .await
            .is_empty());
        let offers = links.offers_due(&roster, t0 + OFFER_GRACE).await;
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].0.account_id, MEMBER);
        assert_eq!(decode_payload(&offers[0].1).unwrap().signal.kind, "offer");
        assert_eq!(links.role(MEMBER), Some(LinkRole::Offering));
        // Not again until ANSWER_WAIT has passed.
        assert!(links.offers_due(&roster, t0 + OFFER_GRACE).await.is_empty());
        links.close_all().await;
    }

    /// Both sides offered at once: the member's offer wins, the answer to ours is ignored, and
    /// the member is in the playout once, on the link we answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn glare_the_members_offer_wins() {
        let playout = Arc::new(Recorded::default());
        let mut links = links(playout.clone());
        let roster = roster();
        let t0 = Instant::now();
        links.member_present(&roster.values().next().unwrap().clone(), t0);
        let ours = links.offers_due(&roster, t0 + OFFER_GRACE).await;
        assert_eq!(ours.len(), 1);

        // Meanwhile the member offered too, and (a member that yields) answered ours.
        let member_offering = member_peer();
        let their_offer = member_offering.offer().await.unwrap();
        let member_answering = member_peer();
        let their_answer = member_answering.answer(&sdp_of(&ours[0].1)).await.unwrap();

        let reply = links
            .on_signal(&roster, &from_member("offer", their_offer))
            .await
            .expect("their offer is answered");
        assert_eq!(decode_payload(&reply.1).unwrap().signal.kind, "answer");
        assert_eq!(links.role(MEMBER), Some(LinkRole::Live));
        assert_eq!(*playout.added.lock().unwrap(), vec![MEMBER.to_owned()]);

        // The answer to our dropped offer changes nothing.
        let ignored = links
            .on_signal(&roster, &from_member("answer", their_answer))
            .await;
        assert!(ignored.is_none());
        assert_eq!(links.role(MEMBER), Some(LinkRole::Live));
        assert_eq!(playout.added.lock().unwrap().len(), 1);
        // And no further offer goes out while the link is live.
        let later = t0 + OFFER_GRACE + ANSWER_WAIT * 2;
        assert!(links.offers_due(&roster, later).await.is_empty());

        // Our answer completes the member's offer.
        member_offering
            .accept_answer(&sdp_of(&reply.1))
            .await
            .expect("the member takes our answer");
        links.close_all().await;
        member_offering.close().await;
        member_answering.close().await;
    }

    /// PSN lost our answer (a 5xx on customMessage): that is no peer-to-peer failure. The
    /// member is not sent to the bridge; our own offer goes out after the grace instead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_answer_is_followed_by_our_offer_not_the_bridge() {
        let playout = Arc::new(Recorded::default());
        let mut links = links(playout.clone());
        let roster = roster();
        let t0 = Instant::now();
        links.member_present(&roster.values().next().unwrap().clone(), t0);
        let member = member_peer();
        let their_offer = member.offer().await.unwrap();
        let reply = links
            .on_signal(&roster, &from_member("offer", their_offer))
            .await
            .expect("their offer is answered");
        assert_eq!(decode_payload(&reply.1).unwrap().signal.kind, "answer");
        let lost_at = t0 + Duration::from_secs(1);
        assert!(
            links
                .signal_sent(
                    MEMBER,
                    Instant::now(),
                    SignalOutcome::Lost { transient: true },
                    lost_at
                )
                .await
        );
        assert_eq!(links.role(MEMBER), None, "nothing left to connect");

        // Long past P2P_TIMEOUT: still not on the bridge, and our offer is out.
        let later = lost_at + P2P_TIMEOUT + OFFER_GRACE;
        let offers = links.offers_due(&roster, later).await;
        assert!(!links.on_bridge(MEMBER));
        assert_eq!(offers.len(), 1);
        assert_eq!(decode_payload(&offers[0].1).unwrap().signal.kind, "offer");
        // Delivered: the link's clock starts now, so it has not stalled half a timeout on.
        assert!(
            links
                .signal_sent(MEMBER, Instant::now(), SignalOutcome::Delivered, later)
                .await
        );
        // A late result about a message queued before that changes nothing.
        let stale = SignalOutcome::Lost { transient: true };
        assert!(!links.signal_sent(MEMBER, t0, stale, later).await);
        assert_eq!(links.role(MEMBER), Some(LinkRole::Offering));
        links.offers_due(&roster, later + P2P_TIMEOUT / 2).await;
        assert!(!links.on_bridge(MEMBER));
        links.close_all().await;
        member.close().await;
    }
}
