//! The party follower: the task on the module's runtime that signs in, finds the party the
//! user is in, joins it as a `MOBILE_APP` member, follows the roster from push
//! ([`PartyFollower`], a method per event), and leaves the voice links with each member to
//! [`super::voice_links`] (offers, answers, packets into the playout). When the party ends it
//! looks for the next one; when the last source goes it leaves. ("Session" is PSN's word for
//! the party itself and for the HTTP API in `psn::party_api`; this task is the follower.)

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::cause::{Cause, Failure};
use super::pipeline::{member_info, PlayoutControl};
use super::settings::{JitterPreset, PartyChoice, VoicePath};
use super::signal_filter::Delivered;
use super::signalling::{Outgoing, SignalOutcome};
use super::status::{HubStatus, MemberState};
use super::voice_links::{LinkContext, VoiceLinks};
use crate::audio::playout::Silence;
use crate::psn::client::PsnClient;
use crate::psn::custom_message::DEFAULT_CHANNEL;
use crate::psn::error::PsnError;
use crate::psn::model::{Party, RosterMember};
use crate::psn::party_api::PartyApi;
use crate::psn::push::{PushClient, PushEvent, PushOptions};
use crate::voice::peer::PeerEvent;

/// How long leaving the party may take when the last source goes.
const LEAVE_TIMEOUT: Duration = Duration::from_millis(350);
/// How often to look for a party while the user is in none.
const PARTY_POLL: Duration = Duration::from_secs(5);

/// What the follower needs from the hub.
pub struct FollowerContext {
    pub party: PartyChoice,
    pub client: Arc<PsnClient>,
    pub playout: Arc<dyn PlayoutControl>,
    pub status: Arc<Mutex<HubStatus>>,
    /// Whether the user's own console is heard in the mix.
    pub include_own_console: bool,
    /// Where the peers bind and which STUN servers they ask (`crate::voice::net`).
    pub peer_options: crate::voice::peer::PeerOptions,
    /// Peer-to-peer, bridge, or both (the `voice_path` setting).
    pub voice_path: VoicePath,
    /// The jitter buffer preset for members who connect from now on.
    pub jitter: Arc<Mutex<JitterPreset>>,
}

