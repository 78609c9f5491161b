//! A minimal OBS host for the end-to-end tests and the demo: starts real
//! libobs, loads the built module the way OBS does (`obs_open_module` +
//! `obs_init_module`), creates sources and captures what they output.
//!
//! It lives here because it is `unsafe` libobs code; the plugin itself never
//! calls it. libobs is one global per process, so there is one `ObsHost`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::sys;

static STARTED: AtomicBool = AtomicBool::new(false);
static LOG: Mutex<Vec<LogLine>> = Mutex::new(Vec::new());
static ECHO_LOG: AtomicBool = AtomicBool::new(false);

/// One line of OBS's log, as the host received it.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub at: Instant,
    pub level: i32,
    pub text: String,
}

/// Bytes the C allocator has handed out and not taken back, over all its arenas and mmapped
/// blocks (glibc's `mallinfo2`): what the process really holds on the heap, where RSS also
/// counts freed memory the allocator keeps for reuse. Rust's and libobs's allocations both come
/// from it. `None` off glibc.
pub fn heap_in_use_bytes() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: reads the allocator's counters; no arguments, nothing kept.
        let info = unsafe { libc::mallinfo2() };
        Some(info.uordblks + info.hblkhd)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Every log line libobs produced in this process, also after `ObsHost::shutdown`.
pub fn captured_log_lines() -> Vec<LogLine> {
    LOG.lock().map(|log| log.clone()).unwrap_or_default()
}

/// Writes every captured log line to `path`, one a line (kept runs: tests, the demo).
pub fn write_captured_log(path: &Path) -> std::io::Result<()> {
    let text: String = captured_log_lines()
        .iter()
        .map(|l| format!("{}\n", l.text))
        .collect();
    std::fs::write(path, text)
}

unsafe extern "C" fn log_handler(
    level: c_int,
    format: *const c_char,
    args: *mut sys::__va_list_tag,
    _param: *mut c_void,
) {
    let mut buf = [0 as c_char; 4096];
    // SAFETY: OBS hands us its printf format and matching va_list; vsnprintf
    // writes at most buf.len() bytes, NUL-terminated.
    let text = unsafe {
        sys::vsnprintf(buf.as_mut_ptr(), buf.len() as _, format, args);
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    };
    if ECHO_LOG.load(Ordering::Relaxed) {
        eprintln!("obs[{level}]: {text}");
    }
    if let Ok(mut log) = LOG.lock() {
        log.push(LogLine {
            at: Instant::now(),
            level,
            text,
        });
    }
}

/// libobs 29 needs an X display even without video. If there is none, run
/// this same program again under `xvfb-run -a` and exit with its status.
pub fn ensure_display() {
    if std::env::var_os("DISPLAY").is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("own executable path");
    let status = std::process::Command::new("xvfb-run")
        .arg("-a")
        .arg(&exe)
        .args(std::env::args_os().skip(1))
        .status()
        .unwrap_or_else(|e| {
            eprintln!(
                "no X display and xvfb-run could not start ({e}): install xvfb (tools/setup.sh)"
            );
            std::process::exit(2);
        });
    std::process::exit(status.code().unwrap_or(1));
}

/// What `obs_shutdown` left behind.
#[derive(Debug)]
pub struct ShutdownReport {
    /// libobs allocations still live after shutdown (OBS's "memory leaks").
    pub leaks: i64,
    pub took: Duration,
}

/// The running libobs of this process.
pub struct ObsHost {
    _not_send: std::marker::PhantomData<*mut ()>,
}

