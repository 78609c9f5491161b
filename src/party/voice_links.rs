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
//!
//! The session (src/party/session.rs) sends what these methods return and feeds them the
//! push events; this module owns the peers and starts each member's pipeline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::feed::{member_feed, PacketSender};
use super::session::PlayoutControl;
use super::status::{HubStatus, MemberState};
use crate::audio::playout::{MemberInfo, Silence};
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

/// A customMessage to send: recipient and payload.
pub type Outgoing = (Recipient, String);

/// What the links need from the session.
#[derive(Clone)]
pub struct LinkContext {
    pub playout: Arc<dyn PlayoutControl>,
    pub status: Arc<Mutex<HubStatus>>,
    /// Whether the user's own console is heard in the mix.
    pub include_own_console: bool,
    pub udp_addrs: Vec<String>,
}

impl LinkContext {
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
}

impl VoiceLinks {
    pub fn new(ctx: LinkContext, me: &str, peer_tx: mpsc::Sender<PeerEvent>) -> Self {
        VoiceLinks {
            ctx,
            me: me.to_owned(),
            peer_tx,
            links: HashMap::new(),
            plans: HashMap::new(),
            seq: 1,
        }
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
        self.plans.entry(m.account_id.clone()).or_insert(OfferPlan {
            due: now + OFFER_GRACE,
            sent: 0,
        });
    }

    fn wants_voice(&self, m: &RosterMember) -> bool {
        m.is_console() && (m.account_id != self.me || self.ctx.include_own_console)
    }

    /// Offers to every member whose grace ran out without a link. Returns the messages.
    pub async fn offers_due(
        &mut self,
        roster: &HashMap<String, RosterMember>,
        now: Instant,
    ) -> Vec<Outgoing> {
        let due: Vec<RosterMember> = roster
            .values()
            .filter(|m| self.wants_voice(m))
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
        let own_console = owner.account_id == self.me;
        let info = MemberInfo {
            account_id: owner.account_id.clone(),
            online_id: online_id.to_owned(),
            in_mix: !own_console || self.ctx.include_own_console,
            takes_slot: !own_console,
        };
        self.ctx.playout.add_member(info.clone(), Box::new(stream));
        self.links.insert(
            member.clone(),
            Link {
                peer,
                role: LinkRole::Live,
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
                if let Some(feed) = self
                    .links
                    .get_mut(&packet.member)
                    .and_then(|l| l.feed.as_mut())
                {
                    feed.0.send(&packet);
                }
            }
            PeerEvent::State { member, state } => {
                log::info!("voice connection of member {}: {state:?}", mask(&member));
                self.ctx
                    .set(|s| s.set_member_state(&member, MemberState::from(state)));
                if matches!(state, PeerState::Failed | PeerState::Closed) {
                    self.drop_link(&member).await;
                    // Offer again after the grace, unless they offer first.
                    if let Some(plan) = self.plans.get_mut(&*member) {
                        plan.due = Instant::now() + OFFER_GRACE;
                        plan.sent = 0;
                    }
                }
            }
        }
    }

    /// The member left the party.
    pub async fn member_left(&mut self, account_id: &str) {
        self.plans.remove(account_id);
        self.drop_link(account_id).await;
    }

    /// Closes the member's link; a live one's playout entry goes back to silence (the member
    /// keeps their slot while in the party).
    async fn drop_link(&mut self, account_id: &str) {
        if let Some(link) = self.links.remove(account_id) {
            link.peer.close().await;
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
        };
        VoiceLinks::new(ctx, ME, mpsc::channel(256).0)
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
}
