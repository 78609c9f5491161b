//! The module's entry points: what `OBS_DECLARE_MODULE()` and
//! `OBS_MODULE_USE_DEFAULT_LOCALE()` provide for a C plugin, written out.

use std::ffi::{c_char, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{OnceLock, RwLock};

use super::guard::guarded;
use super::{log as obs_log, source, sys};

/// The version shown in OBS's log and in the module description.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

static MODULE: AtomicPtr<sys::obs_module_t> = AtomicPtr::new(ptr::null_mut());
/// The locale lookup. `text` runs on the runtime's threads too (status words), and OBS frees
/// the lookup at unload (`obs_module_free_locale`) while a source it has not destroyed yet may
/// still be working: every lookup holds the read lock until its words are copied, and freeing
/// or replacing waits for the write lock.
static LOOKUP: LockedPtr<sys::lookup_t> = LockedPtr::new();

/// A C object's pointer that readers use under a read lock and that is freed under the write
/// lock, so it is never freed while in use.
pub(crate) struct LockedPtr<T>(RwLock<RawPtr<T>>);

struct RawPtr<T>(*mut T);
// SAFETY: the pointer is only dereferenced by the C functions given to `read`/`replace`, under
// the lock; the objects (libobs text lookups) may be used from any thread.
unsafe impl<T> Send for RawPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for RawPtr<T> {}

impl<T> LockedPtr<T> {
    pub(crate) const fn new() -> Self {
        LockedPtr(RwLock::new(RawPtr(ptr::null_mut())))
    }

    /// Runs `body` with the pointer (maybe null); it cannot be freed meanwhile.
    pub(crate) fn read<R>(&self, body: impl FnOnce(*mut T) -> R) -> R {
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        body(guard.0)
    }

    /// Puts `fresh` in place and hands the old pointer (if any) to `free`, once no reader
    /// holds it.
    pub(crate) fn replace(&self, fresh: *mut T, free: impl FnOnce(*mut T)) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut guard.0, fresh);
        if !old.is_null() {
            free(old);
        }
    }
}

fn destroy_lookup(old: *mut sys::lookup_t) {
    // SAFETY: `old` came from obs_module_load_locale and LockedPtr hands it out once.
    unsafe { sys::text_lookup_destroy(old) };
}

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
        crate::audio::thread::set_thread_setup(super::thread_priority::raise_current_audio_thread);
        source::register_all();
        // The libobs we run in can be newer than our headers (one binary for OBS 29 to 32):
        // the log names both, so a report from any OBS says which it was.
        // SAFETY: a plain getter, callable once libobs has started (it loads us).
        let running = unsafe { sys::obs_get_version() };
        log::info!(
            "version {VERSION} loaded (built against libobs {}.{}.{}, running in libobs {}.{}.{})",
            sys::LIBOBS_API_MAJOR_VER,
            sys::LIBOBS_API_MINOR_VER,
            sys::LIBOBS_API_PATCH_VER,
            running >> 24,
            (running >> 16) & 0xff,
            running & 0xffff
        );
        true
    })
}

/// After every module loaded: obs-websocket's vendor API is there now, if installed.
#[no_mangle]
pub extern "C" fn obs_module_post_load() {
    guarded(
        "obs_module_post_load",
        (),
        super::websocket_vendor::register,
    );
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
        LOOKUP.replace(fresh, destroy_lookup);
    });
}

#[no_mangle]
pub extern "C" fn obs_module_free_locale() {
    guarded("obs_module_free_locale", (), || {
        LOOKUP.replace(ptr::null_mut(), destroy_lookup)
    });
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

/// The translation of `key` as a C string owned by the locale lookup, or
/// `fallback` when the key is missing. For OBS's own callbacks only (the
/// source's name): OBS frees or replaces the locale on its UI thread, never
/// while it is in one of those callbacks, so the pointer outlives the lock.
/// Everything else uses [`text`].
pub fn text_ptr(key: &CStr, fallback: &'static CStr) -> *const c_char {
    LOOKUP.read(|lookup| lookup_getstr(lookup, key).unwrap_or(fallback.as_ptr()))
}

fn lookup_getstr(lookup: *mut sys::lookup_t, key: &CStr) -> Option<*const c_char> {
    if lookup.is_null() {
        return None;
    }
    let mut out: *const c_char = ptr::null();
    // SAFETY: the caller holds LOOKUP's read lock, so the lookup is alive;
    // `key` is NUL-terminated and `out` is a valid place for the answer.
    let found = unsafe { sys::text_lookup_getstr(lookup, key.as_ptr(), &mut out) };
    (found && !out.is_null()).then_some(out)
}

/// The translation of `key`, copied while the lookup cannot be freed (any
/// thread may call this); the key itself when it is missing.
pub fn text(key: &str) -> String {
    let Ok(ckey) = CString::new(key) else {
        return key.to_owned();
    };
    LOOKUP
        .read(|lookup| {
            lookup_getstr(lookup, &ckey).map(|out| {
                // SAFETY: a NUL-terminated string the lookup owns, alive under the read lock.
                unsafe { CStr::from_ptr(out) }
                    .to_string_lossy()
                    .into_owned()
            })
        })
        .filter(|found| !found.is_empty())
        .unwrap_or_else(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    /// Unload while a runtime thread is in the middle of a lookup: the free
    /// waits for it (without the lock it would free the lookup under the reader).
    #[test]
    fn freeing_waits_for_a_lookup_in_progress() {
        static SLOT: LockedPtr<u8> = LockedPtr::new();
        SLOT.replace(Box::into_raw(Box::new(7u8)), |_| unreachable!());
        let reading = Arc::new(AtomicBool::new(false));
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let reader = {
            let reading = reading.clone();
            std::thread::spawn(move || {
                SLOT.read(|p| {
                    reading.store(true, Ordering::SeqCst);
                    inside_tx.send(()).unwrap();
                    // A slow lookup; the free below is attempted meanwhile.
                    std::thread::sleep(Duration::from_millis(300));
                    // SAFETY: test-only; the box is alive while we hold the read lock.
                    let value = unsafe { *p };
                    reading.store(false, Ordering::SeqCst);
                    value
                })
            })
        };
        inside_rx.recv().unwrap();
        let mut freed_while_reading = None;
        SLOT.replace(ptr::null_mut(), |old| {
            freed_while_reading = Some(reading.load(Ordering::SeqCst));
            // SAFETY: test-only; the pointer came from Box::into_raw above.
            drop(unsafe { Box::from_raw(old) });
        });
        assert_eq!(reader.join().unwrap(), 7);
        assert_eq!(
            freed_while_reading,
            Some(false),
            "freed while a reader used it"
        );
    }
}