/// Runs until `stop` turns true; then leaves the party it is in.
pub async fn run(ctx: FollowerContext, mut stop: watch::Receiver<bool>) {
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
/// Runs in a task of its own, so a slow PSN never holds up the follower's loop.
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

impl FollowerContext {
    fn link_context(&self) -> LinkContext {
        LinkContext {
            playout: self.playout.clone(),
            status: self.status.clone(),
            include_own_console: self.include_own_console,
            peer_options: self.peer_options.clone(),
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
    ctx: &FollowerContext,
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
        api.join_replacing_stale(&party, &me).await?;
        Ok::<_, PsnError>((me, party))
    };
    let (me, party) = tokio::select! {
        _ = cancel.changed() => return Ok(()),
        joined = joined => joined?,
    };
    let (mut follower, mut rx) = PartyFollower::start(ctx, api, me, &party);
    let mut offer_tick = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        let next = tokio::select! {
            _ = stop.changed() => {
                follower.leave().await;
                ControlFlow::Break(Ok(()))
            }
            event = rx.push.recv() => follower.on_push(event).await,
            Some(read) = rx.roster_reads.recv() => follower.on_roster_read(read).await,
            Some(event) = rx.peers.recv() => {
                follower.links.on_peer_event(event).await;
                ControlFlow::Continue(())
            }
            Some(result) = rx.signal_results.recv() => {
                follower.on_signal_result(result).await;
                ControlFlow::Continue(())
            }
            _ = refresh_due(&ctx.client, follower.refresh_retry_at), if follower.refreshing.is_none() => {
                follower.start_refresh();
                ControlFlow::Continue(())
            }
            Some(retry_at) = rx.refreshes.recv() => {
                follower.refreshing = None;
                follower.refresh_retry_at = retry_at;
                ControlFlow::Continue(())
            }
            _ = offer_tick.tick() => {
                follower.on_tick().await;
                ControlFlow::Continue(())
            }
        };
        if let ControlFlow::Break(result) = next {
            break result;
        }
    };
    follower.finish(rx.push_client).await;
    result
}

/// What the follower's loop waits on, apart from the follower itself (so a handler may take
/// the follower mutably while the loop holds these).
struct FollowerInbox {
    push_client: PushClient,
    push: mpsc::Receiver<PushEvent>,
    peers: mpsc::Receiver<PeerEvent>,
    signal_results: mpsc::Receiver<SignalResult>,
    refreshes: mpsc::Receiver<Option<Instant>>,
    roster_reads: mpsc::Receiver<RosterRead>,
}

/// The roster re-read after push came back: the members, or `None` when the party is gone.
type RosterRead = Result<Option<Vec<RosterMember>>, PsnError>;

/// One joined party, followed until it ends: the roster, the voice links, and the tasks that
/// talk to PSN off the loop (the loop forwards every member's packets and must never wait on
/// PSN). A method per event.
struct PartyFollower<'a> {
    ctx: &'a FollowerContext,
    api: PartyApi,
    me: String,
    session_id: String,
    roster: HashMap<String, RosterMember>,
    links: VoiceLinks,
    /// Voice offers and answers go out in order from their own task, so a slow PSN delays
    /// the signalling, never the loop.
    signal_tx: mpsc::Sender<(Outgoing, Instant)>,
    signal_sender: tokio::task::JoinHandle<()>,
    /// After a failed refresh, when to try again (a transient failure must not become a
    /// storm).
    refresh_retry_at: Option<Instant>,
    refreshing: Option<tokio::task::JoinHandle<()>>,
    refresh_tx: mpsc::Sender<Option<Instant>>,
    roster_reads: Vec<tokio::task::JoinHandle<()>>,
    roster_tx: mpsc::Sender<RosterRead>,
    /// The push socket went down since the last roster: catch up when it is back.
    push_was_down: bool,
}

