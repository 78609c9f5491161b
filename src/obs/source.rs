//! The two OBS audio sources: `psn_party` (the whole party, mixed) and
//! `psn_party_member` (one member). Both are an OBS-facing shell around the
//! same parts: a ring that some producer fills, and a pump that feeds OBS.

use std::ffi::{c_char, c_void, CStr};
use std::mem::size_of;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use super::guard::guarded;
use super::module::{text, text_ptr};
use super::party_owner;
use super::properties::{Clicked, Prop, Props};
use super::settings::{Settings, SourceSettings};
use super::sys;
use super::typed_secrets::TypedSecrets;
use std::collections::HashMap;
use std::sync::Arc;

use crate::audio::playout::{MemberSelector, Target};
use crate::audio::pump::{BlockOutput, Pump};
use crate::audio::ring::{audio_ring, BLOCK_FRAMES, DEFAULT_CAPACITY_FRAMES};
use crate::obs::cause_text::{cause_text, LocaleWords};
use crate::party::cause::Cause;
use crate::party::hub::{PartyHub, Subscription};
pub use crate::party::settings::keys;
use crate::party::settings::{
    member_selector, slot_setting, Consent, JitterPreset, PartyChoice, VoicePath, FIRST_SLOT,
    FOLLOW,
};
use crate::party::status::{ordinal, View};

/// Source ids, fixed for scripting (obs-websocket) and saved scenes.
pub const PARTY_SOURCE_ID: &CStr = c"psn_party";
pub const MEMBER_SOURCE_ID: &CStr = c"psn_party_member";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Party,
    Member,
}

/// Registers both sources with OBS.
pub fn register_all() {
    register(PARTY_SOURCE_ID, SourceKind::Party);
    register(MEMBER_SOURCE_ID, SourceKind::Member);
}

fn register(id: &'static CStr, kind: SourceKind) {
    let info = sys::obs_source_info {
        id: id.as_ptr(),
        type_: sys::obs_source_type::OBS_SOURCE_TYPE_INPUT,
        output_flags: sys::OBS_SOURCE_AUDIO | sys::OBS_SOURCE_DO_NOT_DUPLICATE,
        get_name: Some(match kind {
            SourceKind::Party => party_name,
            SourceKind::Member => member_name,
        }),
        create: Some(match kind {
            SourceKind::Party => create_party,
            SourceKind::Member => create_member,
        }),
        destroy: Some(destroy),
        update: Some(update),
        get_defaults: Some(match kind {
            SourceKind::Party => party_defaults,
            SourceKind::Member => member_defaults,
        }),
        get_properties: Some(properties),
        save: Some(save),
        icon_type: sys::obs_icon_type::OBS_ICON_TYPE_AUDIO_INPUT,
        ..Default::default()
    };
    // SAFETY: `info` is fully initialised and OBS copies it (the size tells
    // OBS which fields this build knows); the id string is 'static.
    unsafe { sys::obs_register_source_s(&info, size_of::<sys::obs_source_info>()) };
}

/// An OBS source pointer the delivery thread may use.
struct SourcePtr(*mut sys::obs_source_t);
// SAFETY: libobs allows obs_source_output_audio from any thread, and the
// source's pump is unregistered in `destroy` (no output call after that
// returns), before OBS frees the source.
unsafe impl Send for SourcePtr {}
// SAFETY: shared only to call thread-safe libobs functions (update_properties).
unsafe impl Sync for SourcePtr {}

impl SourcePtr {
    fn get(&self) -> *mut sys::obs_source_t {
        self.0
    }
}

/// Hands pump blocks to OBS: mono f32 at 48 kHz, in OBS's own layout where it can.
struct ObsAudioOutput {
    source: SourcePtr,
    /// `test_output_stall_ms`: a slow output call once a second (tests only).
    #[cfg(feature = "test-producer")]
    stall: (std::time::Duration, u64),
}

