//! Voice signalling with the party's members (PROTOCOL.md sections 5-7) as a state machine
//! without I/O: it takes events (a member joined or left, a voice message arrived, a peer
//! reported, a message was sent or lost, the clock ticked) with `now`, and returns
//! [`Command`]s (make an offer, answer this offer, send this message, close this connection,
//! open the bridge, ...). [`super::voice_links`] carries them out with real peers and reports
//! the results back; the rules live here alone and are unit-tested without sockets.
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
//! - A message PSN refuses (4xx) counts against the offers a member gets; a transient loss
//!   (5xx, timeout, rate limit) does not.
//! - The rtcBridge, by the `voice_path` setting ([`VoicePath`]): `auto` puts a member on the
//!   bridge when peer-to-peer with them fails (the peer reports Failed, or is not connected
//!   [`P2P_TIMEOUT`] after our offer or answer) and keeps them there while they stay in the
//!   party; `bridge` uses only the bridge (no offers, members' offers ignored); `p2p` never
//!   opens one. A bridge that fails is opened again after [`BRIDGE_RETRY`].
//!
//! Every voice message that arrives goes through [`Signalling::accept`] first: the one place
//! that decides whether a message is taken or dropped (the rules in
//! [`super::signal_filter`]: addressed to our `MOBILE_APP` member and device, from the member
//! PSN names as the sender). A sender that fails the sender checks gets nothing from us for
//! the rest of the party: no link, no offer, no bridge stream.
//! - Members on a console or on the PlayStation App (other accounts) talk; of our own account
//!   only the console, when the user wants it heard.
//! - Each new offer to a member carries the next `sdp_sequence_number`; an answer carries the
//!   number of the offer it answers; `global_seq_num` counts every message we send.
//! - At most one link per member, never more links than members.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::cause::{Cause, Failure};
pub use super::settings::VoicePath;
use super::signal_filter::{judge, Delivered, FilterLog, Me, Verdict};
use super::status::MemberState;
use crate::psn::custom_message::{
    decode_payload, encode_payload, Message, Recipient, Signal, UserRef, PLATFORM_MOBILE_APP,
    PLATFORM_PS5,
};
use crate::psn::model::RosterMember;
use crate::voice::peer::{MemberId, PeerError, PeerState};

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

/// A customMessage to send: recipient and payload.
pub type Outgoing = (Recipient, String);

/// What became of an offer or answer we sent ([`Signalling::signal_sent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    Delivered,
    /// PSN did not pass it on; `transient`: it may next time (5xx, timeout, rate limit).
    Lost {
        transient: bool,
    },
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    /// We offered and wait for the answer.
    Offering,
    /// Negotiated (we answered their offer, or they answered ours); media flows.
    Live,
}

/// What the machine asks of the world. Those that name a report are answered with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Open a new connection to the member and make our offer (any earlier connection is
    /// closed by a [`Command::Close`] before). Report: [`Signalling::offer_made`].
    Offer { member: MemberId, online_id: String },
    /// Open a new connection that answers the member's offer and start their voice.
    /// Report: [`Signalling::answered`] or [`Signalling::answer_failed`].
    Answer {
        member: MemberId,
        online_id: String,
        offer_sdp: String,
    },
    /// Give the member's answer to our offering connection and start their voice.
    /// Report: [`Signalling::answer_accepted`] (nothing when the answer is refused).
    AcceptAnswer {
        member: MemberId,
        online_id: String,
        answer_sdp: String,
    },
    /// Send this customMessage.
    Send(Outgoing),
    /// Close the member's connection; their playout entry goes back to silence (they keep
    /// their slot while in the party).
    Close { member: MemberId },
    /// Show this state on the member's line.
    ShowState {
        member: MemberId,
        state: MemberState,
    },
    /// Open the rtcBridge. Report: [`Signalling::bridge_opened`].
    OpenBridge,
    /// Close the rtcBridge and every stream it carried.
    CloseBridge,
    /// Show this problem for the party (`None`: an earlier one is over).
    ShowProblem(Option<Cause>),
}

/// A voice message taken by [`Signalling::accept`]: what it is and whose audio it carries.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub signal: Signal,
    /// Whose audio mid 0 carries: the media's user, else the sender.
    pub owner: UserRef,
    /// The member on a console with that account (the user's own PS5 shares our account id).
    pub entry: Option<RosterMember>,
}

#[derive(Debug, Clone, Copy)]
struct Link {
    role: LinkRole,
    /// When we offered or answered (or PSN took our description), and whether it has
    /// connected since.
    opened: Instant,
    connected: bool,
}

