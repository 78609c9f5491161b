//! The party session: the task on the module's runtime that signs in, finds
//! the party the user is in, joins it as a `MOBILE_APP` member, follows the
//! roster from push, and leaves the voice links with each member to
//! [`super::voice_links`] (offers, answers, packets into the playout). When the party ends it looks
//! for the next one; when the last source goes it leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::cause::{Cause, Failure};
use super::pipeline::member_info;
use super::settings::{JitterPreset, PartyChoice, VoicePath};
use super::signalling::{Outgoing, SignalOutcome};
use super::status::{HubStatus, MemberState};
use super::voice_links::{LinkContext, VoiceLinks};
use crate::audio::playout::{MemberInfo, Silence};
use crate::psn::client::PsnClient;
use crate::psn::custom_message::DEFAULT_CHANNEL;
use crate::psn::error::PsnError;
use crate::psn::push::{PushClient, PushEvent, PushOptions};
use crate::psn::session::{Member as RosterMember, PartyApi};
use crate::voice::peer::PeerEvent;

/// How long leaving the party may take when the last source goes.
const LEAVE_TIMEOUT: Duration = Duration::from_millis(350);
/// How often to look for a party while the user is in none.
const PARTY_POLL: Duration = Duration::from_secs(5);

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
    /// Peer-to-peer, bridge, or both (the `voice_path` setting).
    pub voice_path: VoicePath,
    /// The jitter buffer preset for members who connect from now on.
    pub jitter: Arc<Mutex<JitterPreset>>,
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
                ctx.set(|s| s.error = Some(Cause::Psn(e)));
                wait
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Waits until the access token is due for its refresh (or the retry after a failed one);
/// forever when signed out.
async fn refresh_due(client: &PsnClient, retry_at: Option<Instant>) {
    match client.access_refresh_at().await {
        Some(at) => {
            let at = at.into_std();
            let at = retry_at.map_or(at, |r| r.max(at));
            tokio::time::sleep_until(at.into()).await;
        }
        None => std::future::pending().await,
    }
}

