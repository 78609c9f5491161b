//! Modules and sources: loading a module DLL the way libobs does (`obs_open_module`,
//! `obs_init_module`, unload at `obs_shutdown`), the source types it registers, sources created
//! from them, and each source's audio output captured for a WAV.

use std::ffi::{c_char, c_int, c_void, CString};
use std::os::windows::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::data::{obs_data, obs_data_release};
use crate::types::{obs_audio_info, obs_source_audio, obs_source_info, speaker_layout};
use crate::{bstrdup, log_line, string_from};

#[link(name = "kernel32")]
extern "system" {
    fn LoadLibraryW(name: *const u16) -> *mut c_void;
    fn GetProcAddress(module: *mut c_void, name: *const c_char) -> *mut c_void;
    fn FreeLibrary(module: *mut c_void) -> c_int;
}

const MODULE_SUCCESS: c_int = 0;
const MODULE_ERROR: c_int = -1;
const MODULE_FILE_NOT_FOUND: c_int = -2;
const MODULE_MISSING_EXPORTS: c_int = -3;
const MODULE_INCOMPATIBLE_VER: c_int = -4;

pub struct obs_module {
    handle: *mut c_void,
    /// The file name without extension: the module's name in config paths.
    pub name: String,
    pub data_path: String,
    loaded: bool,
}

struct Modules(Vec<*mut obs_module>);
// SAFETY: the list is only touched under its mutex, from the host's thread.
unsafe impl Send for Modules {}

static MODULES: Mutex<Modules> = Mutex::new(Modules(Vec::new()));
static CONFIG_PATH: Mutex<String> = Mutex::new(String::new());
static STARTED: AtomicBool = AtomicBool::new(false);
static LIVE_SOURCES: AtomicUsize = AtomicUsize::new(0);

struct Registered(Vec<obs_source_info>);
// SAFETY: the infos hold the module's static strings and functions, valid while it is loaded.
unsafe impl Send for Registered {}
static TYPES: Mutex<Registered> = Mutex::new(Registered(Vec::new()));

unsafe fn export<T>(module: *mut c_void, name: &std::ffi::CStr) -> Option<T> {
    let ptr = GetProcAddress(module, name.as_ptr());
    (!ptr.is_null()).then(|| std::mem::transmute_copy(&ptr))
}

/// `obs_startup`: remembers where modules keep their config (`module_config_path`).
#[no_mangle]
pub unsafe extern "C" fn obs_startup(
    locale: *const c_char,
    module_config_path: *const c_char,
    _store: *mut c_void,
) -> bool {
    *CONFIG_PATH.lock().unwrap() = string_from(module_config_path);
    STARTED.store(true, Ordering::Release);
    log_line(
        300,
        &format!("obs double started (locale {})", string_from(locale)),
    );
    true
}

#[no_mangle]
pub extern "C" fn obs_initialized() -> bool {
    STARTED.load(Ordering::Acquire)
}