/// When we may offer to a member, and how often we did.
#[derive(Debug, Clone, Copy)]
struct OfferPlan {
    due: Instant,
    sent: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BridgeState {
    Closed,
    Opening,
    Open,
    /// Failed; not opened again before this instant.
    RetryAt(Instant),
}

/// The fixed facts the machine decides by.
#[derive(Debug, Clone)]
pub struct SignallingConfig {
    /// Our account id.
    pub me: String,
    pub path: VoicePath,
    /// Whether the user's own console is heard in the mix.
    pub include_own_console: bool,
    /// Whether a bridge can be opened at all (no PSN client in some tests).
    pub bridge_available: bool,
    /// Our device id (`duid`): a message delivered to another device of ours is not ours.
    pub device_id: String,
}

/// Every member's signalling state in one party.
pub struct Signalling {
    config: SignallingConfig,
    links: HashMap<MemberId, Link>,
    plans: HashMap<String, OfferPlan>,
    seq: u64,
    /// Console members' online ids by account id.
    names: HashMap<String, String>,
    /// Members whose voice comes over the bridge (peer-to-peer failed).
    bridged: HashSet<String>,
    bridge: BridgeState,
    /// Where the description a [`Command::Offer`] or [`Command::Answer`] is making goes:
    /// the recipient in the message and on PSN's call.
    pending: HashMap<MemberId, (UserRef, String)>,
    /// Roster re-reads in flight, and the voice messages held meanwhile: a member who joined
    /// while push was down offers before we know them, and their offer must wait for the
    /// roster.
    roster_reads: usize,
    held: Vec<Delivered>,
    /// What the accept/drop place ignored and dropped.
    filter_log: FilterLog,
    /// Senders (account ids, as PSN named them) that failed the sender checks.
    untrusted: HashSet<String>,
    /// Our offers to each member so far (the next one's `sdp_sequence_number`).
    offers_made: HashMap<String, u64>,
    /// The `sdp_sequence_number` of the description a pending offer or answer will carry.
    pending_sequence: HashMap<MemberId, String>,
}

/// Voice messages held while the roster is re-read (a party has at most 16 members, each
/// offering every few seconds).
const MAX_HELD_SIGNALS: usize = 64;

impl Signalling {
    pub fn new(config: SignallingConfig) -> Self {
        Signalling {
            config,
            links: HashMap::new(),
            plans: HashMap::new(),
            seq: 1,
            names: HashMap::new(),
            bridged: HashSet::new(),
            bridge: BridgeState::Closed,
            pending: HashMap::new(),
            roster_reads: 0,
            held: Vec::new(),
            filter_log: FilterLog::default(),
            untrusted: HashSet::new(),
            offers_made: HashMap::new(),
            pending_sequence: HashMap::new(),
        }
    }

    /// Whether the sender failed the sender checks (their bridge stream is not played either).
    pub fn distrusted(&self, account_id: &str) -> bool {
        self.untrusted.contains(account_id)
    }

    /// Whether the member's voice comes over the bridge.
    pub fn on_bridge(&self, account_id: &str) -> bool {
        self.config.path == VoicePath::Bridge || self.bridged.contains(account_id)
    }

    /// The member's online id, if they are a console member whose voice we want.
    pub fn online_id(&self, account_id: &str) -> Option<&str> {
        self.names.get(account_id).map(String::as_str)
    }

    /// The link state of a member (for tests and status).
    pub fn role(&self, account_id: &str) -> Option<LinkRole> {
        self.links.get(account_id).map(|l| l.role)
    }

    fn wants_voice(&self, m: &RosterMember) -> bool {
        if self.untrusted.contains(&m.account_id) {
            return false;
        }
        if m.account_id == self.config.me {
            return m.is_console() && self.config.include_own_console;
        }
        m.has_voice()
    }

    /// A console member is in the party from now on: our offer is due after the grace.
    pub fn member_joined(&mut self, m: &RosterMember, now: Instant) {
        if !self.wants_voice(m) {
            return;
        }
        self.names.insert(m.account_id.clone(), m.online_id.clone());
        if self.config.path == VoicePath::Bridge {
            return;
        }
        self.plans.entry(m.account_id.clone()).or_insert(OfferPlan {
            due: now + OFFER_GRACE,
            sent: 0,
        });
    }

    /// The member left the party.
    pub fn member_left(&mut self, account_id: &str) -> Vec<Command> {
        self.plans.remove(account_id);
        self.names.remove(account_id);
        self.bridged.remove(account_id);
        let mut out = Vec::new();
        self.drop_link(account_id, &mut out);
        out
    }

    /// Every 250 ms or so: links that did not connect in time fail, the bridge opens if it is
    /// wanted, and offers whose grace ran out go out.
    pub fn tick(&mut self, roster: &HashMap<String, RosterMember>, now: Instant) -> Vec<Command> {
        let mut out = Vec::new();
        let stalled: Vec<MemberId> = self
            .links
            .iter()
            .filter(|(_, l)| !l.connected && now.saturating_duration_since(l.opened) >= P2P_TIMEOUT)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stalled {
            log::info!(
                "voice with member {} did not connect within {P2P_TIMEOUT:?}",
                mask(&id)
            );
            self.p2p_failed(&id, now, &mut out);
        }
        self.open_bridge_if_wanted(now, &mut out);
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
        for m in due {
            self.drop_link(&m.account_id, &mut out);
            if let Some(plan) = self.plans.get_mut(&m.account_id) {
                plan.sent += 1;
                plan.due = now + ANSWER_WAIT;
            }
            let member: MemberId = m.account_id.as_str().into();
            let to = UserRef {
                account_id: m.account_id.clone(),
                platform: platform_code(&m.platform),
            };
            self.pending
                .insert(member.clone(), (to, m.platform.clone()));
            let offers = self.offers_made.entry(m.account_id.clone()).or_insert(0);
            *offers += 1;
            self.pending_sequence
                .insert(member.clone(), offers.to_string());
            out.push(Command::Offer {
                member,
                online_id: m.online_id.clone(),
            });
        }
        out
    }

    /// Our offer is made (on the connection [`Command::Offer`] opened): it goes out.
    pub fn offer_made(&mut self, member: &MemberId, sdp: String, now: Instant) -> Vec<Command> {
        self.description_made(member, LinkRole::Offering, "offer", sdp, now)
    }