/// The layout a mono block is handed to OBS in.
///
/// libobs mixes planar f32 at its own rate and speaker layout; a block in any other layout
/// goes through a swresample resampler of its own per source, which was 40 % of the delivery
/// thread's time with 14 voices (docs/performance.md, "Where the time goes"). When OBS runs
/// at our rate in mono or stereo, the block is given in OBS's layout instead, stereo as both
/// planes pointing at the same samples: what libobs's own mono upmix computes (gain 1 on each
/// channel), so the audio is the same to the bit and libobs copies it without a resampler.
/// Other layouts (surround, another rate) stay mono and libobs converts them as before.
fn obs_layout_for_mono() -> (sys::speaker_layout, sys::audio_format, usize) {
    let mut info = sys::obs_audio_info::default();
    // SAFETY: reads libobs's audio settings into a local struct; libobs returns false
    // (leaving it untouched) before audio is set up.
    let known = unsafe { sys::obs_get_audio_info(&mut info) };
    let at_our_rate = known && info.samples_per_sec == crate::audio::ring::SAMPLE_RATE;
    match info.speakers {
        sys::speaker_layout::SPEAKERS_STEREO if at_our_rate => (
            sys::speaker_layout::SPEAKERS_STEREO,
            sys::audio_format::AUDIO_FORMAT_FLOAT_PLANAR,
            2,
        ),
        // One plane: planar and interleaved are the same bytes; planar is what OBS mixes.
        sys::speaker_layout::SPEAKERS_MONO if at_our_rate => (
            sys::speaker_layout::SPEAKERS_MONO,
            sys::audio_format::AUDIO_FORMAT_FLOAT_PLANAR,
            1,
        ),
        _ => (
            sys::speaker_layout::SPEAKERS_MONO,
            sys::audio_format::AUDIO_FORMAT_FLOAT,
            1,
        ),
    }
}

impl BlockOutput for ObsAudioOutput {
    fn now_ns(&self) -> u64 {
        // SAFETY: a plain clock read.
        unsafe { sys::os_gettime_ns() }
    }

    fn output(&mut self, block: &[f32; BLOCK_FRAMES], timestamp_ns: u64) {
        // Asked on every block (a few loads): OBS may reset its audio between blocks.
        let (speakers, format, planes) = obs_layout_for_mono();
        let mut audio = sys::obs_source_audio {
            frames: BLOCK_FRAMES as u32,
            speakers,
            format,
            samples_per_sec: crate::audio::ring::SAMPLE_RATE,
            timestamp: timestamp_ns,
            ..Default::default()
        };
        for plane in &mut audio.data[..planes] {
            *plane = block.as_ptr().cast();
        }
        // SAFETY: the source is alive (see SourcePtr); OBS only reads the planes and
        // copies the block before returning.
        unsafe { sys::obs_source_output_audio(self.source.0, &audio) };
        #[cfg(feature = "test-producer")]
        {
            let (stall, count) = &mut self.stall;
            *count += 1;
            if !stall.is_zero() && *count % 100 == 50 {
                std::thread::sleep(*stall);
            }
        }
    }
}

/// Where a source's audio comes from, as its settings say.
#[derive(Debug, Clone, PartialEq)]
enum Feed {
    /// The party: the mix, or one member.
    Party(Target),
    /// The test tone (`test_tone_hz` > 0; test builds only).
    #[cfg(feature = "test-producer")]
    Tone(crate::audio::test_tone::ToneSpec),
}

impl Feed {
    fn from_settings(kind: SourceKind, settings: &Settings) -> Feed {
        #[cfg(feature = "test-producer")]
        {
            let hz = settings.double(keys::TEST_TONE_HZ);
            if hz > 0.0 {
                return Feed::Tone(crate::audio::test_tone::ToneSpec {
                    hz,
                    amplitude: settings.double(keys::TEST_AMPLITUDE) as f32,
                    burst_ms: settings.int(keys::TEST_BURST_MS).clamp(1, 1000) as u32,
                });
            }
        }
        match kind {
            SourceKind::Party => Feed::Party(Target::Mix),
            SourceKind::Member => {
                let text = settings.string(keys::MEMBER);
                let selector = member_selector(&text).unwrap_or_else(|| {
                    log::warn!("member setting {text:?} is neither an online id nor slot:N; the source stays silent");
                    MemberSelector::OnlineId(text)
                });
                Feed::Party(Target::Member(selector))
            }
        }
    }
}

/// What fills the ring right now.
enum Producer {
    Nothing,
    Party(Subscription),
    #[cfg(feature = "test-producer")]
    Tone(crate::audio::test_tone::ToneProducer),
}

impl Producer {
    /// Stops whatever runs (for the tone: waits for its task).
    fn stop(self) {
        match self {
            Producer::Nothing | Producer::Party(_) => {}
            #[cfg(feature = "test-producer")]
            Producer::Tone(tone) => drop(tone.stop()),
        }
    }
}