impl ObsHost {
    /// Starts libobs with video (OBS 30.1+ mixes audio only once video is
    /// set up) and 48 kHz stereo audio. Needs an X display (Xvfb is fine).
    pub fn start(config_dir: &Path) -> Result<ObsHost, String> {
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err("libobs is already started in this process".into());
        }
        ECHO_LOG.store(
            std::env::var_os("OBS_HOST_ECHO_LOG").is_some(),
            Ordering::Relaxed,
        );
        let config = cstring(&config_dir.to_string_lossy())?;
        // SAFETY: plain libobs start-up calls with valid, NUL-terminated
        // arguments, made once per process from one thread.
        unsafe {
            sys::base_set_log_handler(Some(log_handler), ptr::null_mut());
            if !sys::obs_startup(c"en-US".as_ptr(), config.as_ptr(), ptr::null_mut()) {
                return Err("obs_startup failed".into());
            }
            let video = sys::obs_video_info {
                graphics_module: c"libobs-opengl".as_ptr(),
                fps_num: 30,
                fps_den: 1,
                base_width: 320,
                base_height: 180,
                output_width: 320,
                output_height: 180,
                output_format: sys::video_format::VIDEO_FORMAT_NV12,
                adapter: 0,
                gpu_conversion: true,
                colorspace: sys::video_colorspace::VIDEO_CS_709,
                range: sys::video_range_type::VIDEO_RANGE_PARTIAL,
                scale_type: sys::obs_scale_type::OBS_SCALE_BICUBIC,
            };
            let result = sys::obs_reset_video(&video as *const _ as *mut _);
            if result != sys::OBS_VIDEO_SUCCESS as c_int {
                return Err(format!(
                    "obs_reset_video failed ({result}); is an X display (Xvfb) available?"
                ));
            }
            let audio = sys::obs_audio_info {
                samples_per_sec: 48_000,
                speakers: sys::speaker_layout::SPEAKERS_STEREO,
            };
            if !sys::obs_reset_audio(&audio) {
                return Err("obs_reset_audio failed".into());
            }
        }
        Ok(ObsHost {
            _not_send: std::marker::PhantomData,
        })
    }

    /// Loads a module binary with its data folder, as OBS does at start-up.
    pub fn load_module(&self, binary: &Path, data: &Path) -> Result<ModuleInfo, String> {
        let binary = cstring(&binary.to_string_lossy())?;
        let data = cstring(&data.to_string_lossy())?;
        let mut module: *mut sys::obs_module_t = ptr::null_mut();
        // SAFETY: valid paths; libobs owns the module afterwards.
        unsafe {
            let code = sys::obs_open_module(&mut module, binary.as_ptr(), data.as_ptr());
            if code != sys::MODULE_SUCCESS as c_int {
                return Err(format!("obs_open_module failed with code {code}"));
            }
            if !sys::obs_init_module(module) {
                return Err("obs_init_module failed (obs_module_load returned false)".into());
            }
            Ok(ModuleInfo {
                name: lossy(sys::obs_get_module_name(module)),
                description: lossy(sys::obs_get_module_description(module)),
            })
        }
    }

    /// The ids of every input source type registered so far.
    pub fn input_types(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut id: *const c_char = ptr::null();
        let mut index = 0;
        // SAFETY: libobs writes a pointer to a string it owns into `id`.
        while unsafe { sys::obs_enum_input_types(index, &mut id) } {
            ids.push(lossy(id));
            index += 1;
        }
        ids
    }

    /// The display name of a source type ("PSN Party").
    pub fn display_name(&self, id: &str) -> Option<String> {
        let id = cstring(id).ok()?;
        // SAFETY: valid id; the returned string is owned by the module.
        let name = unsafe { sys::obs_source_get_display_name(id.as_ptr()) };
        (!name.is_null()).then(|| lossy(name))
    }

    /// Creates a private source of type `id` with settings given as JSON.
    pub fn create_source(
        &self,
        id: &str,
        name: &str,
        settings_json: &str,
    ) -> Result<HostSource, String> {
        let id_c = cstring(id)?;
        let name_c = cstring(name)?;
        let json = cstring(settings_json)?;
        // SAFETY: valid strings; we own the returned references and release them.
        unsafe {
            let settings = sys::obs_data_create_from_json(json.as_ptr());
            if settings.is_null() {
                return Err(format!("settings are not valid JSON: {settings_json}"));
            }
            let source =
                sys::obs_source_create(id_c.as_ptr(), name_c.as_ptr(), settings, ptr::null_mut());
            sys::obs_data_release(settings);
            if source.is_null() {
                return Err(format!("obs_source_create({id}) returned null"));
            }
            Ok(HostSource {
                source,
                capture: None,
                channel: None,
            })
        }
    }

    /// Every log line OBS produced so far.
    pub fn log_lines(&self) -> Vec<LogLine> {
        captured_log_lines()
    }

    /// libobs allocations currently live.
    pub fn live_allocations(&self) -> i64 {
        // SAFETY: a counter read.
        unsafe { sys::bnum_allocs() as i64 }
    }

    /// Shuts libobs down (destroying what is left, unloading modules) and
    /// reports the allocations still live, like OBS's "Number of memory leaks".
    pub fn shutdown(self) -> ShutdownReport {
        let start = Instant::now();
        // SAFETY: called once, from the thread that started libobs.
        let leaks = unsafe {
            sys::obs_shutdown();
            sys::bnum_allocs() as i64
        };
        ShutdownReport {
            leaks,
            took: start.elapsed(),
        }
    }
}

