//! `PartyHub`: the state every source shares (one connection per account,
//! however many sources exist). Created by the first source, gone with the
//! last, like the runtime: it owns the playout clock and runs the party
//! session on the runtime.
//!
//! Everything the properties dialog asks of it (sign in, sign out, refresh the
//! party list, switch party) returns at once: the work runs on the runtime and
//! the sources are told to redraw their properties when the result is in.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::cause::Cause;
use super::credentials::{load_client_file, save_client_file};
use super::follower::{self, FollowerContext};
use super::gates::{Gates, SharedPlayout};
use super::pipeline::PlayoutControl;
use super::presence::{HubAccess, Presence};
use super::settings::{link_id_from_link, Consent, JitterPreset, PartyChoice, VoicePath};
use super::status::{AccountView, HubStatus, PartyList, View};
use super::views;
use crate::audio::playout::{MemberAudio, MemberInfo, Playout, SubscriptionId, Target};
use crate::audio::ring::RingWriter;
use crate::overlay::OverlayServer;
use crate::psn::client::{ClientOptions, PsnClient};
use crate::psn::config::PsnConfig;
use crate::psn::error::PsnError;
use crate::psn::party_api::PartyApi;
use crate::psn::secret::Secret;
use crate::psn::token_store::TokenStore;
use crate::runtime::RuntimeRef;

static SHARED: Mutex<Weak<PartyHub>> = Mutex::new(Weak::new());

/// How long the last source's destroy waits for the session to leave the party.
/// With the runtime's own 500 ms shutdown bound, destroy stays under 1 s.
const SESSION_STOP_TIMEOUT: Duration = Duration::from_millis(400);
/// How long a fetched party list counts as current when the dialog opens.
const PARTIES_FRESH: Duration = Duration::from_secs(10);
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running party session: stop it and wait for it to leave.
struct SessionTask {
    stop: watch::Sender<bool>,
    done: std::sync::mpsc::Receiver<()>,
}

impl SessionTask {
    /// Asks the session to leave and waits (blocking) up to `limit`.
    fn stop_and_wait(self, limit: Duration) {
        let _ = self.stop.send(true);
        if self.done.recv_timeout(limit).is_err() {
            log::warn!("the party session did not stop in time");
        }
    }
}

type Listener = Box<dyn Fn() + Send + Sync>;

/// The hub's state, reachable from tasks on the runtime. Dropping it has no
/// side effects (the `PartyHub` around it stops what runs), so a task may
/// hold it for as long as it likes.
pub(super) struct HubShared {
    config_dir: Option<PathBuf>,
    playout: Arc<SharedPlayout>,
    gates: Arc<Gates>,
    pub(super) status: Arc<Mutex<HubStatus>>,
    session: Mutex<Option<SessionTask>>,
    party: Mutex<PartyChoice>,
    pub(super) client: Mutex<Option<Arc<PsnClient>>>,
    include_own_console: AtomicBool,
    jitter: Arc<Mutex<JitterPreset>>,
    account: Mutex<AccountView>,
    pub(super) parties: Mutex<PartyList>,
    parties_fetched: Mutex<Option<Instant>>,
    listeners: Mutex<Vec<(u64, Listener)>>,
    next_listener: AtomicU64,
    /// Bumped by every change the view shows that `View` cannot see.
    pub(super) generation: AtomicU64,
    /// How voices come (`voice_path`): the first source's setting applies.
    voice_path: VoicePath,
}

pub struct PartyHub {
    shared: Arc<HubShared>,
    /// Who is in the party and speaking, for the overlay and stream tools (src/party/presence.rs).
    presence: Presence,
    /// The overlay page's server (src/overlay); `None` when it could not bind.
    overlay: Mutex<Option<OverlayServer>>,
    runtime: RuntimeRef,
}