/// One source instance: what `create` returns to OBS as its data pointer.
struct PartySource {
    kind: SourceKind,
    source: *mut sys::obs_source_t,
    hub: Arc<PartyHub>,
    feed: Option<Feed>,
    producer: Producer,
    pump: Option<Pump>,
    #[cfg(feature = "test-producer")]
    output_stall_ms: u64,
    failed: bool,
    /// Redraws this source's properties when the hub's view changes.
    listener: u64,
    /// The NPSSO and client secret, out of the settings.
    typed: TypedSecrets,
}

/// What `create` returns to OBS. A source that could not start is inert
/// (silent, no dialog) rather than NULL: libobs skips `update` and `save`
/// for a NULL source, so secrets set on it (by obs-websocket) would stay in
/// its settings and reach the scene collection.
enum Instance {
    Live(PartySource),
    Inert,
}

impl PartySource {
    fn new(kind: SourceKind, source: *mut sys::obs_source_t, settings: &Settings) -> Option<Self> {
        #[cfg(feature = "test-producer")]
        if settings.string(keys::TEST_PANIC) == "create" {
            log::error!("create fails as the test_panic setting asks");
            return None;
        }
        let party = PartyChoice::from_setting(&settings.string(keys::PARTY));
        let path = VoicePath::from_setting(&settings.string(keys::VOICE_PATH));
        let hub = PartyHub::shared(super::module::config_dir(), party, path)
            .map_err(|e| log::error!("cannot start the party hub: {e}"))
            .ok()?;
        let mut this = PartySource {
            kind,
            source,
            hub,
            feed: None,
            producer: Producer::Nothing,
            pump: None,
            #[cfg(feature = "test-producer")]
            output_stall_ms: 0,
            failed: false,
            listener: 0,
            typed: TypedSecrets::default(),
        };
        if kind == SourceKind::Party {
            party_owner::join(source);
        }
        let me = SourcePtr(source);
        this.listener = this.hub.add_listener(Box::new(move || {
            // SAFETY: the listener is removed in `shutdown`, before OBS frees
            // the source; OBS queues the redraw to its UI thread.
            unsafe { sys::obs_source_update_properties(me.get()) }
        }));
        this.update(settings);
        log::debug!("{kind:?} source created");
        Some(this)
    }

    fn update(&mut self, settings: &Settings) {
        // First, before anything that can fail or return early.
        self.typed.take_from(settings);
        if self.failed {
            return;
        }
        #[cfg(feature = "test-producer")]
        if settings.string(keys::TEST_PANIC) == "update" {
            panic!("test panic requested by the test_panic setting");
        }
        // The overlay's address carries its token: typing into its field must not make it a
        // setting (it would be saved and handed to obs-websocket).
        settings.erase(keys::OVERLAY_URL);
        self.apply_party_settings(settings);
        #[cfg(feature = "test-producer")]
        {
            self.output_stall_ms = settings.int(keys::TEST_OUTPUT_STALL_MS).clamp(0, 1000) as u64;
        }
        let feed = Feed::from_settings(self.kind, settings);
        if self.feed.as_ref() == Some(&feed) {
            return;
        }
        if let (Producer::Party(subscription), Feed::Party(target)) = (&self.producer, &feed) {
            // Another member: same ring, same pump, same timestamps.
            subscription.retarget(target.clone());
        } else {
            self.restart(&feed);
        }
        self.feed = Some(feed);
    }

    /// What the PSN Party source's settings ask of the shared hub, and
    /// the sync offset of either source.
    fn apply_party_settings(&self, settings: &Settings) {
        let offset_ns = settings.int(keys::SYNC_OFFSET_MS).clamp(-1000, 20_000) * 1_000_000;
        // SAFETY: our live source.
        unsafe { sys::obs_source_set_sync_offset(self.source, offset_ns) };
        if self.kind != SourceKind::Party || !party_owner::is_owner(self.source) {
            // Member sources, and PSN Party sources after the first: the hub follows the
            // first PSN Party source's choices (src/obs/party_owner.rs).
            return;
        }
        self.hub
            .set_party(PartyChoice::from_setting(&settings.string(keys::PARTY)));
        self.hub.set_consent(Consent {
            only_allowed: settings.bool(keys::ONLY_ALLOWED),
            allowed: settings
                .user_bools_with_prefix(keys::ALLOW_PREFIX)
                .into_iter()
                .collect::<HashMap<_, _>>(),
        });
        self.hub
            .set_include_own_console(settings.bool(keys::INCLUDE_OWN_CONSOLE));
        self.hub
            .set_jitter(JitterPreset::from_setting(&settings.string(keys::JITTER)));
        crate::voice::net::set_stun_setting(&settings.string(keys::STUN_SERVERS));
        let port = settings.int(keys::OVERLAY_PORT).clamp(0, 65_535) as u16;
        self.hub.set_overlay_port(port);
    }