    /// Our offer or answer is made: the link is open from `now`, and the description goes to
    /// whoever `pending` names.
    fn description_made(
        &mut self,
        member: &MemberId,
        role: LinkRole,
        kind: &str,
        sdp: String,
        now: Instant,
    ) -> Vec<Command> {
        let Some((to, platform)) = self.pending.remove(member) else {
            return Vec::new();
        };
        self.links.insert(
            member.clone(),
            Link {
                role,
                opened: now,
                connected: false,
            },
        );
        vec![
            Command::ShowState {
                member: member.clone(),
                state: MemberState::Connecting,
            },
            Command::Send(self.message(kind, to, &platform, sdp)),
        ]
    }

    /// Our offer could not be made (the connection is closed).
    pub fn offer_failed(&mut self, member: &MemberId) {
        self.pending.remove(member);
    }

    /// Whether a voice message is taken, and what it is: the one place where an incoming
    /// message is accepted or dropped. Only offers and answers addressed to our member (and
    /// device), from the member PSN names as the sender and whose voice we want, pass; that
    /// member is the audio's owner. A sender that fails the checks is distrusted (see
    /// [`Signalling::take_signal`]).
    pub fn accept(
        &mut self,
        roster: &HashMap<String, RosterMember>,
        delivered: &Delivered,
    ) -> Option<Accepted> {
        let message = match decode_payload(&delivered.payload) {
            Ok(message) => message,
            Err(e) => {
                log::warn!("a voice message could not be read: {e}");
                return None;
            }
        };
        let me = Me {
            account_id: &self.config.me,
            device_id: &self.config.device_id,
        };
        let verdict = judge(
            me,
            roster.values(),
            &delivered.from,
            &delivered.to,
            &message,
        );
        self.filter_log.note(&verdict, &delivered.from);
        let sender = match verdict {
            Verdict::Accept(sender) => sender,
            Verdict::NotForUs(_) => return None,
            Verdict::Untrusted(_) => {
                let account = &delivered.from.account_id;
                if !account.is_empty() && *account != self.config.me {
                    self.untrusted.insert(account.clone());
                }
                return None;
            }
        };
        let signal = message.signal;
        if !matches!(signal.kind.as_str(), "offer" | "answer") || !self.wants_voice(&sender) {
            return None;
        }
        let owner = UserRef {
            account_id: sender.account_id.clone(),
            platform: signal.from.platform,
        };
        Some(Accepted {
            signal,
            owner,
            entry: Some(sender),
        })
    }

    /// The roster is being re-read: voice messages wait for it.
    pub fn roster_read_started(&mut self) {
        self.roster_reads += 1;
    }

    /// A roster re-read finished (`roster` is what we know now, with its result applied):
    /// once none is in flight, the messages held meanwhile are taken in the order they came.
    pub fn roster_read_done(&mut self, roster: &HashMap<String, RosterMember>) -> Vec<Command> {
        self.roster_reads = self.roster_reads.saturating_sub(1);
        if self.roster_reads > 0 {
            return Vec::new();
        }
        std::mem::take(&mut self.held)
            .iter()
            .flat_map(|delivered| self.take_signal(roster, delivered))
            .collect()
    }

    /// A customMessage from the party: a member's offer (answered) or their answer to ours.
    /// While the roster is re-read it is held (see [`Signalling::roster_read_done`]).
    pub fn signal_received(
        &mut self,
        roster: &HashMap<String, RosterMember>,
        delivered: &Delivered,
    ) -> Vec<Command> {
        if self.roster_reads > 0 {
            if self.held.len() < MAX_HELD_SIGNALS {
                self.held.push(delivered.clone());
            }
            return Vec::new();
        }
        self.take_signal(roster, delivered)
    }

    fn take_signal(
        &mut self,
        roster: &HashMap<String, RosterMember>,
        delivered: &Delivered,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        let was_distrusted = self.untrusted.len();
        let accepted = self.accept(roster, delivered);
        if self.untrusted.len() > was_distrusted {
            // Newly distrusted: whatever they have of ours goes.
            let account = delivered.from.account_id.as_str();
            self.plans.remove(account);
            self.bridged.remove(account);
            self.pending.remove(account);
            self.drop_link(account, &mut out);
        }
        let Some(accepted) = accepted else {
            return out;
        };
        let online_id = accepted
            .entry
            .as_ref()
            .map(|m| m.online_id.clone())
            .unwrap_or_default();
        let owner = accepted.owner.account_id.as_str();
        let member: MemberId = owner.into();
        if accepted.signal.kind == "offer" {
            if self.on_bridge(owner) {
                log::debug!("{online_id} offered, but their voice comes over the bridge");
                return out;
            }
            if self.role(owner) == Some(LinkRole::Offering) {
                // Glare: the member's offer wins (module docs).
                log::info!("{online_id} offered while our offer was out: answering theirs");
            }
            // One link per member (a new offer replaces theirs), never more links than members.
            let members = roster.values().filter(|m| self.wants_voice(m)).count();
            if !self.links.contains_key(owner) && self.links.len() >= members {
                log::warn!(
                    "ignoring a voice offer from {}: as many links as members already",
                    mask(owner)
                );
                return out;
            }
            self.drop_link(owner, &mut out);
            let platform = accepted
                .entry
                .as_ref()
                .map_or("PS5", |m| m.platform.as_str())
                .to_owned();
            // The answer goes back to whoever sent the offer, with its sequence number.
            self.pending
                .insert(member.clone(), (accepted.signal.from.clone(), platform));
            self.pending_sequence
                .insert(member.clone(), accepted.signal.sdp_sequence_number.clone());
            out.push(Command::Answer {
                member,
                online_id,
                offer_sdp: accepted.signal.sdp,
            });
        } else if self.role(owner) == Some(LinkRole::Offering) {
            out.push(Command::AcceptAnswer {
                member,
                online_id,
                answer_sdp: accepted.signal.sdp,
            });
        } else {
            // An answer to an offer we dropped (glare) or answered already.
            log::debug!("ignoring an answer from {online_id}: no offer of ours is open");
        }
        out
    }