impl PartyHub {
    /// The module's hub, started if no source holds it. `config_dir` is the
    /// plugin's config directory (token store, `.env`).
    ///
    /// One hub follows one party: the first source's `party` setting decides
    /// (the PSN Party source may switch it later with `set_party`).
    pub fn shared(
        config_dir: Option<PathBuf>,
        party: PartyChoice,
        voice_path: VoicePath,
    ) -> std::io::Result<Arc<PartyHub>> {
        let mut shared = lock(&SHARED);
        if let Some(hub) = shared.upgrade() {
            if hub.shared.voice_path != voice_path {
                log::warn!("this source's voice_path differs from the one in use; the first source's applies");
            }
            return Ok(hub);
        }
        let gates = Arc::new(Gates::default());
        let inner = Arc::new(HubShared {
            playout: Arc::new(SharedPlayout {
                playout: Mutex::new(Playout::start()?),
                gates: gates.clone(),
            }),
            gates,
            config_dir,
            status: Arc::default(),
            session: Mutex::new(None),
            party: Mutex::new(party),
            client: Mutex::new(None),
            include_own_console: AtomicBool::new(false),
            jitter: Arc::default(),
            account: Mutex::default(),
            parties: Mutex::default(),
            parties_fetched: Mutex::default(),
            listeners: Mutex::default(),
            next_listener: AtomicU64::new(1),
            generation: AtomicU64::new(0),
            voice_path,
        });
        let runtime = RuntimeRef::acquire()?;
        let access: Weak<dyn HubAccess> = Arc::downgrade(&inner) as Weak<dyn HubAccess>;
        let presence = Presence::start(access, runtime.handle());
        let overlay =
            OverlayServer::start(inner.config_dir.clone(), 0, &presence, runtime.handle())
                .map_err(|e| log::warn!("the overlay page is not served: {e}"))
                .ok();
        let hub = Arc::new(PartyHub {
            shared: inner,
            presence,
            overlay: Mutex::new(overlay),
            runtime,
        });
        if let Some(client) = hub.shared.make_client() {
            hub.shared.load_account(&client);
            *lock(&hub.shared.client) = Some(client);
        }
        let handle = hub.runtime.handle().clone();
        hub.shared.start_session(&handle);
        hub.runtime
            .spawn(views::watch_view(Arc::downgrade(&hub.shared)));
        *shared = Arc::downgrade(&hub);
        log::debug!("party hub started");
        Ok(hub)
    }

    pub fn runtime(&self) -> &RuntimeRef {
        &self.runtime
    }

    /// The overlay page's address (token included), when it is served.
    pub fn overlay_url(&self) -> Option<String> {
        lock(&self.overlay).as_ref().map(OverlayServer::url)
    }

    /// Serves the overlay on `port` from now on (0: keep the one in use).
    pub fn set_overlay_port(&self, port: u16) {
        let mut overlay = lock(&self.overlay);
        if port == 0 || overlay.as_ref().is_some_and(|o| o.port() == port) {
            return;
        }
        // The old server goes first, so its port is free to take again.
        *overlay = None;
        *overlay = OverlayServer::start(
            self.shared.config_dir.clone(),
            port,
            &self.presence,
            self.runtime.handle(),
        )
        .map_err(|e| log::warn!("the overlay page is not served: {e}"))
        .ok();
    }

    /// A copy of what the hub knows, for display.
    pub fn status(&self) -> HubStatus {
        lock(&self.shared.status).clone()
    }

    /// Everything the properties show, copied (nothing here waits on the network).
    pub fn view(&self) -> View {
        self.shared.view()
    }