    /// "Test network": runs on the runtime; the dialog redraws with the verdict.
    fn test_network(&self) {
        let hub = Arc::downgrade(&self.hub);
        let config_dir = super::module::config_dir();
        crate::net_test::start(self.hub.runtime().handle(), config_dir, move || {
            if let Some(hub) = hub.upgrade() {
                hub.notify_view_changed();
            }
        });
    }

    /// "Sign in": hands the NPSSO (and a typed client secret) that `update`
    /// took out of the settings to the hub, keeping neither. Returns at once.
    fn sign_in(&mut self) {
        // SAFETY: our live source.
        let settings = unsafe { SourceSettings::of(self.source) };
        // Whatever is in the settings now (nothing, normally) goes the same way.
        self.typed.take_from(&settings);
        let client_id = settings.string(keys::CLIENT_ID).trim().to_owned();
        let (npsso, client_secret) = self.typed.take();
        let Some(npsso) = npsso else {
            self.hub.note_sign_in_problem(Cause::NpssoMissing);
            return;
        };
        let credentials = client_secret
            .filter(|_| !client_id.is_empty())
            .map(|secret| (client_id, secret));
        self.hub.sign_in(npsso, credentials);
    }

    /// A fresh ring and pump (on the process's one delivery thread), fed by `feed`.
    fn restart(&mut self, feed: &Feed) {
        self.stop_feed();
        let frames = match feed {
            Feed::Party(_) => DEFAULT_CAPACITY_FRAMES,
            #[cfg(feature = "test-producer")]
            Feed::Tone(_) => crate::audio::test_tone::RING_FRAMES,
        };
        let (writer, reader) = audio_ring(frames);
        let name = match self.kind {
            SourceKind::Party => "the PSN Party source",
            SourceKind::Member => "a PSN Party Member source",
        };
        let output = ObsAudioOutput {
            source: SourcePtr(self.source),
            #[cfg(feature = "test-producer")]
            stall: (std::time::Duration::from_millis(self.output_stall_ms), 0),
        };
        match Pump::start(name, reader, output) {
            Ok(pump) => self.pump = Some(pump),
            Err(e) => {
                log::error!("cannot start the audio thread: {e}");
                return;
            }
        }
        self.producer = match feed {
            Feed::Party(target) => Producer::Party(self.hub.subscribe(target.clone(), writer)),
            #[cfg(feature = "test-producer")]
            Feed::Tone(spec) => Producer::Tone(crate::audio::test_tone::ToneProducer::start(
                self.hub.runtime(),
                *spec,
                writer,
            )),
        };
    }

    fn stop_feed(&mut self) {
        std::mem::replace(&mut self.producer, Producer::Nothing).stop();
        if let Some(mut pump) = self.pump.take() {
            pump.stop();
            log::info!("{:?} source audio: {}", self.kind, pump.stats().summary());
        }
    }

    /// Stops everything this source started and waits for it.
    fn shutdown(&mut self) {
        if self.kind == SourceKind::Party {
            party_owner::leave(self.source);
        }
        self.hub.remove_listener(self.listener);
        self.stop_feed();
        self.feed = None;
    }

    /// After an internal error: stop, and stay silent until destroyed.
    fn go_silent(&mut self) {
        self.failed = true;
        let _ = catch_unwind(AssertUnwindSafe(|| self.shutdown()));
    }
}

/// Runs `body` on the live source behind `data` (`fallback` for an inert
/// one); a panic makes that source silent.
fn with_source<R>(
    data: *mut c_void,
    what: &'static str,
    fallback: R,
    body: impl FnOnce(&mut PartySource) -> R,
) -> R {
    if data.is_null() {
        return fallback;
    }
    // SAFETY: `data` is the pointer `create` returned, alive until `destroy`;
    // OBS does not call a source's callbacks concurrently with its destroy.
    let Instance::Live(source) = (unsafe { &mut *data.cast::<Instance>() }) else {
        return fallback;
    };
    match catch_unwind(AssertUnwindSafe(|| body(source))) {
        Ok(value) => value,
        Err(_) => {
            log::error!("internal error in {what}; this source stays silent until re-created");
            source.go_silent();
            fallback
        }
    }
}