/// What a loaded module says about itself.
#[derive(Debug, Clone)]
pub struct ModuleInfo {
    pub name: String,
    pub description: String,
}

/// OBS's clock now (`os_gettime_ns`), the clock of [`Captured::blocks`] timestamps.
pub fn obs_now_ns() -> u64 {
    // SAFETY: a plain clock read, no state.
    unsafe { sys::os_gettime_ns() }
}

/// Audio a source delivered to OBS, as OBS's capture callback saw it
/// (channel 0 of the output format, 48 kHz).
#[derive(Debug, Default)]
pub struct Captured {
    /// (timestamp ns, frames) of every callback.
    pub blocks: Vec<(u64, u32)>,
    pub samples: Vec<f32>,
    /// When each callback ran, with `samples.len()` after it (benchmarks time onsets by it).
    pub arrivals: Vec<(Instant, usize)>,
}

impl Captured {
    /// The longest stretch, in ms, that OBS heard as silence: samples below `threshold`, and
    /// the time between one callback's audio and the next callback's timestamp (a source that
    /// outputs nothing is silent in OBS: a member who goes quiet outputs nothing at all). Only
    /// between callbacks: a quiet that has not ended yet is not counted.
    pub fn longest_quiet_ms(&self, threshold: f32) -> f64 {
        const NS_PER_FRAME: f64 = 1e9 / 48_000.0;
        let (mut longest_ns, mut run_ns) = (0.0f64, 0.0f64);
        let mut next = 0usize;
        let mut previous_end: Option<f64> = None;
        for &(timestamp, frames) in &self.blocks {
            let start = timestamp as f64;
            if let Some(end) = previous_end {
                run_ns += (start - end).max(0.0);
                longest_ns = longest_ns.max(run_ns);
            }
            let frames = frames as usize;
            for &sample in self.samples.iter().skip(next).take(frames) {
                if sample.abs() < threshold {
                    run_ns += NS_PER_FRAME;
                    longest_ns = longest_ns.max(run_ns);
                } else {
                    run_ns = 0.0;
                }
            }
            next += frames;
            previous_end = Some(start + frames as f64 * NS_PER_FRAME);
        }
        longest_ns / 1e6
    }

    /// The last `frames` samples if the source is heard now: its last callback ran less than
    /// `within` ago. A source that went quiet outputs nothing, so its last samples may be old.
    pub fn recent_tail(&self, frames: usize, within: std::time::Duration) -> Option<&[f32]> {
        let (at, _) = self.arrivals.last()?;
        let n = self.samples.len();
        (at.elapsed() <= within && n >= frames).then(|| &self.samples[n - frames..])
    }

    /// Forgets what was captured so far (to measure from now on).
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.samples.clear();
        self.arrivals.clear();
    }
}

struct CaptureState {
    captured: Arc<Mutex<Captured>>,
}

