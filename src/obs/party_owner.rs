//! Several PSN Party sources in one OBS. The hub (sign-in, party, consent) is one per OBS
//! instance, so one source must own those settings rather than each overriding the others on
//! its own `update`: the first PSN Party source created owns them; the others show "uses the
//! sign-in and consent of <its name>" and keep only their own audio settings. When the owner is
//! removed, the next one takes over and applies its settings at once.

use std::ffi::CStr;
use std::sync::{Mutex, MutexGuard};

use super::sys;

/// A live PSN Party source, in creation order.
struct Entry(*mut sys::obs_source_t);
// SAFETY: only compared, and passed to thread-safe libobs calls (get_name, update) while it is
// in the list: `leave` takes it out (in the source's destroy) before OBS frees it.
unsafe impl Send for Entry {}

static SOURCES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn sources() -> MutexGuard<'static, Vec<Entry>> {
    SOURCES.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new PSN Party source; the first one owns the account and consent.
pub fn join(source: *mut sys::obs_source_t) {
    sources().push(Entry(source));
}

pub fn is_owner(source: *mut sys::obs_source_t) -> bool {
    sources().first().is_some_and(|e| e.0 == source)
}

/// The owner's name as OBS shows it, when `source` is not the owner.
pub fn owner_name_if_not(source: *mut sys::obs_source_t) -> Option<String> {
    let list = sources();
    let owner = list.first().filter(|e| e.0 != source)?;
    // SAFETY: the owner is alive while in the list (held locked); OBS returns its own string,
    // copied at once.
    let name = unsafe { sys::obs_source_get_name(owner.0) };
    Some(if name.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated string OBS owns.
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    })
}

/// `source` is being destroyed. If it owned the settings, the next source takes over: OBS runs
/// its `update` with its own settings, which the hub then follows.
pub fn leave(source: *mut sys::obs_source_t) {
    let next = {
        let mut list = sources();
        let was_owner = list.first().is_some_and(|e| e.0 == source);
        list.retain(|e| e.0 != source);
        list.first().filter(|_| was_owner).map(|e| e.0)
    };
    if let Some(next) = next {
        log::info!("another PSN Party source now owns the sign-in and consent settings");
        // SAFETY: a live source (it was in the list; its destroy, which would take it out,
        // cannot run concurrently with this source's destroy for the same source). NULL
        // settings: OBS re-applies the source's own.
        unsafe { sys::obs_source_update(next, std::ptr::null_mut()) };
    }
}