    /// Calls `listener` (from a runtime thread) whenever the view changes;
    /// returns the id to remove it with.
    pub fn add_listener(&self, listener: Listener) -> u64 {
        let id = self.shared.next_listener.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.listeners).push((id, listener));
        id
    }

    /// Redraws every source's properties (something they show changed outside the hub, e.g.
    /// the network test's verdict).
    pub fn notify_view_changed(&self) {
        self.shared.notify();
    }

    /// After this returns the listener is not running and will not run again.
    pub fn remove_listener(&self, id: u64) {
        lock(&self.shared.listeners).retain(|(i, _)| *i != id);
    }

    /// Exchanges the NPSSO on the runtime; stores the client secret (if
    /// given) first. Returns at once.
    pub fn sign_in(&self, npsso: Secret, credentials: Option<(String, Secret)>) {
        let shared = self.shared.clone();
        shared.set_account(|a| {
            a.busy = true;
            a.error = None;
        });
        let handle = self.runtime.handle().clone();
        self.runtime.spawn(async move {
            if let Some((id, secret)) = credentials {
                if let Err(e) = shared.save_client_credentials(&id, &secret) {
                    log::warn!("{e}");
                    shared.set_account(|a| a.error = Some(Cause::Psn(e)));
                }
            }
            // A fresh client: the credentials may have changed.
            let Some(client) = shared.make_client() else {
                shared.set_account(|a| a.busy = false);
                return;
            };
            let outcome = client.sign_in_with_npsso(npsso).await;
            match outcome {
                Ok(_) => {
                    log::info!("signed in to PSN from the properties");
                    lock(&shared.status).sign_in_lost = false;
                    shared.load_account(&client);
                    *lock(&shared.client) = Some(client);
                    shared.set_account(|a| a.error = None);
                    // The waiting session starts now, not after its backoff.
                    shared.restart_session(&handle).await;
                    shared.refresh_parties().await;
                }
                Err(e) => {
                    log::warn!("PSN sign-in failed: {e}");
                    shared.set_account(|a| a.error = Some(Cause::Psn(e)));
                }
            }
            shared.set_account(|a| a.busy = false);
        });
    }

    /// Leaves the party, deletes the stored tokens. Returns at once.
    pub fn sign_out(&self) {
        let shared = self.shared.clone();
        let handle = self.runtime.handle().clone();
        self.runtime.spawn(async move {
            shared.stop_session().await;
            let client = lock(&shared.client).clone();
            let result = match client {
                Some(client) => client.sign_out().await,
                None => shared.token_store().map_or(Ok(()), |s| s.delete()),
            };
            if let Err(e) = result {
                log::warn!("sign-out: {e}");
            }
            *lock(&shared.status) = HubStatus::default();
            *lock(&shared.parties) = PartyList::default();
            shared.set_account(|a| *a = AccountView::default());
            log::info!("signed out of PSN; stored tokens deleted");
            // The session waits for the next sign-in.
            shared.start_session(&handle);
        });
    }

    /// Shows a sign-in problem found before asking PSN (e.g. no NPSSO typed).
    pub fn note_sign_in_problem(&self, cause: Cause) {
        self.shared.set_account(|a| a.error = Some(cause));
    }

    /// As `refresh_parties`, unless the list is fresh (the dialog redraws
    /// often; each redraw must not ask PSN again).
    pub fn refresh_parties_if_stale(&self) {
        let mut fetched = lock(&self.shared.parties_fetched);
        if fetched.is_some_and(|at| at.elapsed() < PARTIES_FRESH) {
            return;
        }
        *fetched = Some(Instant::now());
        drop(fetched);
        self.refresh_parties();
    }

    /// Fetches my current parties for the party list. Returns at once.
    pub fn refresh_parties(&self) {
        let shared = self.shared.clone();
        if lock(&shared.parties).refreshing {
            return;
        }
        lock(&shared.parties).refreshing = true;
        self.runtime
            .spawn(async move { shared.refresh_parties().await });
    }

    /// Follows another party (the PSN Party source's `party` setting).
    pub fn set_party(&self, party: PartyChoice) {
        {
            let mut current = lock(&self.shared.party);
            if *current == party {
                return;
            }
            *current = party;
        }
        let shared = self.shared.clone();
        let handle = self.runtime.handle().clone();
        self.runtime
            .spawn(async move { shared.restart_session(&handle).await });
    }

    /// Resolves a party link (`https://party.playstation.com/...`) to its
    /// party and follows it. Returns at once; the result shows in the view.
    pub fn follow_link(&self, link: &str) {
        let Some(link_id) = link_id_from_link(link) else {
            self.shared
                .set_account(|a| a.link_error = Some(Cause::LinkNotUnderstood));
            return;
        };
        let shared = self.shared.clone();
        let handle = self.runtime.handle().clone();
        self.runtime.spawn(async move {
            let Some(client) = lock(&shared.client).clone() else {
                return;
            };
            match PartyApi::new(client).party_info(&link_id).await {
                Ok(info) if !info.session_id.is_empty() => {
                    shared.set_account(|a| a.link_error = None);
                    *lock(&shared.party) = PartyChoice::Session(info.session_id);
                    shared.restart_session(&handle).await;
                }
                Ok(_) => shared.set_account(|a| a.link_error = Some(Cause::LinkNotUnderstood)),
                Err(e) => {
                    log::warn!("party link: {e}");
                    shared.set_account(|a| a.link_error = Some(Cause::Psn(e)))
                }
            }
        });
    }

    pub fn set_consent(&self, consent: Consent) {
        self.shared.gates.set_consent(consent);
    }

    /// Whether the user's own console is heard in the mix (off by default).
    pub fn set_include_own_console(&self, include: bool) {
        if self
            .shared
            .include_own_console
            .swap(include, Ordering::Relaxed)
            == include
        {
            return;
        }
        if let Some(me) = lock(&self.shared.status).account_id.clone() {
            self.shared.playout.with(|p| p.set_in_mix(&me, include));
        }
    }

    /// For members who connect from now on.
    pub fn set_jitter(&self, preset: JitterPreset) {
        *lock(&self.shared.jitter) = preset;
    }

    /// Feeds `writer` from `target` until the returned guard is dropped.
    pub fn subscribe(self: &Arc<Self>, target: Target, writer: RingWriter) -> Subscription {
        let id = self.shared.playout.with(|p| p.subscribe(target, writer));
        Subscription {
            hub: self.clone(),
            id,
        }
    }

    pub fn add_member(&self, info: MemberInfo, audio: Box<dyn MemberAudio>) {
        self.shared.playout.add_member(info, audio);
    }

    pub fn remove_member(&self, account_id: &str) {
        self.shared.playout.remove_member(account_id);
    }
}