/// Refreshes the access token ahead of its expiry even when nothing else calls PSN (a party
/// with push up and everyone connected makes no calls for hours): the sign-in is known to be
/// good, or its loss is shown at once, not at the next member's join. The voices keep playing
/// either way. A transient failure (5xx, timeout) is only logged and retried: the token still
/// has a tenth of its life left, and a status line that cries wolf while every voice plays
/// teaches streamers to ignore it. Returns when to retry after a failure.
/// Runs in a task of its own, so a slow PSN never holds up the session's loop.
async fn keep_signed_in(client: Arc<PsnClient>, status: Arc<Mutex<HubStatus>>) -> Option<Instant> {
    match client.access_token().await {
        Ok(_) => {
            log::debug!("PSN access token refreshed ahead of its expiry");
            None
        }
        Err(e) => {
            log::warn!("refreshing the PSN sign-in: {e}");
            if matches!(e, PsnError::SignInExpired | PsnError::NotSignedIn) {
                let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
                s.error = Some(Cause::Psn(e.clone()));
                s.sign_in_lost = true;
            }
            Some(Instant::now() + retry_after(&e, 2))
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
    fn link_context(&self) -> LinkContext {
        LinkContext {
            playout: self.playout.clone(),
            status: self.status.clone(),
            include_own_console: self.include_own_console,
            udp_addrs: self.udp_addrs.clone(),
            path: self.voice_path,
            client: Some(self.client.clone()),
            jitter: self.jitter.clone(),
        }
    }

    fn set(&self, change: impl FnOnce(&mut HubStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut status);
    }
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
        ctx.playout.add_member(
            member_info(&me, ctx.include_own_console, &m.account_id, &m.online_id),
            Box::new(Silence),
        );
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
    let mut links = VoiceLinks::new(ctx.link_context(), &me, &session_id, peer_tx);
    for m in roster.values() {
        links.member_present(m, Instant::now());
    }
    // Voice offers and answers go out in order from their own task, so a slow PSN delays the
    // signalling, never the loop below (which forwards every member's packets).
    let (signal_tx, signal_rx) = mpsc::channel::<(Outgoing, Instant)>(256);
    let (result_tx, mut signal_results) = mpsc::channel::<SignalResult>(256);
    let signal_sender = tokio::spawn(send_signals(
        api.clone(),
        session_id.clone(),
        signal_rx,
        result_tx,
    ));
    let queue = |message: Outgoing| {
        if signal_tx.try_send((message, Instant::now())).is_err() {
            log::warn!("voice signalling is backed up; a message was dropped");
        }
    };
    let mut offer_tick = tokio::time::interval(Duration::from_millis(250));
    // After a failed refresh, when to try again (a transient failure must not become a storm).
    let mut refresh_retry_at: Option<Instant> = None;
    // The refresh and the roster re-read run in tasks of their own: the loop below forwards
    // every member's packets and must never wait on PSN.
    let mut refreshing: Option<tokio::task::JoinHandle<()>> = None;
    let (refresh_tx, mut refresh_results) = mpsc::channel::<Option<Instant>>(1);
    let mut roster_reads: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    // Voice messages wait for a roster re-read in flight (the links hold them): a member who
    // joined while push was down offers before we know them.
    let (roster_tx, mut roster_results) =
        mpsc::channel::<Result<Option<Vec<RosterMember>>, PsnError>>(4);
    // The push socket went down since the last roster: catch up when it is back.
    let mut push_was_down = false;

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
                            admit_member(ctx, &me, &mut roster, &mut links, m.member(), "joined");
                        }
                        ctx.set(|s| s.set_roster(roster.values()));
                    }
                    PushEvent::Disconnected { .. } => push_was_down = true,
                    PushEvent::Connected if push_was_down => {
                        // Events sent while the socket was down are not replayed: read the
                        // roster and catch up with who joined and left meanwhile.
                        push_was_down = false;
                        roster_reads.retain(|t| !t.is_finished());
                        let (api, sid, tx) = (api.clone(), session_id.clone(), roster_tx.clone());
                        roster_reads.push(tokio::spawn(async move {
                            let _ = tx.send(api.roster(&sid).await).await;
                        }));
                        links.roster_read_started();
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
                            links.member_left(&m.account_id).await;
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
                        links.on_signal(&roster, &payload).await.into_iter().for_each(&queue);
                    }
                    PushEvent::Failed { error } => break Err(error),
                    _ => {}
                }
            }
            Some(read) = roster_results.recv() => {
                // The roster re-read after push came back (in its own task, see above).
                match read {
                    Ok(Some(members)) => {
                        let present: std::collections::HashSet<String> =
                            members.iter().map(member_key).collect();
                        for m in members {
                            admit_member(ctx, &me, &mut roster, &mut links, m, "joined while push was down");
                        }
                        let gone: Vec<String> = roster
                            .iter()
                            .filter(|(k, _)| !present.contains(*k))
                            .map(|(k, _)| k.clone())
                            .collect();
                        for key in gone {
                            if let Some(m) = roster.remove(&key) {
                                log::info!("member left while push was down: {}", m.online_id);
                                links.member_left(&m.account_id).await;
                                ctx.playout.remove_member(&m.account_id);
                            }
                        }
                        ctx.set(|s| s.set_roster(roster.values()));
                    }
                    Ok(None) => {
                        log::info!("the party ended while push was down");
                        ctx.set(|s| s.note_party_ended());
                        break Ok(());
                    }
                    // The voices go on; the next reconnect or event tries again.
                    Err(e) => log::warn!("re-reading the roster after push came back: {e}"),
                }
                links.roster_read_done(&roster).await.into_iter().for_each(&queue);
            }
            Some(event) = peer_events.recv() => links.on_peer_event(event).await,
            Some((to, queued_at, result)) = signal_results.recv() => {
                let outcome = match &result {
                    Ok(()) => SignalOutcome::Delivered,
                    Err(e) => SignalOutcome::Lost { transient: e.is_transient() },
                };
                let applies = links.signal_sent(&to, queued_at, outcome, Instant::now()).await;
                if let Err(e) = result {
                    // Surface the server's answer verbatim (PROTOCOL.md section 7) on that
                    // member's line; other members go on.
                    log::warn!("sending a voice message failed: {e}");
                    if applies {
                        ctx.set(|s| {
                            s.set_member_state(
                                &to,
                                MemberState::Failed(Failure::NotPassed(e)),
                            )
                        });
                    }
                }
            }
            _ = refresh_due(&ctx.client, refresh_retry_at), if refreshing.is_none() => {
                let tx = refresh_tx.clone();
                let (client, status) = (ctx.client.clone(), ctx.status.clone());
                refreshing = Some(tokio::spawn(async move {
                    let _ = tx.send(keep_signed_in(client, status).await).await;
                }));
            }
            Some(retry_at) = refresh_results.recv() => {
                refreshing = None;
                refresh_retry_at = retry_at;
            }
            _ = offer_tick.tick() => {
                for offer in links.offers_due(&roster, Instant::now()).await {
                    queue(offer);
                }
            }
        }
    };

    signal_sender.abort();
    if let Some(task) = refreshing {
        task.abort();
    }
    for task in roster_reads {
        task.abort();
    }
    links.close_all().await;
    for m in roster.values() {
        ctx.playout.remove_member(&m.account_id);
    }
    push.stop().await;
    ctx.set(|s| s.left_party());
    result
}

/// A voice message's recipient (account id), when it was queued, and what PSN said.
type SignalResult = (String, Instant, Result<(), PsnError>);

/// Sends the queued voice offers and answers in order, reporting each outcome back to the
/// session's loop. A failure is reported, not retried here (PROTOCOL.md section 7; see
/// `VoiceLinks::signal_sent`).
async fn send_signals(
    api: PartyApi,
    session_id: String,
    mut queue: mpsc::Receiver<(Outgoing, Instant)>,
    results: mpsc::Sender<SignalResult>,
) {
    while let Some(((to, payload), queued_at)) = queue.recv().await {
        let account_id = to.account_id.clone();
        let sent = api
            .send_custom_message(&session_id, DEFAULT_CHANNEL, &payload, &[to])
            .await
            .map(|_| ());
        if results.send((account_id, queued_at, sent)).await.is_err() {
            return;
        }
    }
}

/// A member the roster did not have (from push, or from a roster re-read): their console gets
/// a silent playout entry until their voice connects, and voice links learn of them. Our own
/// app and members already known are skipped.
fn admit_member(
    ctx: &SessionContext,
    me: &str,
    roster: &mut HashMap<String, RosterMember>,
    links: &mut VoiceLinks,
    m: RosterMember,
    how: &str,
) {
    if (m.account_id == me && !m.is_console()) || roster.contains_key(&member_key(&m)) {
        return;
    }
    log::info!("member {how}: {}", m.online_id);
    if m.is_console() {
        ctx.playout.add_member(
            member_info(me, ctx.include_own_console, &m.account_id, &m.online_id),
            Box::new(Silence),
        );
    }
    links.member_present(&m, Instant::now());
    roster.insert(member_key(&m), m);
}

/// Roster key: the user's own console shares the account id with us, so the
/// platform is part of the key.
fn member_key(m: &RosterMember) -> String {
    format!("{}/{}", m.account_id, m.platform)
}
