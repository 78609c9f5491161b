//! Every member's voice link in one party: carries out what the signalling machine
//! ([`super::signalling`]) decides, with real peers. It owns the members' connections (any
//! [`VoicePeer`]; the plugin's are [`WebrtcPeer`]s), starts each member's pipeline
//! ([`super::pipeline`]) when their link is negotiated and routes the link's track into it
//! (the peer then writes the packets into the member's ring itself; only packets of a track
//! not routed yet come through here), and holds the rtcBridge ([`super::bridge_link`]).
//!
//! The follower (src/party/follower.rs) feeds it the party's events and sends the voice
//! messages it returns.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use super::bridge_link::{BridgeSide, OwnAccount, BRIDGE_MEMBER, BRIDGE_MEMBER_NAME, BRIDGE_PEER};
use super::feed::{shared, SharedSender, TrackFeed};
use super::pipeline::PlayoutControl;
use super::pipeline::{member_info, start_voice};
use super::signal_filter::Delivered;
use super::signalling::{
    Command, LinkRole, Outgoing, SignalOutcome, Signalling, SignallingConfig, VoicePath,
};
use super::status::{HubStatus, MemberState, Route};
use crate::audio::playout::{MemberInfo, Silence};
use crate::psn::client::PsnClient;
use crate::psn::model::RosterMember;
use crate::voice::peer::webrtc_rs::WebrtcPeer;
use crate::voice::peer::{MemberId, PeerEvent, PeerOptions, VoicePeer};

/// What the links need from the follower.
#[derive(Clone)]
pub struct LinkContext {
    pub playout: Arc<dyn PlayoutControl>,
    pub status: Arc<Mutex<HubStatus>>,
    /// Whether the user's own console is heard in the mix.
    pub include_own_console: bool,
    /// Where the peers bind and which STUN servers they ask (`crate::voice::net`).
    pub peer_options: PeerOptions,
    pub path: VoicePath,
    /// The PSN client for the bridge's calls (`None` in tests without PSN: no bridge).
    pub client: Option<Arc<PsnClient>>,
    /// The jitter buffer preset for members who connect from now on.
    pub jitter: Arc<Mutex<super::settings::JitterPreset>>,
}

impl LinkContext {
    fn set(&self, change: impl FnOnce(&mut HubStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut status);
    }
}

/// Makes the connection to one member, whose tracks feed the given [`TrackFeed`].
pub type NewPeer<P> = Box<dyn Fn(MemberId, TrackFeed) -> P + Send + Sync>;

/// A member's connection, its track's route, and once negotiated, their playout entry.
struct Link<P> {
    peer: Arc<P>,
    track: TrackFeed,
    live: Option<MemberInfo>,
}

/// Every member's voice link in one party.
pub struct VoiceLinks<P: VoicePeer + 'static = WebrtcPeer> {
    ctx: LinkContext,
    me: String,
    session_id: String,
    peer_tx: mpsc::Sender<PeerEvent>,
    new_peer: NewPeer<P>,
    machine: Signalling,
    links: HashMap<MemberId, Link<P>>,
    bridge: BridgeSide,
}

impl VoiceLinks<WebrtcPeer> {
    /// The plugin's links: WebRTC connections on the context's local addresses.
    pub fn new(
        ctx: LinkContext,
        me: &str,
        session_id: &str,
        peer_tx: mpsc::Sender<PeerEvent>,
    ) -> Self {
        let options = ctx.peer_options.clone();
        let events = peer_tx.clone();
        let new_peer: NewPeer<WebrtcPeer> = Box::new(move |member, track| {
            WebrtcPeer::new(member, options.clone(), events.clone()).with_sinks(Arc::new(track))
        });
        VoiceLinks::with_peers(ctx, me, session_id, peer_tx, new_peer)
    }
}