impl HubAccess for HubShared {
    fn view(&self) -> View {
        HubShared::view(self)
    }
    fn client(&self) -> Option<Arc<PsnClient>> {
        lock(&self.client).clone()
    }
}

impl HubShared {
    fn token_store(&self) -> Option<TokenStore> {
        self.config_dir.as_deref().map(TokenStore::in_dir)
    }

    /// The configuration: environment and `.env` first; the client id and
    /// secret from the properties only when those have none.
    fn config(&self) -> Result<PsnConfig, PsnError> {
        let mut config = PsnConfig::from_env(self.config_dir.as_deref())?;
        if config.credentials().is_err() {
            if let Some((id, secret)) = self.config_dir.as_deref().and_then(load_client_file) {
                config.client_id = Some(id);
                config.client_secret = Some(secret);
            }
        }
        Ok(config)
    }

    fn make_client(&self) -> Option<Arc<PsnClient>> {
        match self
            .config()
            .and_then(|config| PsnClient::new(config, ClientOptions::default()))
        {
            Ok(client) => Some(client),
            Err(e) => {
                log::warn!("PSN is not configured: {e}");
                lock(&self.status).error = Some(Cause::Psn(e.clone()));
                self.set_account(|a| a.error = Some(Cause::Psn(e)));
                None
            }
        }
    }

    fn save_client_credentials(&self, id: &str, secret: &Secret) -> Result<(), PsnError> {
        match &self.config_dir {
            Some(dir) => save_client_file(dir, id, secret),
            None => Ok(()),
        }
    }

