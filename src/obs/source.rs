//! The two OBS audio sources: `psn_party` (the whole party, mixed) and
//! `psn_party_member` (one member). Both are an OBS-facing shell around the
//! same parts: a ring that some producer fills, and a pump that feeds OBS.

use std::ffi::{c_char, c_void, CStr};
use std::mem::size_of;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use super::guard::guarded;
use super::module::{text, text_ptr};
use super::settings::Settings;
use super::sys;
use std::sync::Arc;

use crate::audio::playout::{MemberSelector, Target};
use crate::audio::pump::{BlockOutput, Pump};
use crate::audio::ring::{audio_ring, BLOCK_FRAMES, DEFAULT_CAPACITY_FRAMES};
use crate::party::hub::{PartyHub, Subscription};
use crate::party::session::PartyChoice;
use crate::party::voice_links::VoicePath;

/// Source ids, fixed for scripting (obs-websocket) and saved scenes.
pub const PARTY_SOURCE_ID: &CStr = c"psn_party";
pub const MEMBER_SOURCE_ID: &CStr = c"psn_party_member";

/// Settings keys, fixed for scripting (see docs/settings.md).
pub mod keys {
    /// `"follow"` (the party my account is in) or a party session id.
    pub const PARTY: &str = "party";
    /// On both sources: `"auto"` (default), `"p2p"` or `"bridge"` (docs/settings.md).
    pub const VOICE_PATH: &str = "voice_path";
    /// On `psn_party_member`: an online id, or `"slot:N"`.
    pub const MEMBER: &str = "member";
    #[cfg(feature = "test-producer")]
    pub const TEST_TONE_HZ: &str = "test_tone_hz";
    #[cfg(feature = "test-producer")]
    pub const TEST_BURST_MS: &str = "test_burst_ms";
    #[cfg(feature = "test-producer")]
    pub const TEST_AMPLITUDE: &str = "test_amplitude";
    /// `"update"` makes the next update panic, to test that OBS survives it.
    #[cfg(feature = "test-producer")]
    pub const TEST_PANIC: &str = "test_panic";
}

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
        icon_type: sys::obs_icon_type::OBS_ICON_TYPE_AUDIO_INPUT,
        ..Default::default()
    };
    // SAFETY: `info` is fully initialised and OBS copies it (the size tells
    // OBS which fields this build knows); the id string is 'static.
    unsafe { sys::obs_register_source_s(&info, size_of::<sys::obs_source_info>()) };
}

/// An OBS source pointer the pump thread may use.
struct SourcePtr(*mut sys::obs_source_t);
// SAFETY: libobs allows obs_source_output_audio from any thread, and the pump
// is joined in `destroy`, before OBS frees the source.
unsafe impl Send for SourcePtr {}

/// Hands pump blocks to OBS as mono f32 at 48 kHz.
struct ObsAudioOutput {
    source: SourcePtr,
}

impl BlockOutput for ObsAudioOutput {
    fn now_ns(&self) -> u64 {
        // SAFETY: a plain clock read.
        unsafe { sys::os_gettime_ns() }
    }

    fn output(&mut self, block: &[f32; BLOCK_FRAMES], timestamp_ns: u64) {
        let mut audio = sys::obs_source_audio {
            frames: BLOCK_FRAMES as u32,
            speakers: sys::speaker_layout::SPEAKERS_MONO,
            format: sys::audio_format::AUDIO_FORMAT_FLOAT,
            samples_per_sec: crate::audio::ring::SAMPLE_RATE,
            timestamp: timestamp_ns,
            ..Default::default()
        };
        audio.data[0] = block.as_ptr().cast();
        // SAFETY: the source is alive (see SourcePtr); OBS copies the block
        // before returning.
        unsafe { sys::obs_source_output_audio(self.source.0, &audio) };
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
                let selector = MemberSelector::parse(&text).unwrap_or_else(|| {
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
    failed: bool,
}

impl PartySource {
    fn new(kind: SourceKind, source: *mut sys::obs_source_t, settings: &Settings) -> Option<Self> {
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
            failed: false,
        };
        this.update(settings);
        log::debug!("{kind:?} source created");
        Some(this)
    }

    fn update(&mut self, settings: &Settings) {
        if self.failed {
            return;
        }
        #[cfg(feature = "test-producer")]
        if settings.string(keys::TEST_PANIC) == "update" {
            panic!("test panic requested by the test_panic setting");
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

    /// A fresh ring and pump, fed by `feed`.
    fn restart(&mut self, feed: &Feed) {
        self.stop_feed();
        let (writer, reader) = audio_ring(DEFAULT_CAPACITY_FRAMES);
        let thread_name = match self.kind {
            SourceKind::Party => "psn-pump-party",
            SourceKind::Member => "psn-pump-member",
        };
        let output = ObsAudioOutput {
            source: SourcePtr(self.source),
        };
        match Pump::start(thread_name, reader, output) {
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
        }
    }

    /// Stops everything this source started and waits for it.
    fn shutdown(&mut self) {
        self.stop_feed();
        self.feed = None;
    }

    /// After an internal error: stop, and stay silent until destroyed.
    fn go_silent(&mut self) {
        self.failed = true;
        let _ = catch_unwind(AssertUnwindSafe(|| self.shutdown()));
    }
}

/// Runs `body` on the source behind `data`; a panic makes that source silent.
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
    let source = unsafe { &mut *data.cast::<PartySource>() };
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
    guarded("create", ptr::null_mut(), || {
        // SAFETY: OBS passes valid settings for the duration of create.
        let settings = unsafe { Settings::from_raw(settings) };
        match PartySource::new(kind, source, &settings) {
            Some(state) => Box::into_raw(Box::new(state)).cast(),
            None => ptr::null_mut(),
        }
    })
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
    let mut state = unsafe { Box::from_raw(data.cast::<PartySource>()) };
    guarded("destroy", (), move || {
        let kind = state.kind;
        state.shutdown();
        drop(state);
        log::debug!("{kind:?} source destroyed");
    });
}

unsafe extern "C" fn update(data: *mut c_void, settings: *mut sys::obs_data_t) {
    // SAFETY: OBS passes valid settings for the duration of update.
    let settings = unsafe { Settings::from_raw(settings) };
    with_source(data, "update", (), |source| source.update(&settings));
}

fn common_defaults(settings: &Settings) {
    settings.set_default_string(keys::PARTY, "follow");
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
        settings.set_default_string(keys::MEMBER, "slot:1");
    });
}

unsafe extern "C" fn properties(data: *mut c_void) -> *mut sys::obs_properties_t {
    // What the hub knows right now (a copy: nothing here waits on the network).
    let status = with_source(data, "properties", None, |source| Some(source.hub.status()))
        .map(|status| status.summary(text))
        .unwrap_or_else(|| text("Status.NotConnected"));
    let status = std::ffi::CString::new(status).unwrap_or_default();
    guarded("properties", ptr::null_mut(), || {
        // SAFETY: a fresh properties object that OBS takes ownership of; OBS
        // copies the strings.
        unsafe {
            let props = sys::obs_properties_create();
            sys::obs_properties_add_text(
                props,
                c"status".as_ptr(),
                status.as_ptr(),
                sys::obs_text_type::OBS_TEXT_INFO,
            );
            props
        }
    })
}
