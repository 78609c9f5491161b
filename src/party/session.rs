//! The party session: the task on the module's runtime that signs in, finds
//! the party the user is in, joins it as a `MOBILE_APP` member, follows the
//! roster from push, answers each member's voice offer with a WebRTC peer, and
//! hands each member's packets to the playout. When the party ends it looks
//! for the next one; when the last source goes it leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::feed::{member_feed, PacketSender};
use super::status::{HubStatus, MemberState};
use crate::audio::playout::{MemberInfo, Silence};
use crate::psn::client::PsnClient;
use crate::psn::custom_message::{
    decode_payload, encode_payload, Message, Recipient, Signal, UserRef, DEFAULT_CHANNEL,
    PLATFORM_MOBILE_APP,
};
use crate::psn::error::PsnError;
use crate::psn::push::{PushClient, PushEvent, PushOptions};
use crate::psn::session::{Member as RosterMember, PartyApi};
use crate::voice::member::{Member, MemberConfig};
use crate::voice::peer::webrtc_rs::WebrtcPeer;
use crate::voice::peer::{MemberId, PeerEvent, PeerOptions, PeerState, VoicePeer};

/// How long leaving the party may take when the last source goes.
const LEAVE_TIMEOUT: Duration = Duration::from_millis(350);
/// How often to look for a party while the user is in none.
const PARTY_POLL: Duration = Duration::from_secs(5);

/// Which party to be in (the `party` setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartyChoice {
    /// The party the user's console is in (`"follow"`, the default).
    Follow,
    /// This party session id.
    Session(String),
}

impl PartyChoice {
    pub fn from_setting(value: &str) -> PartyChoice {
        match value.trim() {
            "" | "follow" => PartyChoice::Follow,
            id => PartyChoice::Session(id.to_owned()),
        }
    }
}

/// What the session needs from the hub.
pub struct SessionContext {
    pub party: PartyChoice,
    pub client: Arc<PsnClient>,
    pub playout: Arc<dyn PlayoutControl>,
    pub status: Arc<Mutex<HubStatus>>,
    /// Whether the user's own console is heard in the mix.
    pub include_own_console: bool,
    /// Local addresses for the peers' host candidates.
    pub udp_addrs: Vec<String>,
    /// The jitter buffer preset for members who connect from now on.
    pub jitter: Arc<Mutex<super::hub::JitterPreset>>,
}

/// The playout, as the session drives it.
pub trait PlayoutControl: Send + Sync {
    fn add_member(&self, info: MemberInfo, audio: Box<dyn crate::audio::playout::MemberAudio>);
    fn remove_member(&self, account_id: &str);
    /// The instant the playout clock counts from.
    fn epoch(&self) -> Instant;
}