    /// What the token store says about the sign-in (account, expiry).
    fn load_account(&self, client: &PsnClient) {
        let stored = client
            .config()
            .config_dir
            .as_deref()
            .and_then(|d| TokenStore::in_dir(d).load().ok().flatten());
        self.set_account(|a| {
            a.account_id = stored.as_ref().map(|t| t.account_id.clone());
            a.refresh_expires_at_unix = stored.as_ref().map(|t| t.refresh_expires_at_unix);
        });
    }

    pub(super) fn set_account(&self, change: impl FnOnce(&mut AccountView)) {
        change(&mut lock(&self.account));
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn view(&self) -> View {
        let status = lock(&self.status).clone();
        let mut account = lock(&self.account).clone();
        if status.sign_in_lost {
            // The session found the sign-in gone: the Account group offers Sign in again.
            account.account_id = None;
            account.refresh_expires_at_unix = None;
            if account.error.is_none() {
                account.error = status.error.clone();
            }
        } else if account.account_id.is_none() {
            // The session learns our account too (e.g. signed in from the environment).
            account.account_id = status.account_id.clone();
        }
        let mut speaking = Vec::new();
        let mut muted = Vec::new();
        let bridge = status
            .bridge_stream
            .as_ref()
            .map(|_| super::bridge_link::BRIDGE_MEMBER);
        for id in status
            .members
            .values()
            .map(|m| m.account_id.as_str())
            .chain(bridge)
        {
            if self.gates.speaking(id) {
                speaking.push(id.to_owned());
            }
            if self.gates.muted(id) {
                muted.push(id.to_owned());
            }
        }
        View {
            status,
            account,
            parties: lock(&self.parties).clone(),
            party: lock(&self.party).clone(),
            speaking,
            muted,
        }
    }

    fn start_session(self: &Arc<Self>, handle: &tokio::runtime::Handle) {
        let Some(client) = lock(&self.client).clone() else {
            return;
        };
        let peer_options = crate::voice::net::peer_options(client.config());
        let context = FollowerContext {
            party: lock(&self.party).clone(),
            client,
            playout: self.playout.clone(),
            status: self.status.clone(),
            include_own_console: self.include_own_console.load(Ordering::Relaxed),
            jitter: self.jitter.clone(),
            peer_options,
            voice_path: self.voice_path,
        };
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = std::sync::mpsc::channel();
        handle.spawn(async move {
            follower::run(context, stop_rx).await;
            let _ = done_tx.send(());
        });
        let old = lock(&self.session).replace(SessionTask { stop, done });
        if let Some(old) = old {
            let _ = old.stop.send(true);
        }
    }

    /// Stops the session (it leaves its party) without blocking the runtime.
    async fn stop_session(&self) {
        let task = lock(&self.session).take();
        if let Some(task) = task {
            let _ =
                tokio::task::spawn_blocking(move || task.stop_and_wait(SESSION_STOP_TIMEOUT * 2))
                    .await;
        }
        lock(&self.status).left_party();
    }

    async fn restart_session(self: &Arc<Self>, handle: &tokio::runtime::Handle) {
        self.stop_session().await;
        self.start_session(handle);
    }

    pub(super) fn notify(&self) {
        for (_, listener) in lock(&self.listeners).iter() {
            listener();
        }
    }
}

impl Drop for PartyHub {
    fn drop(&mut self) {
        if let Some(session) = lock(&self.shared.session).take() {
            session.stop_and_wait(SESSION_STOP_TIMEOUT);
        }
        lock(&self.shared.listeners).clear();
        lock(&self.overlay).take();
        lock(&self.shared.playout.playout).stop();
        log::debug!("party hub stopped");
    }
}

/// A source's place in the playout; dropping it stops the feed.
pub struct Subscription {
    hub: Arc<PartyHub>,
    id: SubscriptionId,
}

impl Subscription {
    /// Points the feed at another member (or the mix) without a new ring.
    pub fn retarget(&self, target: Target) {
        self.hub
            .shared
            .playout
            .with(|p| p.retarget(self.id, target));
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.shared.playout.with(|p| p.unsubscribe(self.id));
    }
}