impl<P: VoicePeer + 'static> VoiceLinks<P> {
    /// Links whose connections `new_peer` makes.
    pub fn with_peers(
        ctx: LinkContext,
        me: &str,
        session_id: &str,
        peer_tx: mpsc::Sender<PeerEvent>,
        new_peer: NewPeer<P>,
    ) -> Self {
        let machine = Signalling::new(SignallingConfig {
            me: me.to_owned(),
            path: ctx.path,
            include_own_console: ctx.include_own_console,
            bridge_available: ctx.client.is_some(),
            device_id: ctx
                .client
                .as_ref()
                .map(|c| c.device_id().to_owned())
                .unwrap_or_default(),
        });
        VoiceLinks {
            ctx,
            me: me.to_owned(),
            session_id: session_id.to_owned(),
            peer_tx,
            new_peer,
            machine,
            links: HashMap::new(),
            bridge: BridgeSide::default(),
        }
    }

    /// Whether the member's voice comes over the bridge.
    pub fn on_bridge(&self, account_id: &str) -> bool {
        self.machine.on_bridge(account_id)
    }

    /// The link state of a member (for tests and status).
    pub fn role(&self, account_id: &str) -> Option<LinkRole> {
        self.machine.role(account_id)
    }

    /// A console member is in the party from now on.
    pub fn member_present(&mut self, m: &RosterMember, now: Instant) {
        self.machine.member_joined(m, now);
    }

    /// Every 250 ms or so: the bridge's opening is checked, then the machine's clock ticks
    /// (stalled links, the bridge, offers due). Returns the voice messages to send.
    pub async fn offers_due(
        &mut self,
        roster: &HashMap<String, RosterMember>,
        now: Instant,
    ) -> Vec<Outgoing> {
        let mut commands = Vec::new();
        if let Some(opened) = self.bridge.opening_finished().await {
            if let Err(e) = &opened {
                log::warn!("the rtcBridge failed: {e}");
            }
            commands = self.machine.bridge_opened(opened.is_ok(), now);
        }
        commands.extend(self.machine.tick(roster, now));
        self.carry_out(commands).await
    }

    /// A customMessage from the party: returns our answer, if it calls for one.
    pub async fn on_signal(
        &mut self,
        roster: &HashMap<String, RosterMember>,
        delivered: &Delivered,
    ) -> Vec<Outgoing> {
        let commands = self.machine.signal_received(roster, delivered);
        self.carry_out(commands).await
    }

    /// The roster is being re-read: voice messages wait for it.
    pub fn roster_read_started(&mut self) {
        self.machine.roster_read_started();
    }

    /// A roster re-read finished: returns the answers to the messages held meanwhile.
    pub async fn roster_read_done(
        &mut self,
        roster: &HashMap<String, RosterMember>,
    ) -> Vec<Outgoing> {
        let commands = self.machine.roster_read_done(roster);
        self.carry_out(commands).await
    }

    /// What became of our offer or answer to `account_id` (see
    /// [`Signalling::signal_sent`]); returns whether it applied to the member's current link.
    pub async fn signal_sent(
        &mut self,
        account_id: &str,
        queued_at: Instant,
        outcome: SignalOutcome,
        now: Instant,
    ) -> bool {
        let (applies, commands) = self
            .machine
            .signal_sent(account_id, queued_at, outcome, now);
        self.carry_out(commands).await;
        applies
    }

    /// A peer's packet or state change.
    pub async fn on_peer_event(&mut self, event: PeerEvent) {
        let commands = match event {
            PeerEvent::Rtp(packet) => {
                if let Some(stream) = packet
                    .member
                    .strip_prefix(BRIDGE_PEER)
                    .and_then(|s| s.strip_prefix(':'))
                {
                    let (me, ctx) = (&self.me, &self.ctx);
                    let machine = &self.machine;
                    let own = OwnAccount {
                        account_id: me,
                        include: ctx.include_own_console,
                    };
                    self.bridge
                        .route(stream, &packet, machine, own, |target, params| {
                            let info = if target == BRIDGE_MEMBER {
                                // Behind its own consent gate ("bridge"), with its own row.
                                MemberInfo {
                                    account_id: BRIDGE_MEMBER.to_owned(),
                                    online_id: BRIDGE_MEMBER_NAME.to_owned(),
                                    in_mix: true,
                                    takes_slot: false,
                                }
                            } else {
                                let online_id = machine.online_id(target).unwrap_or_default();
                                member_info(me, ctx.include_own_console, target, online_id)
                            };
                            log::info!("the bridge carries {}", info.online_id);
                            let feed =
                                start_voice(&*ctx.playout, &ctx.jitter, params, info.clone())
                                    .ok()?;
                            let feed = shared(feed);
                            if target == BRIDGE_MEMBER {
                                ctx.set(|s| s.bridge_stream = Some(MemberState::Connected));
                            } else {
                                ctx.set(|s| {
                                    s.set_member_state(target, MemberState::Connected);
                                    s.set_member_route(target, Some(Route::PsnRelay));
                                });
                            }
                            Some((feed, info))
                        });
                } else if let Some(link) = self.links.get(&packet.member) {
                    // Came before the track was routed (or after it closed): the route decides.
                    let _ = crate::voice::peer::PacketSink::deliver(&link.track, &packet);
                }
                return;
            }
            PeerEvent::State { member, state } if &*member == BRIDGE_PEER => {
                self.machine.bridge_state(state, Instant::now())
            }
            PeerEvent::State { member, state } => {
                self.machine.peer_state(&member, state, Instant::now())
            }
        };
        self.carry_out(commands).await;
    }

    /// The member left the party.
    pub async fn member_left(&mut self, account_id: &str) {
        self.bridge.forget(account_id);
        let commands = self.machine.member_left(account_id);
        self.carry_out(commands).await;
    }

    /// Closes every link and the bridge (the party is over for us).
    pub async fn close_all(&mut self) {
        self.machine.close_all();
        for (_, link) in self.links.drain() {
            link.track.route(None);
            link.peer.close().await;
        }
        self.bridge.close(&*self.ctx.playout).await;
        self.ctx.set(|s| s.bridge_stream = None);
    }

    /// Carries out the machine's commands in order; what one reports back is carried out
    /// before the next. Returns the voice messages to send.
    async fn carry_out(&mut self, commands: Vec<Command>) -> Vec<Outgoing> {
        let mut queue = VecDeque::from(commands);
        let mut outgoing = Vec::new();
        while let Some(command) = queue.pop_front() {
            let follow_up = match command {
                Command::Send(message) => {
                    outgoing.push(message);
                    continue;
                }
                Command::Close { member } => {
                    self.close(&member);
                    continue;
                }
                Command::ShowState { member, state } => {
                    // A member's own connection: when it is up, their voice comes direct.
                    let direct = state == MemberState::Connected;
                    self.ctx.set(|s| {
                        s.set_member_state(&member, state);
                        if direct {
                            s.set_member_route(&member, Some(Route::Direct));
                        }
                    });
                    continue;
                }
                Command::Offer { member, online_id } => self.offer(member, &online_id).await,
                Command::Answer {
                    member,
                    online_id,
                    offer_sdp,
                } => self.answer(member, &online_id, &offer_sdp).await,
                Command::AcceptAnswer {
                    member,
                    online_id,
                    answer_sdp,
                } => self.accept_answer(member, &online_id, &answer_sdp).await,
                Command::OpenBridge => {
                    if let Some(client) = self.ctx.client.clone() {
                        self.bridge.start_opening(
                            client,
                            self.session_id.clone(),
                            self.ctx.peer_options.clone(),
                            self.peer_tx.clone(),
                        );
                    }
                    continue;
                }
                Command::CloseBridge => {
                    self.bridge.close(&*self.ctx.playout).await;
                    self.ctx.set(|s| s.bridge_stream = None);
                    continue;
                }
                Command::ShowProblem(cause) => {
                    self.ctx.set(|s| s.error = cause);
                    continue;
                }
            };
            for command in follow_up.into_iter().rev() {
                queue.push_front(command);
            }
        }
        // Every event ends here: a bridge stream whose target changed (the member now heard
        // peer-to-peer, distrusted, named) stops feeding the old one before its next packet.
        let own = OwnAccount {
            account_id: &self.me,
            include: self.ctx.include_own_console,
        };
        self.bridge.check_routes(&self.machine, own);
        outgoing
    }

    /// Our offer on a new connection.
    async fn offer(&mut self, member: MemberId, online_id: &str) -> Vec<Command> {
        let track = TrackFeed::default();
        let peer = Arc::new((self.new_peer)(member.clone(), track.clone()));
        match peer.offer().await {
            Ok(sdp) => {
                log::info!("offering voice to {online_id} (they had not offered)");
                let live = None;
                self.links
                    .insert(member.clone(), Link { peer, track, live });
                self.machine.offer_made(&member, sdp, Instant::now())
            }
            Err(e) => {
                log::warn!("could not make a voice offer for {online_id}: {e}");
                peer.close().await;
                self.machine.offer_failed(&member);
                Vec::new()
            }
        }
    }

    /// Our answer to the member's offer, on a new connection; their voice starts.
    async fn answer(&mut self, member: MemberId, online_id: &str, offer_sdp: &str) -> Vec<Command> {
        let track = TrackFeed::default();
        let peer = Arc::new((self.new_peer)(member.clone(), track.clone()));
        let answer = match peer.answer(offer_sdp).await {
            Ok(answer) => answer,
            Err(e) => {
                log::warn!("could not answer {online_id}'s voice offer: {e}");
                peer.close().await;
                return self.machine.answer_failed(&member, Some(e));
            }
        };
        let Some(params) = peer.negotiated().await else {
            peer.close().await;
            return self.machine.answer_failed(&member, None);
        };
        let Some((feed, info)) = self.start(&member, online_id, &params) else {
            let closing = peer.clone();
            tokio::spawn(async move { closing.close().await });
            return self.machine.answer_failed(&member, None);
        };
        log::info!(
            "answering {}'s voice offer (Opus at {} Hz)",
            if online_id.is_empty() {
                "a member"
            } else {
                online_id
            },
            params.clock_rate
        );
        track.route(Some(feed));
        let live = Some(info);
        self.links
            .insert(member.clone(), Link { peer, track, live });
        self.machine.answered(&member, answer, Instant::now())
    }

    /// The member's answer to our offer; their voice starts.
    async fn accept_answer(
        &mut self,
        member: MemberId,
        online_id: &str,
        answer_sdp: &str,
    ) -> Vec<Command> {
        let Some(peer) = self.links.get(&member).map(|l| l.peer.clone()) else {
            return Vec::new();
        };
        let params = match peer.accept_answer(answer_sdp).await {
            Ok(params) => params,
            Err(e) => {
                log::warn!("{online_id}'s answer to our voice offer was refused: {e}");
                return Vec::new();
            }
        };
        // A connection whose voice cannot start is closed (the machine drops the link).
        let started = match self.start(&member, online_id, &params) {
            Some((feed, info)) => {
                if let Some(link) = self.links.get_mut(&member) {
                    link.track.route(Some(feed));
                    link.live = Some(info);
                }
                true
            }
            None => false,
        };
        if started {
            log::info!(
                "{online_id} answered our voice offer (Opus at {} Hz)",
                params.clock_rate
            );
        }
        self.machine.answer_accepted(&member, started)
    }

    /// The member's pipeline for a negotiated link (their voice no longer comes from the
    /// bridge).
    fn start(
        &mut self,
        member: &MemberId,
        online_id: &str,
        params: &crate::voice::peer::sdp::AudioParams,
    ) -> Option<(SharedSender, MemberInfo)> {
        let info = member_info(&self.me, self.ctx.include_own_console, member, online_id);
        match start_voice(&*self.ctx.playout, &self.ctx.jitter, params, info.clone()) {
            Ok(feed) => {
                self.bridge.forget(member);
                Some((shared(feed), info))
            }
            Err(e) => {
                log::warn!("could not start the decoder for {online_id}: {e}");
                None
            }
        }
    }

    /// Closes the member's connection; a live one's playout entry goes back to silence (the
    /// member keeps their slot while in the party).
    fn close(&mut self, member: &str) {
        if let Some(link) = self.links.remove(member) {
            // Its packets stop here, whatever the closing connection still reads.
            link.track.route(None);
            // Closed in its own task: closing a connection takes tens of milliseconds, and
            // the follower's loop forwards the other members' packets meanwhile.
            let peer = link.peer;
            tokio::spawn(async move { peer.close().await });
            if let Some(info) = link.live {
                self.ctx.playout.add_member(info, Box::new(Silence));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::signalling::{ANSWER_WAIT, OFFER_GRACE, P2P_TIMEOUT};
    use super::*;
    use crate::audio::playout::MemberAudio;
    use crate::psn::custom_message::decode_payload;
    use crate::voice::peer::sdp::AudioParams;
    use crate::voice::peer::PeerError;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

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

    use super::super::signalling::tests::{from_member_to, ME, MEMBER};

    fn roster() -> HashMap<String, RosterMember> {
        let m = RosterMember {
            account_id: MEMBER.into(),
            online_id: "glare_ps".into(),
            platform: "PS5".into(),
        };
        HashMap::from([(format!("{MEMBER}/PS5"), m)])
    }

    fn context(playout: Arc<Recorded>) -> LinkContext {
        LinkContext {
            playout,
            status: Arc::new(Mutex::new(HubStatus::default())),
            include_own_console: false,
            peer_options: PeerOptions::loopback(),
            path: VoicePath::Auto,
            client: None,
            jitter: Arc::default(),
        }
    }

    fn links(playout: Arc<Recorded>) -> VoiceLinks {
        VoiceLinks::new(context(playout), ME, "session", mpsc::channel(256).0)
    }

    /// Voice links with the roster's member present since the returned instant.
    fn member_present() -> (
        Arc<Recorded>,
        VoiceLinks,
        HashMap<String, RosterMember>,
        Instant,
    ) {
        let playout = Arc::new(Recorded::default());
        let mut links = links(playout.clone());
        let roster = roster();
        let t0 = Instant::now();
        links.member_present(&roster.values().next().unwrap().clone(), t0);
        (playout, links, roster, t0)
    }

    /// The member's side: a customMessage from MEMBER to us.
    fn from_member(kind: &str, sdp: String) -> Delivered {
        from_member_to(ME, kind, &sdp)
    }

    fn sdp_of(payload: &str) -> String {
        decode_payload(payload).unwrap().signal.sdp
    }

    /// The member's offer goes in; our one reply comes back, checked to be an answer.
    async fn answer_their_offer(
        links: &mut VoiceLinks,
        roster: &HashMap<String, RosterMember>,
        their_offer: String,
    ) -> Outgoing {
        let reply = links
            .on_signal(roster, &from_member("offer", their_offer))
            .await
            .pop()
            .expect("their offer is answered");
        assert_eq!(decode_payload(&reply.1).unwrap().signal.kind, "answer");
        reply
    }

    fn member_peer() -> WebrtcPeer {
        WebrtcPeer::new("us".into(), PeerOptions::loopback(), mpsc::channel(256).0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_offer_before_the_grace_then_one() {
        let (_playout, mut links, roster, t0) = member_present();
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
        let (playout, mut links, roster, t0) = member_present();
        let ours = links.offers_due(&roster, t0 + OFFER_GRACE).await;
        assert_eq!(ours.len(), 1);

        // Meanwhile the member offered too, and (a member that yields) answered ours.
        let member_offering = member_peer();
        let their_offer = member_offering.offer().await.unwrap();
        let member_answering = member_peer();
        let their_answer = member_answering.answer(&sdp_of(&ours[0].1)).await.unwrap();

        let reply = answer_their_offer(&mut links, &roster, their_offer).await;
        assert_eq!(links.role(MEMBER), Some(LinkRole::Live));
        assert_eq!(*playout.added.lock().unwrap(), vec![MEMBER.to_owned()]);

        // The answer to our dropped offer changes nothing.
        let ignored = links
            .on_signal(&roster, &from_member("answer", their_answer))
            .await;
        assert!(ignored.is_empty());
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
        let (_playout, mut links, roster, t0) = member_present();
        let member = member_peer();
        let their_offer = member.offer().await.unwrap();
        answer_their_offer(&mut links, &roster, their_offer).await;
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

    /// A connection without a network: canned descriptions, counts its closes.
    struct FakePeer {
        closed: Arc<AtomicUsize>,
    }

    impl VoicePeer for FakePeer {
        async fn answer(&self, offer_sdp: &str) -> Result<String, PeerError> {
            Ok(format!("answer to {offer_sdp}"))
        }
        async fn offer(&self) -> Result<String, PeerError> {
            Ok("fake offer".into())
        }
        async fn accept_answer(&self, _: &str) -> Result<AudioParams, PeerError> {
            Ok(fake_params())
        }
        async fn negotiated(&self) -> Option<AudioParams> {
            Some(fake_params())
        }
        async fn add_remote_candidate(&self, _: &str) -> Result<(), PeerError> {
            Ok(())
        }
        async fn close(&self) {
            self.closed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn fake_params() -> AudioParams {
        crate::voice::peer::sdp::audio_params(
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 opus/16000/2\r\n",
        )
        .expect("Opus at 16 kHz")
    }

    /// The links carry out the machine's glare rule with any `VoicePeer`: our offering
    /// connection is closed, theirs answered, the member in the playout once; a member who
    /// leaves has their connection closed.
    #[tokio::test]
    async fn glare_through_the_links_with_a_fake_peer() {
        let playout = Arc::new(Recorded::default());
        let closed = Arc::new(AtomicUsize::new(0));
        let counter = closed.clone();
        let mut links = VoiceLinks::with_peers(
            context(playout.clone()),
            ME,
            "session",
            mpsc::channel(16).0,
            Box::new(move |_, _| FakePeer {
                closed: counter.clone(),
            }),
        );
        let roster = roster();
        let t0 = Instant::now();
        links.member_present(roster.values().next().unwrap(), t0);
        let ours = links.offers_due(&roster, t0 + OFFER_GRACE).await;
        assert_eq!(ours.len(), 1);
        assert_eq!(sdp_of(&ours[0].1), "fake offer");

        let reply = links
            .on_signal(&roster, &from_member("offer", "their offer".into()))
            .await;
        assert_eq!(reply.len(), 1);
        assert_eq!(sdp_of(&reply[0].1), "answer to their offer");
        assert_eq!(links.role(MEMBER), Some(LinkRole::Live));
        assert!(links
            .on_signal(&roster, &from_member("answer", "late".into()))
            .await
            .is_empty());
        assert_eq!(*playout.added.lock().unwrap(), vec![MEMBER.to_owned()]);
        // Our offering connection closes in its own task.
        for _ in 0..100 {
            if closed.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(closed.load(Ordering::SeqCst), 1);

        links.member_left(MEMBER).await;
        assert_eq!(links.role(MEMBER), None);
        // Their connection's playout entry went back to silence (added again) on the close.
        assert_eq!(playout.added.lock().unwrap().len(), 2);
        links.close_all().await;
    }
}