    /// Our answer to the member's offer is made and their voice started: it goes out.
    pub fn answered(&mut self, member: &MemberId, sdp: String, now: Instant) -> Vec<Command> {
        self.description_made(member, LinkRole::Live, "answer", sdp, now)
    }

    /// Answering the member's offer failed (the connection is closed); `why`, if given, is
    /// shown on their line.
    pub fn answer_failed(&mut self, member: &MemberId, why: Option<PeerError>) -> Vec<Command> {
        self.pending.remove(member);
        why.map(|why| Command::ShowState {
            member: member.clone(),
            state: MemberState::Failed(Failure::Peer(why)),
        })
        .into_iter()
        .collect()
    }

    /// The member's answer to our offer was taken; `started`: their voice is in the playout
    /// (else the connection is closed).
    pub fn answer_accepted(&mut self, member: &MemberId, started: bool) -> Vec<Command> {
        let mut out = Vec::new();
        if !started {
            self.drop_link(member, &mut out);
            return out;
        }
        if let Some(link) = self.links.get_mut(member) {
            // When we offered stays: the connect timeout counts from there.
            link.role = LinkRole::Live;
            link.connected = false;
        }
        out.push(Command::ShowState {
            member: member.clone(),
            state: MemberState::Connecting,
        });
        out
    }

    /// What became of our offer or answer to `account_id`, queued for sending at `queued_at`.
    /// The time a link has to connect ([`P2P_TIMEOUT`]) runs from when the member can have our
    /// description: a PSN outage that loses it is not a failed peer-to-peer path and must not
    /// send the member to the bridge. A lost description leaves nothing to connect: the link is
    /// dropped and our own offer goes out after the grace (unless the member offers again
    /// first), without counting against [`MAX_OFFERS`] when the loss was transient (a refusal
    /// counts, so a member PSN will not pass messages to gets at most that many offers). A
    /// result about an older link (one replaced since the message was queued) changes
    /// nothing; the flag says whether it applied.
    pub fn signal_sent(
        &mut self,
        account_id: &str,
        queued_at: Instant,
        outcome: SignalOutcome,
        now: Instant,
    ) -> (bool, Vec<Command>) {
        let mut out = Vec::new();
        let Some(link) = self.links.get_mut(account_id) else {
            return (false, out);
        };
        if link.opened > queued_at {
            return (false, out);
        }
        let transient = match outcome {
            SignalOutcome::Delivered => {
                link.opened = now;
                return (true, out);
            }
            SignalOutcome::Lost { transient } => transient,
        };
        self.drop_link(account_id, &mut out);
        if self.config.path == VoicePath::Bridge {
            return (true, out);
        }
        let plan = self
            .plans
            .entry(account_id.to_owned())
            .or_insert(OfferPlan { due: now, sent: 0 });
        if transient {
            plan.sent = plan.sent.saturating_sub(1);
        }
        plan.due = now + OFFER_GRACE;
        (true, out)
    }

    /// A member's connection changed state.
    pub fn peer_state(
        &mut self,
        member: &MemberId,
        state: PeerState,
        now: Instant,
    ) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(link) = self.links.get_mut(member) else {
            return out; // a connection we closed already
        };
        log::info!("voice connection of member {}: {state:?}", mask(member));
        if state == PeerState::Connected {
            link.connected = true;
        }
        out.push(Command::ShowState {
            member: member.clone(),
            state: MemberState::from(state),
        });
        if matches!(state, PeerState::Failed | PeerState::Closed) {
            self.p2p_failed(member, now, &mut out);
        }
        out
    }

    /// The bridge's own connection changed state: a dead bridge is closed and opened again
    /// after [`BRIDGE_RETRY`].
    pub fn bridge_state(&mut self, state: PeerState, now: Instant) -> Vec<Command> {
        log::info!("rtcBridge connection: {state:?}");
        if matches!(state, PeerState::Failed | PeerState::Closed)
            && self.bridge == BridgeState::Open
        {
            self.bridge = BridgeState::RetryAt(now + BRIDGE_RETRY);
            return vec![Command::CloseBridge];
        }
        Vec::new()
    }

    /// What became of [`Command::OpenBridge`].
    pub fn bridge_opened(&mut self, opened: bool, now: Instant) -> Vec<Command> {
        if opened {
            self.bridge = BridgeState::Open;
            // PSN answers again: an earlier failure's error is over.
            vec![Command::ShowProblem(None)]
        } else {
            self.bridge = BridgeState::RetryAt(now + BRIDGE_RETRY);
            vec![Command::ShowProblem(Some(Cause::BridgeFailed {
                retry_secs: BRIDGE_RETRY.as_secs(),
            }))]
        }
    }

    /// The party is over for us: every link and the bridge close.
    pub fn close_all(&mut self) -> Vec<Command> {
        let mut out: Vec<Command> = self
            .links
            .drain()
            .map(|(member, _)| Command::Close { member })
            .collect();
        self.plans.clear();
        self.pending.clear();
        self.bridge = BridgeState::Closed;
        out.push(Command::CloseBridge);
        out
    }