/// Runs until `stop` turns true; then leaves the party it is in.
pub async fn run(ctx: SessionContext, mut stop: watch::Receiver<bool>) {
    let party = PartyApi::new(ctx.client.clone());
    let mut failures = 0u32;
    let mut last_error = String::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let outcome = follow_one_party(&ctx, &party, &mut stop).await;
        if *stop.borrow() {
            return;
        }
        let wait = match outcome {
            Ok(()) => {
                failures = 0;
                last_error.clear();
                Duration::from_millis(200)
            }
            Err(PsnError::NotInParty) => {
                ctx.set(|s| s.note_no_party());
                PARTY_POLL
            }
            Err(e) => {
                failures += 1;
                let text = e.to_string();
                if text != last_error {
                    // Waiting for the user to sign in is a state, not a fault.
                    if matches!(e, PsnError::NotSignedIn | PsnError::CredentialsMissing) {
                        log::info!("{text}");
                    } else {
                        log::warn!("party session: {text}");
                    }
                    last_error = text;
                }
                let wait = retry_after(&e, failures);
                ctx.set(|s| s.error = Some(e.to_string()));
                wait
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Backoff with jitter, or what PSN said to wait.
fn retry_after(error: &PsnError, failures: u32) -> Duration {
    if let PsnError::RateLimited { retry_after } = error {
        return *retry_after;
    }
    let base = Duration::from_secs(2).saturating_mul(1 << failures.min(5));
    let base = base.min(Duration::from_secs(60));
    base / 2 + base.mul_f64(rand::random::<f64>() / 2.0)
}

impl SessionContext {
    fn set(&self, change: impl FnOnce(&mut HubStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut status);
    }
}

/// One member's voice connection and where its packets go.
struct Connection {
    peer: Arc<WebrtcPeer>,
    feed: PacketSender,
}

/// Signs in, finds and joins the party, and follows it until it ends.
async fn follow_one_party(
    ctx: &SessionContext,
    api: &PartyApi,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), PsnError> {
    // Sign in, find the party and join it, unless the last source goes meanwhile.
    let mut cancel = stop.clone();
    let joined = async {
        let me = ctx.client.ensure_signed_in().await?;
        ctx.set(|s| {
            s.account_id = Some(me.clone());
            s.error = None;
        });
        let party = match &ctx.party {
            PartyChoice::Follow => api.find_my_party().await?,
            PartyChoice::Session(id) => api
                .list_parties()
                .await?
                .into_iter()
                .find(|p| &p.session_id == id)
                .ok_or(PsnError::NotInParty)?,
        };
        api.join(&party.session_id).await?;
        Ok::<_, PsnError>((me, party))
    };
    let (me, party) = tokio::select! {
        _ = cancel.changed() => return Ok(()),
        joined = joined => joined?,
    };
    let session_id = party.session_id.clone();
    let mut roster: HashMap<String, RosterMember> = HashMap::new();
    for m in &party.members {
        if m.account_id == me && !m.is_console() {
            continue;
        }
        roster.insert(member_key(m), m.clone());
    }
    ctx.set(|s| s.joined(&party.session_id, &party.session_name, &me, roster.values()));
    // Every console member gets their place (and slot) in join order now;
    // their voice replaces the silence when it connects.
    for m in party.members.iter().filter(|m| m.is_console()) {
        ctx.playout
            .add_member(roster_info(ctx, &me, m), Box::new(Silence));
    }
    log::info!(
        "following party \"{}\" with {} members",
        party.session_name,
        roster.len()
    );

    let (push, mut events) = PushClient::start(
        api.clone(),
        Some(session_id.clone()),
        PushOptions::default(),
    );
    let (peer_tx, mut peer_events) = mpsc::channel::<PeerEvent>(1024);
    let mut connections: HashMap<MemberId, Connection> = HashMap::new();
    let mut seq = 1u64;

    let result = loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = tokio::time::timeout(LEAVE_TIMEOUT, api.leave(&session_id)).await;
                break Ok(());
            }
            event = events.recv() => {
                let Some(event) = event else { break Ok(()) };
                match event {
                    PushEvent::MembersJoined { session_id: sid, members } if sid == session_id => {
                        for m in members {
                            let m = m.member();
                            if m.account_id == me && !m.is_console() {
                                continue;
                            }
                            log::info!("member joined: {}", m.online_id);
                            if m.is_console() {
                                ctx.playout.add_member(roster_info(ctx, &me, &m), Box::new(Silence));
                            }
                            roster.insert(member_key(&m), m);
                        }
                        ctx.set(|s| s.set_roster(roster.values()));
                    }
                    PushEvent::MembersLeft { session_id: sid, members } if sid == session_id => {
                        let mut we_left = false;
                        for m in members {
                            if m.account_id == me && !m.is_console() {
                                we_left = true;
                                continue;
                            }
                            log::info!("member left: {}", m.online_id);
                            roster.remove(&member_key(&m));
                            drop_connection(ctx, &mut connections, &m.account_id).await;
                            ctx.playout.remove_member(&m.account_id);
                        }
                        ctx.set(|s| s.set_roster(roster.values()));
                        if we_left {
                            break Ok(());
                        }
                    }
                    PushEvent::PartyDeleted { session_id: sid, .. } if sid == session_id => {
                        log::info!("the party ended");
                        ctx.set(|s| s.note_party_ended());
                        break Ok(());
                    }
                    PushEvent::CustomMessage { session_id: sid, payload, .. } if sid == session_id => {
                        let answer = handle_signal(ctx, &me, &roster, &payload, &peer_tx, &mut connections, &mut seq).await;
                        if let Some((to, payload)) = answer {
                            let member = to.account_id.clone();
                            if let Err(e) = api.send_custom_message(&session_id, DEFAULT_CHANNEL, &payload, &[to]).await {
                                // Surface the server's answer verbatim (PROTOCOL.md section 7) on that
                                // member's line; other members go on.
                                log::warn!("sending a voice answer failed: {e}");
                                ctx.set(|s| s.set_member_state(&member, MemberState::Failed(super::status::answer_failure(&e))));
                            }
                        }
                    }
                    PushEvent::Failed { error } => break Err(error),
                    _ => {}
                }
            }
            event = peer_events.recv() => {
                match event {
                    Some(PeerEvent::Rtp(packet)) => {
                        if let Some(connection) = connections.get_mut(&packet.member) {
                            connection.feed.send(&packet);
                        }
                    }
                    Some(PeerEvent::State { member, state }) => {
                        log::info!("voice connection of member {}: {state:?}", mask(&member));
                        ctx.set(|s| s.set_member_state(&member, MemberState::from(state)));
                        if matches!(state, PeerState::Failed | PeerState::Closed) {
                            drop_connection(ctx, &mut connections, &member).await;
                        }
                    }
                    None => {}
                }
            }
        }
    };

    for (_, connection) in connections.drain() {
        connection.peer.close().await;
    }
    for m in roster.values() {
        ctx.playout.remove_member(&m.account_id);
    }
    push.stop().await;
    ctx.set(|s| s.left_party());
    result
}