#[no_mangle]
pub unsafe extern "C" fn obs_open_module(
    out: *mut *mut obs_module,
    path: *const c_char,
    data_path: *const c_char,
) -> c_int {
    let path = string_from(path);
    let wide: Vec<u16> = std::ffi::OsStr::new(&path)
        .encode_wide()
        .chain(Some(0))
        .collect();
    let handle = LoadLibraryW(wide.as_ptr());
    if handle.is_null() {
        log_line(
            100,
            &format!(
                "LoadLibraryW failed for '{path}': {}",
                std::io::Error::last_os_error()
            ),
        );
        return if Path::new(&path).exists() {
            MODULE_ERROR
        } else {
            MODULE_FILE_NOT_FOUND
        };
    }
    let set_pointer: Option<unsafe extern "C" fn(*mut obs_module)> =
        export(handle, c"obs_module_set_pointer");
    let load: Option<unsafe extern "C" fn() -> bool> = export(handle, c"obs_module_load");
    let ver: Option<unsafe extern "C" fn() -> u32> = export(handle, c"obs_module_ver");
    let (Some(set_pointer), Some(_), Some(ver)) = (set_pointer, load, ver) else {
        log_line(100, &format!("{path}: missing module exports"));
        FreeLibrary(handle);
        return MODULE_MISSING_EXPORTS;
    };
    if ver() >> 24 > crate::types::LIBOBS_API_MAJOR_VER {
        FreeLibrary(handle);
        return MODULE_INCOMPATIBLE_VER;
    }
    let name = Path::new(&path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let module = Box::into_raw(Box::new(obs_module {
        handle,
        name,
        data_path: string_from(data_path),
        loaded: false,
    }));
    set_pointer(module);
    if let Some(set_locale) =
        export::<unsafe extern "C" fn(*const c_char)>(handle, c"obs_module_set_locale")
    {
        set_locale(c"en-US".as_ptr());
    }
    MODULES.lock().unwrap().0.push(module);
    *out = module;
    MODULE_SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn obs_init_module(module: *mut obs_module) -> bool {
    let Some(m) = module.as_mut() else {
        return false;
    };
    let Some(load) = export::<unsafe extern "C" fn() -> bool>(m.handle, c"obs_module_load") else {
        return false;
    };
    m.loaded = load();
    if !m.loaded {
        log_line(200, &format!("Failed to initialize module '{}'", m.name));
    }
    m.loaded
}

/// What the module's own `const char *name(void)` returns, null when it has no such export.
unsafe fn module_text(module: *mut obs_module, name: &std::ffi::CStr) -> *const c_char {
    module
        .as_ref()
        .and_then(|m| export::<unsafe extern "C" fn() -> *const c_char>(m.handle, name))
        .map_or(std::ptr::null(), |f| f())
}

#[no_mangle]
pub unsafe extern "C" fn obs_get_module_name(module: *mut obs_module) -> *const c_char {
    module_text(module, c"obs_module_name")
}

#[no_mangle]
pub unsafe extern "C" fn obs_get_module_description(module: *mut obs_module) -> *const c_char {
    module_text(module, c"obs_module_description")
}

/// `obs_shutdown`: unloads every module (its `obs_module_unload`, `obs_module_free_locale`,
/// then the DLL is freed), as libobs does once the sources are gone.
#[no_mangle]
pub unsafe extern "C" fn obs_shutdown() {
    let live = LIVE_SOURCES.load(Ordering::Acquire);
    if live != 0 {
        log_line(200, &format!("{live} sources still alive at shutdown"));
    }
    let modules = std::mem::take(&mut MODULES.lock().unwrap().0);
    TYPES.lock().unwrap().0.clear();
    for module in modules {
        let m = Box::from_raw(module);
        if m.loaded {
            if let Some(unload) = export::<unsafe extern "C" fn()>(m.handle, c"obs_module_unload") {
                unload();
            }
        }
        if let Some(free) = export::<unsafe extern "C" fn()>(m.handle, c"obs_module_free_locale") {
            free();
        }
        FreeLibrary(m.handle);
    }
    STARTED.store(false, Ordering::Release);
    log_line(
        300,
        &format!("Number of memory leaks: {}", crate::bnum_allocs()),
    );
}

/// `<module_config_path>/<module name>/<file>`, joined with '/' as libobs does on every OS.
#[no_mangle]
pub unsafe extern "C" fn obs_module_get_config_path(
    module: *mut obs_module,
    file: *const c_char,
) -> *mut c_char {
    let Some(m) = module.as_ref() else {
        return std::ptr::null_mut();
    };
    let base = CONFIG_PATH.lock().unwrap().clone();
    bstrdup(&format!("{base}/{}/{}", m.name, string_from(file)))
}

#[no_mangle]
pub unsafe extern "C" fn obs_register_source_s(info: *const obs_source_info, size: usize) {
    let Some(given) = info.as_ref() else {
        return;
    };
    let mut copy = obs_source_info::default();
    let n = size.min(std::mem::size_of::<obs_source_info>());
    std::ptr::copy_nonoverlapping(
        (given as *const obs_source_info).cast::<u8>(),
        (&mut copy as *mut obs_source_info).cast::<u8>(),
        n,
    );
    log_line(
        300,
        &format!("registered source type '{}'", string_from(copy.id)),
    );
    TYPES.lock().unwrap().0.push(copy);
}

#[no_mangle]
pub extern "C" fn obs_enum_input_types(index: usize, id: *mut *const c_char) -> bool {
    let types = TYPES.lock().unwrap();
    match types.0.get(index) {
        Some(info) if !id.is_null() => {
            // SAFETY: the caller hands a place for the answer.
            unsafe { *id = info.id };
            true
        }
        _ => false,
    }
}

/// What a source's audio output has been, while the host records.
#[derive(Default)]
pub struct Capture {
    pub samples: Vec<f32>,
    pub blocks: usize,
    pub recording: bool,
}

pub struct obs_source {
    refs: AtomicUsize,
    info: obs_source_info,
    name: CString,
    settings: *mut obs_data,
    data: *mut c_void,
    pub capture: Mutex<Capture>,
}

#[no_mangle]
pub unsafe extern "C" fn obs_source_create(
    id: *const c_char,
    name: *const c_char,
    settings: *mut obs_data,
    _hotkeys: *mut obs_data,
) -> *mut obs_source {
    let id = string_from(id);
    let Some(info) = TYPES
        .lock()
        .unwrap()
        .0
        .iter()
        .find(|i| string_from(i.id) == id)
        .copied()
    else {
        log_line(200, &format!("Source ID '{id}' not found"));
        return std::ptr::null_mut();
    };
    let settings = if settings.is_null() {
        crate::data::obs_data_create()
    } else {
        obs_data::addref(settings)
    };
    if let Some(defaults) = info.get_defaults {
        defaults(settings.cast());
    }
    let source = Box::into_raw(Box::new(obs_source {
        refs: AtomicUsize::new(1),
        info,
        name: crate::cstring(&string_from(name)),
        settings,
        data: std::ptr::null_mut(),
        capture: Mutex::new(Capture::default()),
    }));
    if let Some(create) = info.create {
        (*source).data = create(settings.cast(), source.cast());
    }
    if (*source).data.is_null() {
        log_line(
            200,
            &format!("Failed to create source '{}'", string_from(name)),
        );
    }
    LIVE_SOURCES.fetch_add(1, Ordering::AcqRel);
    source
}

#[no_mangle]
pub unsafe extern "C" fn obs_source_release(source: *mut obs_source) {
    let Some(s) = source.as_ref() else {
        return;
    };
    if s.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    if let (Some(destroy), false) = (s.info.destroy, s.data.is_null()) {
        destroy(s.data);
    }
    obs_data_release(s.settings);
    drop(Box::from_raw(source));
    LIVE_SOURCES.fetch_sub(1, Ordering::AcqRel);
}

#[no_mangle]
pub unsafe extern "C" fn obs_source_get_name(source: *mut obs_source) -> *const c_char {
    source
        .as_ref()
        .map_or(std::ptr::null(), |s| s.name.as_ptr())
}

#[no_mangle]
pub unsafe extern "C" fn obs_source_get_id(source: *mut obs_source) -> *const c_char {
    source.as_ref().map_or(std::ptr::null(), |s| s.info.id)
}

#[no_mangle]
pub unsafe extern "C" fn obs_source_get_settings(source: *mut obs_source) -> *mut obs_data {
    source
        .as_ref()
        .map_or(std::ptr::null_mut(), |s| obs_data::addref(s.settings))
}

/// `obs_source_update`: new values over the source's settings, then its `update`.
#[no_mangle]
pub unsafe extern "C" fn obs_source_update(source: *mut obs_source, settings: *mut obs_data) {
    let (Some(s), Some(new)) = (source.as_ref(), settings.as_ref()) else {
        return;
    };
    let json = new.user_json();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&json) {
        for (key, value) in map {
            let key = crate::cstring(&key);
            match value {
                serde_json::Value::String(v) => crate::data::obs_data_set_string(
                    s.settings,
                    key.as_ptr(),
                    crate::cstring(&v).as_ptr(),
                ),
                serde_json::Value::Bool(v) => {
                    crate::data::obs_data_set_bool(s.settings, key.as_ptr(), v)
                }
                serde_json::Value::Number(n) if n.is_i64() => {
                    crate::data::obs_data_set_int(s.settings, key.as_ptr(), n.as_i64().unwrap_or(0))
                }
                serde_json::Value::Number(n) => crate::data::obs_data_set_double(
                    s.settings,
                    key.as_ptr(),
                    n.as_f64().unwrap_or(0.0),
                ),
                _ => {}
            }
        }
    }
    if let (Some(update), false) = (s.info.update, s.data.is_null()) {
        update(s.data, s.settings.cast());
    }
}

/// The UI would re-read the properties; there is no UI here.
#[no_mangle]
pub unsafe extern "C" fn obs_source_update_properties(_source: *mut obs_source) {}

#[no_mangle]
pub unsafe extern "C" fn obs_source_set_sync_offset(_source: *mut obs_source, _offset: i64) {}

/// OBS's default audio, as a fresh OBS Studio sets it up: 48 kHz stereo. The plugin hands its
/// mono blocks over in this layout (both planes on the same samples).
#[no_mangle]
pub unsafe extern "C" fn obs_get_audio_info(info: *mut obs_audio_info) -> bool {
    let Some(info) = info.as_mut() else {
        return false;
    };
    info.samples_per_sec = 48_000;
    info.speakers = speaker_layout::SPEAKERS_STEREO;
    true
}

/// Captures plane 0 (the plugin's mono samples, in every layout it hands them over in) while
/// the host records.
#[no_mangle]
pub unsafe extern "C" fn obs_source_output_audio(
    source: *mut obs_source,
    audio: *const obs_source_audio,
) {
    let (Some(s), Some(a)) = (source.as_ref(), audio.as_ref()) else {
        return;
    };
    let mut capture = s.capture.lock().unwrap();
    capture.blocks += 1;
    if !capture.recording || a.data[0].is_null() {
        return;
    }
    let block = std::slice::from_raw_parts(a.data[0].cast::<f32>(), a.frames as usize);
    capture.samples.extend_from_slice(block);
}

/// The source's save callback over its settings, then the settings as JSON (what a scene file
/// would hold); the caller frees the text with `bfree`.
#[no_mangle]
pub unsafe extern "C" fn obs_double_saved_json(source: *mut obs_source) -> *mut c_char {
    let Some(s) = source.as_ref() else {
        return std::ptr::null_mut();
    };
    if let (Some(save), false) = (s.info.save, s.data.is_null()) {
        save(s.data, s.settings.cast());
    }
    bstrdup(&(*s.settings).user_json())
}

/// Starts (clearing what was kept) or stops keeping a source's audio.
#[no_mangle]
pub unsafe extern "C" fn obs_double_record(source: *mut obs_source, on: bool) {
    if let Some(s) = source.as_ref() {
        let mut capture = s.capture.lock().unwrap();
        if on {
            capture.samples.clear();
            capture.samples.reserve(48_000 * 30);
        }
        capture.recording = on;
    }
}

/// Writes what a source's audio output was while recording: a mono 32-bit float WAV at 48 kHz.
/// Returns how many samples were written, or -1.
#[no_mangle]
pub unsafe extern "C" fn obs_double_write_wav(source: *mut obs_source, path: *const c_char) -> i64 {
    let Some(s) = source.as_ref() else {
        return -1;
    };
    let samples = std::mem::take(&mut s.capture.lock().unwrap().samples);
    match write_wav_f32(Path::new(&string_from(path)), 48_000, &samples) {
        Ok(()) => samples.len() as i64,
        Err(e) => {
            log_line(100, &format!("writing the WAV failed: {e}"));
            -1
        }
    }
}

fn write_wav_f32(path: &Path, rate: u32, samples: &[f32]) -> std::io::Result<()> {
    let data_len = (samples.len() * 4) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 4).to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out)
}