    /// Peer-to-peer with `account_id` failed: on `auto` the member goes on the bridge, else we
    /// offer again after the grace.
    fn p2p_failed(&mut self, account_id: &str, now: Instant, out: &mut Vec<Command>) {
        self.drop_link(account_id, out);
        if self.config.path == VoicePath::Auto && self.names.contains_key(account_id) {
            if self.bridged.insert(account_id.to_owned()) {
                log::info!("member {} goes on the bridge", mask(account_id));
            }
        } else if let Some(plan) = self.plans.get_mut(account_id) {
            plan.due = now + OFFER_GRACE;
            plan.sent = 0;
        }
    }

    fn open_bridge_if_wanted(&mut self, now: Instant, out: &mut Vec<Command>) {
        let wanted = match self.config.path {
            VoicePath::Bridge => true,
            VoicePath::Auto => !self.bridged.is_empty(),
            VoicePath::P2p => false,
        };
        let may_open = match self.bridge {
            BridgeState::Closed => true,
            BridgeState::RetryAt(at) => now >= at,
            BridgeState::Opening | BridgeState::Open => false,
        };
        if wanted && may_open && self.config.bridge_available {
            self.bridge = BridgeState::Opening;
            out.push(Command::OpenBridge);
        }
    }

    fn drop_link(&mut self, account_id: &str, out: &mut Vec<Command>) {
        if let Some((member, _)) = self.links.remove_entry(account_id) {
            out.push(Command::Close { member });
        }
    }