/// How the playout knows a console member of the roster.
fn roster_info(ctx: &SessionContext, me: &str, m: &RosterMember) -> MemberInfo {
    let own_console = m.account_id == me;
    MemberInfo {
        account_id: m.account_id.clone(),
        online_id: m.online_id.clone(),
        in_mix: !own_console || ctx.include_own_console,
        takes_slot: !own_console,
    }
}

/// Roster key: the user's own console shares the account id with us, so the
/// platform is part of the key.
fn member_key(m: &RosterMember) -> String {
    format!("{}/{}", m.account_id, m.platform)
}

/// Account ids in logs are masked (they identify a person).
fn mask(account_id: &str) -> String {
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

async fn drop_connection(
    ctx: &SessionContext,
    connections: &mut HashMap<MemberId, Connection>,
    account_id: &str,
) {
    if let Some(connection) = connections.remove(account_id) {
        connection.peer.close().await;
        ctx.playout.remove_member(account_id);
    }
}

/// An offer from a member: answer it with a new peer, start the member's
/// pipeline, and return the answer to send.
async fn handle_signal(
    ctx: &SessionContext,
    me: &str,
    roster: &HashMap<String, RosterMember>,
    payload: &str,
    peer_tx: &mpsc::Sender<PeerEvent>,
    connections: &mut HashMap<MemberId, Connection>,
    seq: &mut u64,
) -> Option<(Recipient, String)> {
    let message = match decode_payload(payload) {
        Ok(message) => message,
        Err(e) => {
            log::warn!("a voice message could not be read: {e}");
            return None;
        }
    };
    let signal = message.signal;
    if signal.to.account_id != me || signal.kind != "offer" {
        return None;
    }
    // Whose audio mid 0 carries: the media's user, else the sender.
    let owner = signal
        .medias
        .first()
        .map(|m| m.user.clone())
        .unwrap_or_else(|| signal.from.clone());
    // The member on a console with that account (the user's own PS5 shares our account id).
    let roster_entry = roster
        .values()
        .find(|m| m.account_id == owner.account_id && m.is_console());
    let online_id = roster_entry
        .map(|m| m.online_id.clone())
        .unwrap_or_default();
    let platform = roster_entry
        .map_or("PS5", |m| m.platform.as_str())
        .to_owned();
    let member: MemberId = owner.account_id.as_str().into();
    drop_connection(ctx, connections, &owner.account_id).await;

    let options = PeerOptions {
        udp_addrs: ctx.udp_addrs.clone(),
        ..PeerOptions::default()
    };
    let peer = Arc::new(WebrtcPeer::new(member.clone(), options, peer_tx.clone()));
    let answer = match peer.answer(&signal.sdp).await {
        Ok(answer) => answer,
        Err(e) => {
            log::warn!("could not answer {online_id}'s voice offer: {e}");
            ctx.set(|s| s.set_member_state(&member, MemberState::Failed(e.to_string())));
            peer.close().await;
            return None;
        }
    };
    let Some(params) = peer.negotiated().await else {
        peer.close().await;
        return None;
    };
    let mut config = MemberConfig::new(params.clock_rate, params.opus_pt);
    let preset = *ctx.jitter.lock().unwrap_or_else(|e| e.into_inner());
    config.jitter = preset.config(params.clock_rate);
    config.red_pt = params.red_pt;
    let pipeline = match Member::new(config) {
        Ok(pipeline) => pipeline,
        Err(e) => {
            log::warn!("could not start the decoder for {online_id}: {e}");
            peer.close().await;
            return None;
        }
    };
    let (feed, stream) = member_feed(pipeline, ctx.playout.epoch());
    let own_console = owner.account_id == me;
    ctx.playout.add_member(
        MemberInfo {
            account_id: owner.account_id.clone(),
            online_id: online_id.clone(),
            in_mix: !own_console || ctx.include_own_console,
            takes_slot: !own_console,
        },
        Box::new(stream),
    );
    connections.insert(member.clone(), Connection { peer, feed });
    ctx.set(|s| s.set_member_state(&member, MemberState::Connecting));
    log::info!(
        "answering {}'s voice offer (Opus at {} Hz)",
        if online_id.is_empty() {
            "a member"
        } else {
            &online_id
        },
        params.clock_rate
    );

    let from = UserRef {
        account_id: me.to_owned(),
        platform: PLATFORM_MOBILE_APP,
    };
    *seq += 1;
    let reply = Message::from_signal(Signal::new(
        "answer",
        from,
        signal.from.clone(),
        answer,
        *seq,
    ));
    let to = Recipient {
        account_id: signal.from.account_id.clone(),
        platform,
    };
    Some((to, encode_payload(&reply)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_setting() {
        assert_eq!(PartyChoice::from_setting("follow"), PartyChoice::Follow);
        assert_eq!(PartyChoice::from_setting(""), PartyChoice::Follow);
        assert_eq!(
            PartyChoice::from_setting(" 1234-abcd "),
            PartyChoice::Session("1234-abcd".into())
        );
    }
}