unsafe extern "C" fn party_name(_type_data: *mut c_void) -> *const c_char {
    text_ptr(c"PsnParty", c"PSN Party")
}

unsafe extern "C" fn member_name(_type_data: *mut c_void) -> *const c_char {
    text_ptr(c"PsnPartyMember", c"PSN Party Member")
}

fn create(
    kind: SourceKind,
    settings: *mut sys::obs_data_t,
    source: *mut sys::obs_source_t,
) -> *mut c_void {
    // SAFETY: OBS passes valid settings for the duration of create.
    let settings = unsafe { Settings::from_raw(settings) };
    let instance = guarded("create", None, || PartySource::new(kind, source, &settings))
        .map_or(Instance::Inert, Instance::Live);
    if let Instance::Inert = instance {
        log::error!("this {kind:?} source could not start; it stays silent until re-created");
        // Nothing will use them; they must not stay in the settings either.
        TypedSecrets::default().take_from(&settings);
    }
    Box::into_raw(Box::new(instance)).cast()
}

unsafe extern "C" fn create_party(
    settings: *mut sys::obs_data_t,
    source: *mut sys::obs_source_t,
) -> *mut c_void {
    create(SourceKind::Party, settings, source)
}

unsafe extern "C" fn create_member(
    settings: *mut sys::obs_data_t,
    source: *mut sys::obs_source_t,
) -> *mut c_void {
    create(SourceKind::Member, settings, source)
}

unsafe extern "C" fn destroy(data: *mut c_void) {
    if data.is_null() {
        return;
    }
    // SAFETY: `data` came from Box::into_raw in `create`; OBS calls destroy once.
    let instance = unsafe { Box::from_raw(data.cast::<Instance>()) };
    guarded("destroy", (), move || {
        if let Instance::Live(mut state) = *instance {
            let kind = state.kind;
            state.shutdown();
            drop(state);
            log::debug!("{kind:?} source destroyed");
        }
    });
}

unsafe extern "C" fn update(data: *mut c_void, settings: *mut sys::obs_data_t) {
    // SAFETY: OBS passes valid settings for the duration of update.
    let settings = unsafe { Settings::from_raw(settings) };
    if with_source(data, "update", false, |source| {
        source.update(&settings);
        true
    }) {
        return;
    }
    // Inert, silenced by a panic, or the update panicked: still no secret
    // stays in the settings.
    guarded("update", (), || {
        TypedSecrets::default().take_from(&settings)
    });
}

fn common_defaults(settings: &Settings) {
    settings.set_default_string(keys::PARTY, FOLLOW);
    settings.set_default_string(keys::JITTER, JitterPreset::default().as_setting());
    settings.set_default_int(keys::SYNC_OFFSET_MS, 0);
    #[cfg(feature = "test-producer")]
    settings.set_default_double(keys::TEST_AMPLITUDE, 0.5);
    #[cfg(feature = "test-producer")]
    settings.set_default_int(keys::TEST_BURST_MS, 10);
}

unsafe extern "C" fn party_defaults(settings: *mut sys::obs_data_t) {
    guarded("defaults", (), || {
        // SAFETY: OBS passes valid settings for the duration of the call.
        common_defaults(&unsafe { Settings::from_raw(settings) });
    });
}

unsafe extern "C" fn member_defaults(settings: *mut sys::obs_data_t) {
    guarded("defaults", (), || {
        // SAFETY: OBS passes valid settings for the duration of the call.
        let settings = unsafe { Settings::from_raw(settings) };
        common_defaults(&settings);
        settings.set_default_string(keys::MEMBER, &slot_setting(FIRST_SLOT));
    });
}

/// Keeps secrets out of the scene collection: OBS calls this just before it
/// writes the settings (obs_save_source).
unsafe extern "C" fn save(_data: *mut c_void, settings: *mut sys::obs_data_t) {
    guarded("save", (), || {
        // SAFETY: OBS passes valid settings for the duration of the call.
        let settings = unsafe { Settings::from_raw(settings) };
        settings.erase(keys::NPSSO);
        settings.erase(keys::CLIENT_SECRET);
        settings.erase(keys::OVERLAY_URL);
    });
}