unsafe extern "C" fn capture_callback(
    param: *mut c_void,
    _source: *mut sys::obs_source_t,
    audio: *const sys::audio_data,
    _muted: bool,
) {
    if param.is_null() || audio.is_null() {
        return;
    }
    // SAFETY: `param` is the CaptureState we registered (alive until we
    // remove the callback); `audio` is valid for the call, planar f32.
    let (state, audio) = unsafe { (&*param.cast::<CaptureState>(), &*audio) };
    let frames = audio.frames as usize;
    let plane = audio.data[0].cast::<f32>();
    if let Ok(mut captured) = state.captured.lock() {
        captured.blocks.push((audio.timestamp, audio.frames));
        if !plane.is_null() {
            // SAFETY: OBS provides `frames` floats in plane 0.
            let samples = unsafe { std::slice::from_raw_parts(plane, frames) };
            captured.samples.extend_from_slice(samples);
        }
        let total = captured.samples.len();
        captured.arrivals.push((Instant::now(), total));
    }
}

/// A source the host created; released when dropped.
pub struct HostSource {
    source: *mut sys::obs_source_t,
    capture: Option<Box<CaptureState>>,
    channel: Option<u32>,
}

impl HostSource {
    /// Applies new settings (JSON), as the properties dialog would.
    pub fn update(&self, settings_json: &str) -> Result<(), String> {
        let json = cstring(settings_json)?;
        // SAFETY: valid source and JSON; we release our reference.
        unsafe {
            let settings = sys::obs_data_create_from_json(json.as_ptr());
            if settings.is_null() {
                return Err("settings are not valid JSON".into());
            }
            sys::obs_source_update(self.source, settings);
            sys::obs_data_release(settings);
        }
        Ok(())
    }

    /// The string setting `name` as the properties dialog shows it (its default when unset).
    pub fn setting_string(&self, name: &str) -> String {
        let Ok(name) = cstring(name) else {
            return String::new();
        };
        // SAFETY: valid source; we release the settings reference.
        unsafe {
            let settings = sys::obs_source_get_settings(self.source);
            let value = lossy(sys::obs_data_get_string(settings, name.as_ptr()));
            sys::obs_data_release(settings);
            value
        }
    }

    /// The source's settings as OBS would save them in a scene collection.
    pub fn settings_json(&self) -> String {
        // SAFETY: valid source; a new reference, released by `into_json`.
        unsafe { into_json(sys::obs_source_get_settings(self.source)) }
    }

    /// A boolean setting as the dialog shows it (the user's value, else the default).
    pub fn bool_setting(&self, name: &str) -> bool {
        let Ok(key) = cstring(name) else {
            return false;
        };
        // SAFETY: valid source and key; we release the settings reference.
        unsafe {
            let settings = sys::obs_source_get_settings(self.source);
            let value = sys::obs_data_get_bool(settings, key.as_ptr());
            sys::obs_data_release(settings);
            value
        }
    }

    /// Puts the source on an output channel, so OBS mixes it like a
    /// desktop-audio source (and grows its buffering if we deliver late).
    pub fn set_output_channel(&mut self, channel: u32) {
        // SAFETY: valid source; OBS keeps its own reference.
        unsafe { sys::obs_set_output_source(channel, self.source) };
        self.channel = Some(channel);
    }

    /// Starts recording what the source outputs.
    pub fn start_capture(&mut self) -> Arc<Mutex<Captured>> {
        let state = Box::new(CaptureState {
            captured: Arc::default(),
        });
        let captured = state.captured.clone();
        let param = &*state as *const CaptureState as *mut c_void;
        // SAFETY: the state outlives the registration (removed in Drop).
        unsafe {
            sys::obs_source_add_audio_capture_callback(self.source, Some(capture_callback), param)
        };
        self.capture = Some(state);
        captured
    }

    /// Builds the source's properties as the dialog would, hands the property
    /// `name` to `use_it` (None if there is no such property) and destroys
    /// them again.
    fn with_property<T>(
        &self,
        name: &str,
        use_it: impl FnOnce(*mut sys::obs_property_t) -> T,
    ) -> Option<T> {
        let name = cstring(name).ok()?;
        // SAFETY: OBS builds the properties; `use_it` runs while they live;
        // we destroy them afterwards.
        unsafe {
            let props = sys::obs_source_properties(self.source);
            let prop = sys::obs_properties_get(props, name.as_ptr());
            let result = (!prop.is_null()).then(|| use_it(prop));
            sys::obs_properties_destroy(props);
            result
        }
    }

