//! The module's entry points: what `OBS_DECLARE_MODULE()` and
//! `OBS_MODULE_USE_DEFAULT_LOCALE()` provide for a C plugin, written out.

use std::ffi::{c_char, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use super::guard::guarded;
use super::{log as obs_log, source, sys};

/// The version shown in OBS's log and in the module description.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

static MODULE: AtomicPtr<sys::obs_module_t> = AtomicPtr::new(ptr::null_mut());
static LOOKUP: AtomicPtr<sys::lookup_t> = AtomicPtr::new(ptr::null_mut());

#[no_mangle]
pub extern "C" fn obs_module_set_pointer(module: *mut sys::obs_module_t) {
    MODULE.store(module, Ordering::Release);
}

#[no_mangle]
pub extern "C" fn obs_current_module() -> *mut sys::obs_module_t {
    MODULE.load(Ordering::Acquire)
}

/// The libobs API version of the headers we were built against: OBS refuses
/// modules newer than itself and warns about much older ones.
#[no_mangle]
pub extern "C" fn obs_module_ver() -> u32 {
    sys::LIBOBS_API_VER
}

#[no_mangle]
pub extern "C" fn obs_module_load() -> bool {
    guarded("obs_module_load", false, || {
        obs_log::install();
        source::register_all();
        log::info!(
            "version {VERSION} loaded (built against libobs {}.{}.{})",
            sys::LIBOBS_API_MAJOR_VER,
            sys::LIBOBS_API_MINOR_VER,
            sys::LIBOBS_API_PATCH_VER
        );
        true
    })
}

#[no_mangle]
pub extern "C" fn obs_module_unload() {
    // Nothing to tear down here: the runtime and every thread belong to the
    // sources, which OBS destroys (sometimes after this call).
    guarded("obs_module_unload", (), || log::info!("unloaded"));
}

#[no_mangle]
pub extern "C" fn obs_module_name() -> *const c_char {
    c"PSN Party".as_ptr()
}

#[no_mangle]
pub extern "C" fn obs_module_description() -> *const c_char {
    static DESCRIPTION: OnceLock<CString> = OnceLock::new();
    DESCRIPTION
        .get_or_init(|| {
            let text = text("Module.Description");
            CString::new(format!("{text} (version {VERSION})")).unwrap_or_default()
        })
        .as_ptr()
}

/// # Safety
/// Called by OBS with a NUL-terminated locale name.
#[no_mangle]
pub unsafe extern "C" fn obs_module_set_locale(locale: *const c_char) {
    guarded("obs_module_set_locale", (), || {
        // SAFETY: OBS passes a valid module pointer (set before this call) and
        // a NUL-terminated locale name; the lookup is ours until freed.
        let fresh =
            unsafe { sys::obs_module_load_locale(obs_current_module(), c"en-US".as_ptr(), locale) };
        let old = LOOKUP.swap(fresh, Ordering::AcqRel);
        if !old.is_null() {
            // SAFETY: `old` came from obs_module_load_locale and nobody else frees it.
            unsafe { sys::text_lookup_destroy(old) };
        }
    });
}

#[no_mangle]
pub extern "C" fn obs_module_free_locale() {
    let old = LOOKUP.swap(ptr::null_mut(), Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: as in obs_module_set_locale.
        unsafe { sys::text_lookup_destroy(old) };
    }
}

/// The plugin's config directory (`.../obs-studio/plugin_config/obs-psn-party`),
/// created if missing: token store, device id, `.env`.
pub fn config_dir() -> Option<std::path::PathBuf> {
    let module = obs_current_module();
    if module.is_null() {
        return None;
    }
    // SAFETY: a valid module; OBS returns a bmalloc'd string (or null) that we free.
    let path = unsafe {
        let raw = sys::obs_module_get_config_path(module, c"".as_ptr());
        if raw.is_null() {
            return None;
        }
        let path = CStr::from_ptr(raw).to_string_lossy().into_owned();
        sys::bfree(raw.cast());
        path
    };
    let dir = std::path::PathBuf::from(path);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        log::warn!(
            "cannot create the plugin's config directory {}: {e}",
            dir.display()
        );
    }
    Some(dir)
}

/// The translation of `key` as a C string owned by the locale lookup (valid
/// until the locale changes), or `fallback` when the key is missing.
pub fn text_ptr(key: &CStr, fallback: &'static CStr) -> *const c_char {
    let lookup = LOOKUP.load(Ordering::Acquire);
    let mut out: *const c_char = fallback.as_ptr();
    if !lookup.is_null() {
        // SAFETY: the lookup is alive (only set_locale/free_locale replace it,
        // which OBS never runs concurrently with source callbacks), `key` is
        // NUL-terminated and `out` is a valid place for the answer.
        unsafe { sys::text_lookup_getstr(lookup, key.as_ptr(), &mut out) };
    }
    out
}

/// The translation of `key`, copied; the key itself when it is missing.
pub fn text(key: &str) -> String {
    let Ok(ckey) = CString::new(key) else {
        return key.to_owned();
    };
    let ptr = text_ptr(&ckey, c"");
    // SAFETY: text_ptr returns a NUL-terminated string (the lookup's or ours).
    let found = unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned();
    if found.is_empty() {
        key.to_owned()
    } else {
        found
    }
}