unsafe extern "C" fn properties(data: *mut c_void) -> *mut sys::obs_properties_t {
    // What the hub knows right now (a copy: nothing here waits on the network).
    let built = with_source(data, "properties", None, |source| {
        let view = source.hub.view();
        // Opening the dialog refreshes the party list (on the runtime).
        if source.kind == SourceKind::Party && view.signed_in() {
            source.hub.refresh_parties_if_stale();
        }
        // SAFETY: our live source.
        let settings = unsafe { SourceSettings::of(source.source) };
        Some(match source.kind {
            SourceKind::Party => match party_owner::owner_name_if_not(source.source) {
                None => {
                    let mut props = party_properties(&view, &settings, source.typed.has_npsso());
                    overlay_group(&mut props, &settings, source.hub.overlay_url());
                    props
                }
                Some(owner) => follower_properties(&view, &owner),
            },
            SourceKind::Member => member_properties(&view, &settings),
        })
    });
    guarded("properties", ptr::null_mut(), || {
        built
            .unwrap_or_else(|| {
                let mut props = Props::new();
                props.info("status", &text("Status.NotConnected"));
                props
            })
            .into_raw()
    })
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The PSN Party source's dialog: Account, Party, Members, Audio, Advanced.
fn party_properties(view: &View, settings: &Settings, npsso_waiting: bool) -> Props {
    let mut props = Props::new();

    let mut account = Props::new();
    let line = view.account_line(&LocaleWords, now_unix());
    let problem =
        view.account.error.is_some() || (!view.signed_in() && view.status.problem().is_some());
    if problem {
        account.error("account_status", &line);
    } else {
        account.info("account_status", &line);
    }
    if view.signed_in() {
        add_button(&mut account, Button::SignOut);
    } else {
        account
            .password(keys::NPSSO, &text("Account.Npsso"))
            .tooltip(&text("Account.NpssoTooltip"));
        if npsso_waiting {
            // The field shows empty: the NPSSO left the settings at once.
            account.info("npsso_waiting", &text("Account.NpssoWaiting"));
        }
        account.info("npsso_hint", &text("Account.NpssoHint"));
        add_button(&mut account, Button::SignIn).enabled(!view.account.busy);
    }
    props.group("account", &text("Group.Account"), account);

    let mut party = Props::new();
    party.info("party_status", &view.status.headline(&LocaleWords));
    // The whole roster on one line, for scripts and tests (the dialog shows
    // it as the Members group).
    party
        .info("status", &view.status.summary(&LocaleWords))
        .visible(false);
    party.list(
        keys::PARTY,
        &text("Party.Choice"),
        false,
        &view.party_items(&LocaleWords),
    );
    add_button(&mut party, Button::RefreshParties);
    error_row(&mut party, "parties_error", view.parties.error.as_ref());
    party
        .text_input(keys::PARTY_LINK, &text("Party.Link"))
        .tooltip(&text("Party.LinkTooltip"));
    add_button(&mut party, Button::JoinLink);
    error_row(&mut party, "link_error", view.account.link_error.as_ref());
    props.group("party_group", &text("Group.Party"), party);

    let mut members = Props::new();
    let rows = view.member_rows(&LocaleWords);
    let only_allowed = settings.bool(keys::ONLY_ALLOWED);
    if rows.is_empty() {
        members.info("members_none", &text("Members.None"));
    }
    for row in &rows {
        let key = Consent::allow_key(&row.account_id);
        if only_allowed && !row.own_console {
            // Unticked, and silent (Consent::allows), until the user ticks them.
            settings.set_default_bool(&key, false);
            members.checkbox(&key, &row.line);
        } else {
            members.info(&format!("member_{}", row.account_id), &row.line);
        }
    }
    members
        .checkbox(keys::ONLY_ALLOWED, &text("Members.OnlyAllowed"))
        .tooltip(&text("Members.OnlyAllowedTooltip"))
        .reload_on_change(reload);
    members.checkbox(
        keys::INCLUDE_OWN_CONSOLE,
        &text("Members.IncludeOwnConsole"),
    );
    props.group("members", &text("Group.Members"), members);

    audio_group(&mut props, true);

    let mut advanced = Props::new();
    advanced.info("advanced_hint", &text("Advanced.Hint"));
    advanced.text_input(keys::CLIENT_ID, &text("Advanced.ClientId"));
    advanced.password(keys::CLIENT_SECRET, &text("Advanced.ClientSecret"));
    advanced
        .text_input(keys::STUN_SERVERS, &text("Advanced.StunServers"))
        .tooltip(&text("Advanced.StunServersTooltip"));
    add_button(&mut advanced, Button::NetworkTest);
    advanced.info("network_result", &net_test_line());
    props.group("advanced", &text("Group.Advanced"), advanced);
    props
}

/// A PSN Party source after the first: the party's state, whose settings apply, and its own
/// sync offset.
fn follower_properties(view: &View, owner: &str) -> Props {
    let mut props = Props::new();
    props.info("owner_note", &text("Party.UsesOwner").replace("%1", owner));
    props.info("party_status", &view.status.headline(&LocaleWords));
    props
        .info("status", &view.status.summary(&LocaleWords))
        .visible(false);
    audio_group(&mut props, false);
    props
}

/// The speaking overlay: its address in a text field to select and copy (token included; a
/// default value only, so neither scene files nor obs-websocket carry it), an Open button, the
/// port.
fn overlay_group(props: &mut Props, settings: &Settings, url: Option<String>) {
    let mut overlay = Props::new();
    match url {
        Some(url) => {
            settings.set_default_string(keys::OVERLAY_URL, &url);
            overlay
                .text_input(keys::OVERLAY_URL, &text("Overlay.Url"))
                .tooltip(&text("Overlay.Hint"));
            overlay.info("overlay_hint", &text("Overlay.Hint"));
            overlay.url_button("overlay_open", &text("Overlay.Open"), &url);
        }
        None => {
            settings.set_default_string(keys::OVERLAY_URL, "");
            overlay.error("overlay_error", &text("Overlay.NotServed"));
        }
    }
    overlay
        .int(keys::OVERLAY_PORT, &text("Overlay.Port"), 0, 65_535, 1)
        .tooltip(&text("Overlay.PortTooltip"));
    props.group("overlay", &text("Group.Overlay"), overlay);
}

fn audio_group(props: &mut Props, jitter: bool) {
    let mut audio = Props::new();
    audio
        .int(
            keys::SYNC_OFFSET_MS,
            &text("Audio.SyncOffset"),
            -1000,
            20_000,
            10,
        )
        .suffix(" ms")
        .tooltip(&text("Audio.SyncOffsetTooltip"));
    if jitter {
        let items = [
            ("Audio.JitterLow", JitterPreset::LowLatency.as_setting()),
            ("Audio.JitterBalanced", JitterPreset::Balanced.as_setting()),
            ("Audio.JitterStable", JitterPreset::Stable.as_setting()),
        ]
        .map(|(k, v)| (text(k), v.to_owned()));
        audio
            .list(keys::JITTER, &text("Audio.Jitter"), false, &items)
            .tooltip(&text("Audio.JitterTooltip"));
    }
    props.group("audio", &text("Group.Audio"), audio);
}

/// The PSN Party Member source's dialog: who, their state, sync offset.
fn member_properties(view: &View, settings: &Settings) -> Props {
    let mut props = Props::new();
    let chosen = settings.string(keys::MEMBER);
    let rows = view.member_rows(&LocaleWords);
    if !view.signed_in() {
        props.error("status", &text("MemberSource.SignInFirst"));
    } else {
        let mut line = view.status.headline(&LocaleWords);
        if let Some(row) = rows
            .iter()
            .find(|r| r.online_id.eq_ignore_ascii_case(&chosen))
        {
            line = format!("{line}\n{}", row.line);
        }
        props.info("status", &line);
    }
    // The "party (bridge)" row is picked as `bridge` (a slot-less pseudo-member), not listed.
    let others: Vec<_> = rows
        .iter()
        .filter(|r| !r.own_console && r.account_id != crate::party::bridge_link::BRIDGE_MEMBER)
        .collect();
    let mut items: Vec<(String, String)> = (1..=others.len().max(4))
        .map(|n| {
            (
                text("MemberSource.Slot").replace("%1", &ordinal(n)),
                slot_setting(n),
            )
        })
        .collect();
    items.extend(
        others
            .iter()
            .map(|r| (r.online_id.clone(), r.online_id.clone())),
    );
    // A choice made by a script, or a member not here right now, stays listed.
    if !chosen.is_empty() && !items.iter().any(|(_, v)| v.eq_ignore_ascii_case(&chosen)) {
        items.push((
            text("MemberSource.NotHere").replace("%1", &chosen),
            chosen.clone(),
        ));
    }
    props
        .list(keys::MEMBER, &text("MemberSource.Member"), false, &items)
        .tooltip(&text("MemberSource.MemberTooltip"));
    audio_group(&mut props, false);
    props
}

fn add_button(props: &mut Props, button: Button) -> Prop {
    let (name, label) = button.property();
    props.button(name, &text(label), button.callback())
}

/// A red line under what failed, when something did.
fn error_row(props: &mut Props, name: &str, error: Option<&Cause>) {
    if let Some(error) = error {
        props.error(
            name,
            &text("Status.Error").replace("%1", &cause_text(error)),
        );
    }
}

/// The buttons of the properties dialog.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Button {
    SignIn,
    SignOut,
    RefreshParties,
    JoinLink,
    NetworkTest,
}