    /// The description (label or info text) of the property `name`.
    pub fn property_description(&self, name: &str) -> Option<String> {
        // SAFETY: `prop` is a live property (with_property).
        self.with_property(name, |prop| unsafe {
            lossy(sys::obs_property_description(prop))
        })
    }

    /// Clicks the button property `name` as the dialog would; returns what
    /// the callback returned (true: redraw), or None if there is no such button.
    pub fn click(&self, name: &str) -> Option<bool> {
        // SAFETY: `prop` is a live property of our source (with_property); the
        // callback runs on this thread.
        self.with_property(name, |prop| unsafe {
            sys::obs_property_button_clicked(prop, self.source.cast())
        })
    }

    /// The (label, value) items of the string list property `name`.
    pub fn list_items(&self, name: &str) -> Vec<(String, String)> {
        // SAFETY: `prop` is a live property (with_property).
        self.with_property(name, |prop| unsafe {
            (0..sys::obs_property_list_item_count(prop))
                .map(|i| {
                    (
                        lossy(sys::obs_property_list_item_name(prop, i)),
                        lossy(sys::obs_property_list_item_string(prop, i)),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// What a scene-collection save writes for this source (obs_save_source).
    pub fn saved_json(&self) -> String {
        // SAFETY: valid source; new data, released by `into_json`.
        unsafe { into_json(sys::obs_save_source(self.source)) }
    }

    /// The names of every property, inside groups too ("group/name").
    pub fn all_property_names(&self) -> Vec<String> {
        unsafe fn walk(props: *mut sys::obs_properties_t, prefix: &str, out: &mut Vec<String>) {
            // SAFETY: (caller) `props` is valid while we walk it.
            unsafe {
                let mut prop = sys::obs_properties_first(props);
                while !prop.is_null() {
                    let name = lossy(sys::obs_property_name(prop));
                    out.push(format!("{prefix}{name}"));
                    let group = sys::obs_property_group_content(prop);
                    if !group.is_null() {
                        walk(group, &format!("{name}/"), out);
                    }
                    if !sys::obs_property_next(&mut prop) {
                        break;
                    }
                }
            }
        }
        let mut names = Vec::new();
        // SAFETY: OBS builds the properties; we walk and destroy them.
        unsafe {
            let props = sys::obs_source_properties(self.source);
            walk(props, "", &mut names);
            sys::obs_properties_destroy(props);
        }
        names
    }

    /// The names of the properties the source shows.
    pub fn property_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        // SAFETY: OBS builds the properties; we walk and destroy them.
        unsafe {
            let props = sys::obs_source_properties(self.source);
            let mut prop = sys::obs_properties_first(props);
            while !prop.is_null() {
                names.push(lossy(sys::obs_property_name(prop)));
                if !sys::obs_property_next(&mut prop) {
                    break;
                }
            }
            sys::obs_properties_destroy(props);
        }
        names
    }
}

impl Drop for HostSource {
    fn drop(&mut self) {
        // SAFETY: undo what we registered, then drop our reference; OBS
        // destroys the source when the last reference goes.
        unsafe {
            if let Some(state) = self.capture.take() {
                let param = &*state as *const CaptureState as *mut c_void;
                sys::obs_source_remove_audio_capture_callback(
                    self.source,
                    Some(capture_callback),
                    param,
                );
            }
            if let Some(channel) = self.channel.take() {
                sys::obs_set_output_source(channel, ptr::null_mut());
            }
            sys::obs_source_release(self.source);
        }
    }
}

fn cstring(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("text contains a NUL byte: {text:?}"))
}

/// `data` as JSON text; releases our reference to it.
///
/// # Safety
/// `data` is a valid obs_data_t reference we own.
unsafe fn into_json(data: *mut sys::obs_data_t) -> String {
    // SAFETY: the caller's promise.
    unsafe {
        let json = lossy(sys::obs_data_get_json(data));
        sys::obs_data_release(data);
        json
    }
}

fn lossy(text: *const c_char) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: libobs returns NUL-terminated strings.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}