impl<'a> PartyFollower<'a> {
    /// We joined `party`: every console member gets their place (and slot) in join order
    /// now, their voice replacing the silence when it connects; push and the signal sender
    /// start.
    fn start(
        ctx: &'a FollowerContext,
        api: &PartyApi,
        me: String,
        party: &Party,
    ) -> (Self, FollowerInbox) {
        let session_id = party.session_id.clone();
        let mut roster: HashMap<String, RosterMember> = HashMap::new();
        for m in &party.members {
            if m.is_own_app(&me) {
                continue;
            }
            roster.insert(member_key(m), m.clone());
        }
        ctx.set(|s| s.joined(&party.session_id, &party.session_name, &me, roster.values()));
        for m in party
            .members
            .iter()
            .filter(|m| m.has_voice() && !m.is_own_app(&me))
        {
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
        let (push_client, push) = PushClient::start(
            api.clone(),
            Some(session_id.clone()),
            PushOptions::default(),
        );
        let (peer_tx, peers) = mpsc::channel::<PeerEvent>(1024);
        let mut links = VoiceLinks::new(ctx.link_context(), &me, &session_id, peer_tx);
        for m in roster.values() {
            links.member_present(m, Instant::now());
        }
        let (signal_tx, signal_rx) = mpsc::channel(256);
        let (result_tx, signal_results) = mpsc::channel(256);
        let signal_sender = tokio::spawn(send_signals(
            api.clone(),
            session_id.clone(),
            signal_rx,
            result_tx,
        ));
        let (refresh_tx, refreshes) = mpsc::channel(1);
        let (roster_tx, roster_reads) = mpsc::channel(4);
        let follower = PartyFollower {
            ctx,
            api: api.clone(),
            me,
            session_id,
            roster,
            links,
            signal_tx,
            signal_sender,
            refresh_retry_at: None,
            refreshing: None,
            refresh_tx,
            roster_reads: Vec::new(),
            roster_tx,
            push_was_down: false,
        };
        let inbox = FollowerInbox {
            push_client,
            push,
            peers,
            signal_results,
            refreshes,
            roster_reads,
        };
        (follower, inbox)
    }

    fn queue(&self, messages: Vec<Outgoing>) {
        for message in messages {
            if self.signal_tx.try_send((message, Instant::now())).is_err() {
                log::warn!("voice signalling is backed up; a message was dropped");
            }
        }
    }

    /// The last source went: leave the party (bounded).
    async fn leave(&mut self) {
        let _ = tokio::time::timeout(LEAVE_TIMEOUT, self.api.leave(&self.session_id)).await;
    }

    /// A push event (`None`: push is gone).
    async fn on_push(&mut self, event: Option<PushEvent>) -> ControlFlow<Result<(), PsnError>> {
        let Some(event) = event else {
            return ControlFlow::Break(Ok(()));
        };
        // (Compared by value: a borrow of the follower must not live across the awaits.)
        let ours = {
            let mine = self.session_id.clone();
            move |sid: &str| sid == mine
        };
        match event {
            PushEvent::MembersJoined {
                session_id,
                members,
            } if ours(&session_id) => {
                for m in members {
                    self.admit_member(m.member(), "joined");
                }
                self.show_roster();
            }
            PushEvent::Disconnected { .. } => self.push_was_down = true,
            PushEvent::Connected if self.push_was_down => {
                self.push_was_down = false;
                self.start_roster_read();
            }
            PushEvent::MembersLeft {
                session_id,
                members,
            } if ours(&session_id) => {
                let mut we_left = false;
                for m in members {
                    if m.is_own_app(&self.me) {
                        we_left = true;
                        continue;
                    }
                    log::info!("member left: {}", m.online_id);
                    self.member_gone(&m).await;
                }
                self.show_roster();
                if we_left {
                    return ControlFlow::Break(Ok(()));
                }
            }
            PushEvent::PartyDeleted { session_id, .. } if ours(&session_id) => {
                log::info!("the party ended");
                self.ctx.set(|s| s.note_party_ended());
                return ControlFlow::Break(Ok(()));
            }
            PushEvent::CustomMessage {
                session_id,
                from,
                to,
                payload,
                ..
            } if ours(&session_id) => {
                let delivered = Delivered { from, to, payload };
                let replies = self.links.on_signal(&self.roster, &delivered).await;
                self.queue(replies);
            }
            PushEvent::Failed { error } => return ControlFlow::Break(Err(error)),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// Events sent while the push socket was down are not replayed: read the roster (in a
    /// task of its own) and catch up with who joined and left meanwhile. Voice messages wait
    /// for it (the links hold them): a member who joined meanwhile offers before we know them.
    fn start_roster_read(&mut self) {
        self.roster_reads.retain(|t| !t.is_finished());
        let (api, sid, tx) = (
            self.api.clone(),
            self.session_id.clone(),
            self.roster_tx.clone(),
        );
        self.roster_reads.push(tokio::spawn(async move {
            let _ = tx.send(api.roster(&sid).await).await;
        }));
        self.links.roster_read_started();
    }

    /// The roster re-read after push came back.
    async fn on_roster_read(&mut self, read: RosterRead) -> ControlFlow<Result<(), PsnError>> {
        match read {
            Ok(Some(members)) => {
                let present: std::collections::HashSet<String> =
                    members.iter().map(member_key).collect();
                for m in members {
                    self.admit_member(m, "joined while push was down");
                }
                let gone: Vec<String> = self
                    .roster
                    .keys()
                    .filter(|k| !present.contains(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    if let Some(m) = self.roster.get(&key).cloned() {
                        log::info!("member left while push was down: {}", m.online_id);
                        self.member_gone(&m).await;
                    }
                }
                self.show_roster();
            }
            Ok(None) => {
                log::info!("the party ended while push was down");
                self.ctx.set(|s| s.note_party_ended());
                return ControlFlow::Break(Ok(()));
            }
            // The voices go on; the next reconnect or event tries again.
            Err(e) => log::warn!("re-reading the roster after push came back: {e}"),
        }
        let replies = self.links.roster_read_done(&self.roster).await;
        self.queue(replies);
        ControlFlow::Continue(())
    }

    /// What PSN said to a voice message we sent.
    async fn on_signal_result(&mut self, (to, queued_at, result): SignalResult) {
        let outcome = match &result {
            Ok(()) => SignalOutcome::Delivered,
            Err(e) => SignalOutcome::Lost {
                transient: e.is_transient(),
            },
        };
        let applies = self
            .links
            .signal_sent(&to, queued_at, outcome, Instant::now())
            .await;
        if let Err(e) = result {
            // Surface the server's answer verbatim (PROTOCOL.md section 7) on that member's
            // line; other members go on.
            log::warn!("sending a voice message failed: {e}");
            if applies {
                self.ctx
                    .set(|s| s.set_member_state(&to, MemberState::Failed(Failure::NotPassed(e))));
            }
        }
    }

    /// The access token is due for its refresh: it runs in a task of its own.
    fn start_refresh(&mut self) {
        let tx = self.refresh_tx.clone();
        let (client, status) = (self.ctx.client.clone(), self.ctx.status.clone());
        self.refreshing = Some(tokio::spawn(async move {
            let _ = tx.send(keep_signed_in(client, status).await).await;
        }));
    }

    /// Every 250 ms: the voice links' clock.
    async fn on_tick(&mut self) {
        let offers = self.links.offers_due(&self.roster, Instant::now()).await;
        self.queue(offers);
    }

    /// A member the roster did not have (from push, or from a roster re-read): their console
    /// gets a silent playout entry until their voice connects, and the voice links learn of
    /// them. Our own app and members already known are skipped.
    fn admit_member(&mut self, m: RosterMember, how: &str) {
        let key = member_key(&m);
        if m.is_own_app(&self.me) || self.roster.contains_key(&key) {
            return;
        }
        log::info!("member {how}: {}", m.online_id);
        if m.has_voice() {
            let info = member_info(
                &self.me,
                self.ctx.include_own_console,
                &m.account_id,
                &m.online_id,
            );
            self.ctx.playout.add_member(info, Box::new(Silence));
        }
        self.links.member_present(&m, Instant::now());
        self.roster.insert(key, m);
    }

    /// The member left: off the roster, their link closed, out of the playout.
    async fn member_gone(&mut self, m: &RosterMember) {
        self.roster.remove(&member_key(m));
        self.links.member_left(&m.account_id).await;
        self.ctx.playout.remove_member(&m.account_id);
    }

    fn show_roster(&self) {
        self.ctx.set(|s| s.set_roster(self.roster.values()));
    }

    /// The party is over for us: tasks stop, links close, members leave the playout.
    async fn finish(mut self, push: PushClient) {
        self.signal_sender.abort();
        if let Some(task) = self.refreshing.take() {
            task.abort();
        }
        for task in self.roster_reads.drain(..) {
            task.abort();
        }
        self.links.close_all().await;
        for m in self.roster.values() {
            self.ctx.playout.remove_member(&m.account_id);
        }
        push.stop().await;
        self.ctx.set(|s| s.left_party());
    }
}

/// A voice message's recipient (account id), when it was queued, and what PSN said.
type SignalResult = (String, Instant, Result<(), PsnError>);

/// Sends the queued voice offers and answers in order, reporting each outcome back to the
/// follower's loop. A failure is reported, not retried here (PROTOCOL.md section 7; see
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

/// Roster key: the user's own console shares the account id with us, so the
/// platform is part of the key.
fn member_key(m: &RosterMember) -> String {
    format!("{}/{}", m.account_id, m.platform)
}