impl Button {
    const ALL: [Button; 5] = [
        Button::SignIn,
        Button::SignOut,
        Button::RefreshParties,
        Button::JoinLink,
        Button::NetworkTest,
    ];

    /// `clicked::<B>` finds its button at `ALL[B]`.
    const IN_ORDER: () = {
        let mut i = 0;
        while i < Button::ALL.len() {
            assert!(Button::ALL[i] as usize == i);
            i += 1;
        }
    };

    /// The property's name and the locale key of its label.
    fn property(self) -> (&'static str, &'static str) {
        match self {
            Button::SignIn => ("sign_in", "Account.SignIn"),
            Button::SignOut => ("sign_out", "Account.SignOut"),
            Button::RefreshParties => ("refresh_parties", "Party.Refresh"),
            Button::JoinLink => ("join_link", "Party.JoinLink"),
            Button::NetworkTest => ("network_test", "NetTest.Button"),
        }
    }

    fn callback(self) -> Clicked {
        match self {
            Button::SignIn => clicked::<{ Button::SignIn as u8 }>,
            Button::SignOut => clicked::<{ Button::SignOut as u8 }>,
            Button::RefreshParties => clicked::<{ Button::RefreshParties as u8 }>,
            Button::JoinLink => clicked::<{ Button::JoinLink as u8 }>,
            Button::NetworkTest => clicked::<{ Button::NetworkTest as u8 }>,
        }
    }