    fn message(&mut self, kind: &str, to: UserRef, platform: &str, sdp: String) -> Outgoing {
        let from = UserRef {
            account_id: self.config.me.clone(),
            platform: PLATFORM_MOBILE_APP,
        };
        self.seq += 1;
        let recipient = Recipient {
            account_id: to.account_id.clone(),
            platform: platform.to_owned(),
        };
        let sequence = self
            .pending_sequence
            .remove(to.account_id.as_str())
            .unwrap_or_else(|| "1".into());
        let mut signal = Signal::new(kind, from, to, sdp, self.seq);
        signal.sdp_sequence_number = sequence;
        (recipient, encode_payload(&Message::from_signal(signal)))
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
pub(crate) mod tests {
    use super::*;

    pub(crate) const ME: &str = "1000";
    pub(crate) const MEMBER: &str = "2000";

    fn member() -> RosterMember {
        RosterMember {
            account_id: MEMBER.into(),
            online_id: "glare_ps".into(),
            platform: "PS5".into(),
        }
    }

    fn roster() -> HashMap<String, RosterMember> {
        HashMap::from([(format!("{MEMBER}/PS5"), member())])
    }

    fn machine(path: VoicePath) -> Signalling {
        Signalling::new(SignallingConfig {
            me: ME.into(),
            path,
            include_own_console: false,
            bridge_available: true,
            device_id: "dev-1".into(),
        })
    }

    fn id() -> MemberId {
        MEMBER.into()
    }

    /// The command to answer the member's offer `sdp`.
    fn answer(sdp: &str) -> Command {
        Command::Answer {
            member: id(),
            online_id: member().online_id,
            offer_sdp: sdp.into(),
        }
    }

    /// The command to take the member's answer `sdp` to our offer.
    fn accept(sdp: &str) -> Command {
        Command::AcceptAnswer {
            member: id(),
            online_id: member().online_id,
            answer_sdp: sdp.into(),
        }
    }

    /// A customMessage from MEMBER to `to`, as push delivers it (PSN names MEMBER; the voice
    /// links' tests use it too).
    pub(crate) fn from_member_to(to: &str, kind: &str, sdp: &str) -> Delivered {
        delivered(from_member_payload(to, kind, sdp))
    }

    pub(crate) fn delivered(payload: String) -> Delivered {
        Delivered {
            from: crate::psn::push::PushFrom {
                account_id: MEMBER.into(),
                platform: "PS5".into(),
                ..Default::default()
            },
            to: Default::default(),
            payload,
        }
    }

    fn from_member_payload(to: &str, kind: &str, sdp: &str) -> String {
        let member = UserRef {
            account_id: MEMBER.into(),
            platform: PLATFORM_PS5,
        };
        let me = UserRef {
            account_id: to.into(),
            platform: PLATFORM_MOBILE_APP,
        };
        encode_payload(&Message::from_signal(Signal::new(
            kind,
            member,
            me,
            sdp.into(),
            7,
        )))
    }

    fn from_member(kind: &str, sdp: &str) -> Delivered {
        from_member_to(ME, kind, sdp)
    }

    fn offers(commands: &[Command]) -> usize {
        commands
            .iter()
            .filter(|c| matches!(c, Command::Offer { .. }))
            .count()
    }

    /// The kind and recipient of each message sent.
    fn sent(commands: &[Command]) -> Vec<(String, String)> {
        commands
            .iter()
            .filter_map(|c| match c {
                Command::Send((to, payload)) => {
                    let signal = decode_payload(payload).unwrap().signal;
                    assert_eq!(signal.from.account_id, ME);
                    Some((signal.kind, to.account_id.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Our offer to MEMBER at `now`, made and out.
    fn offer_out(m: &mut Signalling, now: Instant) {
        let commands = m.tick(&roster(), now);
        assert_eq!(offers(&commands), 1, "{commands:?}");
        let out = m.offer_made(&id(), "our-offer".into(), now);
        assert_eq!(sent(&out), vec![("offer".into(), MEMBER.into())]);
        assert_eq!(m.role(MEMBER), Some(LinkRole::Offering));
    }

    /// A machine whose member joined at the returned instant and has our offer since the grace.
    fn offering(path: VoicePath) -> (Signalling, Instant) {
        let mut m = machine(path);
        let t0 = Instant::now();
        m.member_joined(&member(), t0);
        offer_out(&mut m, t0 + OFFER_GRACE);
        (m, t0)
    }

    /// A machine that answered its member's offer at the returned instant.
    fn answering(path: VoicePath) -> (Signalling, Instant) {
        let mut m = machine(path);
        let t0 = Instant::now();
        m.member_joined(&member(), t0);
        m.signal_received(&roster(), &from_member("offer", "theirs"));
        m.answered(&id(), "ours".into(), t0);
        (m, t0)
    }

    #[test]
    fn no_offer_before_the_grace_then_one_and_not_again_while_it_is_open() {
        let mut m = machine(VoicePath::Auto);
        let t0 = Instant::now();
        m.member_joined(&member(), t0);
        assert_eq!(offers(&m.tick(&roster(), t0 + OFFER_GRACE / 2)), 0);
        offer_out(&mut m, t0 + OFFER_GRACE);
        assert_eq!(offers(&m.tick(&roster(), t0 + OFFER_GRACE)), 0);
    }

    /// Both sides offered at once: the member's offer wins, the answer to ours is ignored,
    /// and no further offer goes out while the link is live.
    #[test]
    fn glare_the_members_offer_wins() {
        let (mut m, t0) = offering(VoicePath::Auto);

        let commands = m.signal_received(&roster(), &from_member("offer", "their-offer"));
        assert_eq!(
            commands,
            vec![Command::Close { member: id() }, answer("their-offer")]
        );
        let out = m.answered(&id(), "our-answer".into(), t0 + OFFER_GRACE);
        assert_eq!(sent(&out), vec![("answer".into(), MEMBER.into())]);
        assert_eq!(m.role(MEMBER), Some(LinkRole::Live));

        // The answer to our dropped offer changes nothing.
        assert!(m
            .signal_received(&roster(), &from_member("answer", "late"))
            .is_empty());
        assert_eq!(m.role(MEMBER), Some(LinkRole::Live));
        let t1 = t0 + OFFER_GRACE + Duration::from_secs(1);
        m.peer_state(&id(), PeerState::Connected, t1);
        assert_eq!(offers(&m.tick(&roster(), t1 + ANSWER_WAIT * 2)), 0);
    }

    /// Their answer to our open offer completes the link; the connect timeout still counts
    /// from our offer.
    #[test]
    fn their_answer_completes_our_offer() {
        let (mut m, t0) = offering(VoicePath::P2p);
        let commands = m.signal_received(&roster(), &from_member("answer", "their-answer"));
        assert_eq!(commands, vec![accept("their-answer")]);
        m.answer_accepted(&id(), true);
        assert_eq!(m.role(MEMBER), Some(LinkRole::Live));
        // Not connected P2P_TIMEOUT after the offer: failed, offered again after the grace.
        let stalled = t0 + OFFER_GRACE + P2P_TIMEOUT;
        let commands = m.tick(&roster(), stalled);
        assert!(commands.contains(&Command::Close { member: id() }));
        assert_eq!(m.role(MEMBER), None);
        assert_eq!(offers(&m.tick(&roster(), stalled + OFFER_GRACE)), 1);
    }

    /// Only offers and answers addressed to us pass `accept`.
    #[test]
    fn accept_takes_only_our_offers_and_answers() {
        let mut m = machine(VoicePath::Auto);
        let r = roster();
        assert!(m
            .accept(&r, &delivered("not a voice message".into()))
            .is_none());
        assert!(m
            .accept(&r, &from_member_to("3000", "offer", "x"))
            .is_none());
        assert!(m.accept(&r, &from_member("candidate", "x")).is_none());
        let taken = m.accept(&r, &from_member("offer", "x")).unwrap();
        assert_eq!(taken.owner.account_id, MEMBER);
        assert_eq!(taken.entry.unwrap().online_id, "glare_ps");
    }

    /// An offer nobody answers is not repeated before ANSWER_WAIT; as P2P_TIMEOUT is no longer,
    /// the link has stalled by then and (on `p2p`) is offered again after the grace.
    #[test]
    fn an_unanswered_offer_is_made_again() {
        let (mut m, t0) = offering(VoicePath::P2p);
        let first = t0 + OFFER_GRACE;
        assert_eq!(offers(&m.tick(&roster(), first + ANSWER_WAIT / 2)), 0);
        assert!(P2P_TIMEOUT <= ANSWER_WAIT);
        let commands = m.tick(&roster(), first + ANSWER_WAIT);
        assert_eq!(commands, vec![Command::Close { member: id() }]);
        offer_out(&mut m, first + ANSWER_WAIT + OFFER_GRACE);
    }

    /// A message PSN refuses (4xx) counts against MAX_OFFERS; after that many no offer goes
    /// out (their own offer is still answered). A transient loss (5xx) does not count.
    #[test]
    fn refused_messages_count_against_the_offers_transient_losses_do_not() {
        let mut m = machine(VoicePath::P2p);
        let t0 = Instant::now();
        m.member_joined(&member(), t0);
        let mut now = t0 + OFFER_GRACE;
        // Transient losses: offers keep coming.
        for _ in 0..MAX_OFFERS + 2 {
            offer_out(&mut m, now);
            let lost = SignalOutcome::Lost { transient: true };
            let (applies, commands) = m.signal_sent(MEMBER, now, lost, now);
            assert!(applies);
            assert_eq!(commands, vec![Command::Close { member: id() }]);
            now += OFFER_GRACE;
        }
        // Refusals: MAX_OFFERS in all (the last transient one's count was given back).
        let refused = SignalOutcome::Lost { transient: false };
        for _ in 0..MAX_OFFERS {
            offer_out(&mut m, now);
            assert!(m.signal_sent(MEMBER, now, refused, now).0);
            now += OFFER_GRACE;
        }
        assert_eq!(offers(&m.tick(&roster(), now + ANSWER_WAIT * 4)), 0);
        let commands = m.signal_received(&roster(), &from_member("offer", "theirs"));
        assert!(matches!(commands.last(), Some(Command::Answer { .. })));
    }

    /// A result about a message queued before the current link changes nothing; a delivered
    /// one restarts the link's connect clock.
    #[test]
    fn stale_send_results_are_ignored_and_delivery_restarts_the_clock() {
        let (mut m, t0) = offering(VoicePath::Auto);
        let offered = t0 + OFFER_GRACE;
        let stale = SignalOutcome::Lost { transient: true };
        assert!(!m.signal_sent(MEMBER, t0, stale, offered).0);
        assert_eq!(m.role(MEMBER), Some(LinkRole::Offering));
        let delivered = offered + Duration::from_secs(4);
        assert!(
            m.signal_sent(MEMBER, offered, SignalOutcome::Delivered, delivered)
                .0
        );
        // P2P_TIMEOUT after the offer but not after its delivery: not stalled (on `auto` a
        // stalled member goes on the bridge).
        let commands = m.tick(&roster(), offered + P2P_TIMEOUT);
        assert!(!commands.contains(&Command::OpenBridge));
        assert!(!m.on_bridge(MEMBER));
    }

    /// PSN lost our answer: no peer-to-peer failure, so not the bridge; our offer follows.
    #[test]
    fn a_lost_answer_is_followed_by_our_offer_not_the_bridge() {
        let (mut m, t0) = answering(VoicePath::Auto);
        let lost = t0 + Duration::from_secs(1);
        let outcome = SignalOutcome::Lost { transient: true };
        assert!(m.signal_sent(MEMBER, t0, outcome, lost).0);
        assert_eq!(m.role(MEMBER), None, "nothing left to connect");
        let later = lost + P2P_TIMEOUT + OFFER_GRACE;
        let commands = m.tick(&roster(), later);
        assert!(!m.on_bridge(MEMBER));
        assert!(!commands.contains(&Command::OpenBridge));
        assert_eq!(offers(&commands), 1);
    }

    /// On `auto`, a member peer-to-peer fails with goes on the bridge and stays there; their
    /// offers are no longer answered. A bridge that fails to open is retried after
    /// BRIDGE_RETRY; one that dies is closed and reopened likewise.
    #[test]
    fn auto_falls_back_to_the_bridge() {
        let (mut m, t0) = answering(VoicePath::Auto);
        let failed = t0 + Duration::from_secs(1);
        let commands = m.peer_state(&id(), PeerState::Failed, failed);
        assert!(commands.contains(&Command::Close { member: id() }));
        assert!(m.on_bridge(MEMBER));
        assert!(m
            .signal_received(&roster(), &from_member("offer", "again"))
            .is_empty());

        let commands = m.tick(&roster(), failed);
        assert_eq!(commands, vec![Command::OpenBridge]);
        assert!(m.tick(&roster(), failed).is_empty(), "opening already");
        assert_eq!(
            m.bridge_opened(false, failed),
            vec![Command::ShowProblem(Some(Cause::BridgeFailed {
                retry_secs: BRIDGE_RETRY.as_secs()
            }))]
        );
        assert!(m.tick(&roster(), failed + BRIDGE_RETRY / 2).is_empty());
        let retry = failed + BRIDGE_RETRY;
        assert_eq!(m.tick(&roster(), retry), vec![Command::OpenBridge]);
        assert_eq!(
            m.bridge_opened(true, retry),
            vec![Command::ShowProblem(None)]
        );
        assert!(m.tick(&roster(), retry + BRIDGE_RETRY).is_empty());
        assert_eq!(
            m.bridge_state(PeerState::Failed, retry),
            vec![Command::CloseBridge]
        );
        assert!(m.tick(&roster(), retry).is_empty());
        assert_eq!(
            m.tick(&roster(), retry + BRIDGE_RETRY),
            vec![Command::OpenBridge]
        );
        // Leaving takes them off the bridge.
        m.member_left(MEMBER);
        assert!(!m.on_bridge(MEMBER));
    }

    /// `p2p` never opens the bridge; `bridge` opens it at once and never offers or answers.
    #[test]
    fn p2p_never_bridges_and_bridge_never_offers() {
        let t0 = Instant::now();
        let mut p2p = machine(VoicePath::P2p);
        p2p.member_joined(&member(), t0);
        p2p.signal_received(&roster(), &from_member("offer", "theirs"));
        p2p.answered(&id(), "ours".into(), t0);
        p2p.peer_state(&id(), PeerState::Failed, t0);
        assert!(!p2p.on_bridge(MEMBER));
        let commands = p2p.tick(&roster(), t0 + OFFER_GRACE);
        assert!(!commands.contains(&Command::OpenBridge));
        assert_eq!(offers(&commands), 1);

        let mut bridge = machine(VoicePath::Bridge);
        bridge.member_joined(&member(), t0);
        let commands = bridge.tick(&roster(), t0 + OFFER_GRACE * 10);
        assert_eq!(commands, vec![Command::OpenBridge]);
        assert!(bridge
            .signal_received(&roster(), &from_member("offer", "theirs"))
            .is_empty());
    }

    /// Messages that come while the roster is re-read wait for it, then are taken in order
    /// (the member who joined while push was down is known by then).
    #[test]
    fn messages_wait_for_the_roster_re_read() {
        let mut m = machine(VoicePath::Auto);
        m.roster_read_started();
        m.roster_read_started();
        let unknown = HashMap::new();
        assert!(m
            .signal_received(&unknown, &from_member("offer", "first"))
            .is_empty());
        assert!(m
            .signal_received(&unknown, &from_member("offer", "second"))
            .is_empty());
        assert!(
            m.roster_read_done(&unknown).is_empty(),
            "one read still out"
        );
        let t0 = Instant::now();
        m.member_joined(&member(), t0);
        let commands = m.roster_read_done(&roster());
        let answered: Vec<&Command> = commands
            .iter()
            .filter(|c| matches!(c, Command::Answer { .. }))
            .collect();
        assert_eq!(answered, vec![&answer("first"), &answer("second")]);
    }

    /// The user's own console is left alone unless they chose to hear it.
    #[test]
    fn own_console_only_when_chosen() {
        let own = RosterMember {
            account_id: ME.into(),
            online_id: "me".into(),
            platform: "PS5".into(),
        };
        let roster = HashMap::from([(format!("{ME}/PS5"), own.clone())]);
        let t0 = Instant::now();
        let mut m = machine(VoicePath::Auto);
        m.member_joined(&own, t0);
        assert_eq!(offers(&m.tick(&roster, t0 + OFFER_GRACE)), 0);
        let mut m = Signalling::new(SignallingConfig {
            me: ME.into(),
            path: VoicePath::Auto,
            include_own_console: true,
            bridge_available: true,
            device_id: "dev-1".into(),
        });
        m.member_joined(&own, t0);
        assert_eq!(offers(&m.tick(&roster, t0 + OFFER_GRACE)), 1);
    }

    /// Issue 15: an offer meant for the user's console (our account, platform PS5) gets no
    /// answer; a sender who writes another member's identity is dropped and gets no offer of
    /// ours from then on; re-offers count `sdp_sequence_number` up and answers echo it.
    #[test]
    fn only_our_own_messages_from_the_real_sender_and_counted_offers() {
        let t0 = Instant::now();
        let mut m = machine(VoicePath::P2p);
        m.member_joined(&member(), t0);
        // To our account, but to the console.
        let mut to_console = decode_payload(&from_member("offer", "x").payload).unwrap();
        to_console.signal.to.platform = PLATFORM_PS5;
        let commands = m.signal_received(&roster(), &delivered(encode_payload(&to_console)));
        assert!(commands.is_empty(), "{commands:?}");
        // Our offers: "1", then "2" after ANSWER_WAIT.
        let sequence = |commands: &[Command]| -> Vec<String> {
            commands
                .iter()
                .filter_map(|c| match c {
                    Command::Send((_, payload)) => {
                        Some(decode_payload(payload).unwrap().signal.sdp_sequence_number)
                    }
                    _ => None,
                })
                .collect()
        };
        m.tick(&roster(), t0 + OFFER_GRACE);
        let first = m.offer_made(&id(), "o1".into(), t0 + OFFER_GRACE);
        // Unanswered, it stalls; after the grace the next offer goes out.
        let stalled = t0 + OFFER_GRACE + ANSWER_WAIT;
        m.tick(&roster(), stalled);
        m.tick(&roster(), stalled + OFFER_GRACE);
        let second = m.offer_made(&id(), "o2".into(), stalled + OFFER_GRACE);
        assert_eq!(
            (sequence(&first), sequence(&second)),
            (vec!["1".into()], vec!["2".into()])
        );
        // Their offer number 5 is answered with 5.
        let mut theirs = decode_payload(&from_member("offer", "theirs").payload).unwrap();
        theirs.signal.sdp_sequence_number = "5".into();
        m.signal_received(&roster(), &delivered(encode_payload(&theirs)));
        let answer = m.answered(&id(), "ours".into(), stalled + OFFER_GRACE);
        assert_eq!(sequence(&answer), vec!["5".to_string()]);
        // PSN says another member sent this one: dropped, and MEMBER... stays trusted.
        let mut posing = from_member("offer", "posing");
        posing.from.account_id = "4000".into();
        assert!(m.signal_received(&roster(), &posing).is_empty());
        assert!(m.distrusted("4000") && !m.distrusted(MEMBER));
        // MEMBER writes another's identity into the media: distrusted, their link closes, no
        // offer again.
        let mut media = decode_payload(&from_member("offer", "x").payload).unwrap();
        media.signal.medias[0].user.account_id = "4000".into();
        let commands = m.signal_received(&roster(), &delivered(encode_payload(&media)));
        assert!(
            commands.contains(&Command::Close { member: id() }),
            "{commands:?}"
        );
        assert!(m.distrusted(MEMBER));
        assert_eq!(offers(&m.tick(&roster(), t0 + 10 * ANSWER_WAIT)), 0);
    }
}