    /// What the log calls the click if it fails.
    fn what(self) -> &'static str {
        match self {
            Button::SignIn => "sign in",
            Button::SignOut => "sign out",
            Button::RefreshParties => "refresh parties",
            Button::JoinLink => "join by link",
            Button::NetworkTest => "test network",
        }
    }

    fn press(self, source: &mut PartySource) {
        match self {
            Button::SignIn => source.sign_in(),
            Button::SignOut => source.hub.sign_out(),
            Button::RefreshParties => source.hub.refresh_parties(),
            Button::JoinLink => {
                // SAFETY: our live source.
                let settings = unsafe { SourceSettings::of(source.source) };
                source.hub.follow_link(&settings.string(keys::PARTY_LINK));
            }
            Button::NetworkTest => source.test_network(),
        }
    }
}

/// OBS's click callback for button `B` (a [`Button`] as u8: one function per button, chosen
/// when the dialog is built); `true` redraws.
unsafe extern "C" fn clicked<const B: u8>(
    _props: *mut sys::obs_properties_t,
    _prop: *mut sys::obs_property_t,
    data: *mut c_void,
) -> bool {
    #[allow(clippy::let_unit_value)]
    let () = Button::IN_ORDER;
    let button = Button::ALL[B as usize];
    with_source(data, button.what(), false, |source| {
        button.press(source);
        true
    })
}

/// The network test's verdict in the words of a PlayStation's own network test.
fn net_test_line() -> String {
    use crate::net_test::NatVerdict;
    match crate::net_test::last() {
        NatVerdict::Idle => text("NetTest.Idle"),
        NatVerdict::Running => text("NetTest.Running"),
        NatVerdict::NoServers => text("NetTest.NoServers"),
        NatVerdict::NoAnswer(servers) => {
            text("NetTest.NoAnswer").replace("%1", &servers.join(", "))
        }
        NatVerdict::OneServer { server, mapped } => text("NetTest.OneServer")
            .replace("%1", &server)
            .replace("%2", &mapped.to_string()),
        NatVerdict::Type1 { mapped } => text("NetTest.Type1").replace("%1", &mapped.to_string()),
        NatVerdict::Type2 { mapped } => text("NetTest.Type2").replace("%1", &mapped.to_string()),
        NatVerdict::Type3 { first, second } => text("NetTest.Type3")
            .replace("%1", &first.to_string())
            .replace("%2", &second.to_string()),
    }
}

/// A property whose change shows or hides others.
unsafe extern "C" fn reload(
    _props: *mut sys::obs_properties_t,
    _prop: *mut sys::obs_property_t,
    _settings: *mut sys::obs_data_t,
) -> bool {
    true
}
