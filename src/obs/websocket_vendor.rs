//! obs-websocket's vendor API, spoken through libobs's proc handlers as third-party plugins do
//! (obs-websocket publishes `obs_websocket_api_get_ph` on the global proc handler; its
//! `obs-websocket-api.h`, API version 1, wraps the calls below in inline C we cannot link).
//!
//! Vendor `obs-psn-party`: the events of src/party/presence.rs and the request
//! `GetPartyStatus`. Without obs-websocket nothing is registered and events go nowhere.

use std::ffi::{c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::guard::guarded;
use super::sys;
use crate::party::presence;

pub const VENDOR_NAME: &CStr = c"obs-psn-party";

/// obs-websocket's proc handler and our vendor handle, once registered.
static PH: AtomicPtr<sys::proc_handler_t> = AtomicPtr::new(ptr::null_mut());
static VENDOR: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

/// `struct obs_websocket_request_callback` of obs-websocket-api.h.
#[repr(C)]
struct RequestCallback {
    callback: unsafe extern "C" fn(*mut sys::obs_data_t, *mut sys::obs_data_t, *mut c_void),
    priv_data: *mut c_void,
}

/// A `calldata_t` on our side, freed when dropped.
struct CallData(sys::calldata_t);

impl CallData {
    fn new() -> Self {
        CallData(sys::calldata_t {
            stack: ptr::null_mut(),
            size: 0,
            capacity: 0,
            fixed: false,
        })
    }

    /// `calldata_set_ptr`.
    fn set_ptr(&mut self, name: &CStr, value: *mut c_void) {
        // SAFETY: libobs copies `size_of::<*mut c_void>()` bytes from the address given.
        unsafe {
            sys::calldata_set_data(
                &mut self.0,
                name.as_ptr(),
                (&value as *const *mut c_void).cast(),
                std::mem::size_of::<*mut c_void>(),
            )
        };
    }

    /// `calldata_set_string`.
    fn set_string(&mut self, name: &CStr, value: &CStr) {
        let bytes = value.to_bytes_with_nul();
        // SAFETY: libobs copies `bytes.len()` bytes (the string and its NUL).
        unsafe {
            sys::calldata_set_data(
                &mut self.0,
                name.as_ptr(),
                bytes.as_ptr().cast(),
                bytes.len(),
            )
        };
    }

    /// `calldata_ptr`.
    fn ptr(&self, name: &CStr) -> *mut c_void {
        let mut out: *mut c_void = ptr::null_mut();
        // SAFETY: libobs writes at most `size_of` bytes into `out` when the entry has that size.
        unsafe {
            sys::calldata_get_data(
                &self.0,
                name.as_ptr(),
                (&mut out as *mut *mut c_void).cast(),
                std::mem::size_of::<*mut c_void>(),
            )
        };
        out
    }

    /// `calldata_bool`.
    fn boolean(&self, name: &CStr) -> bool {
        let mut out = false;
        // SAFETY: as in `ptr`, for one bool.
        unsafe {
            sys::calldata_get_data(
                &self.0,
                name.as_ptr(),
                (&mut out as *mut bool).cast(),
                std::mem::size_of::<bool>(),
            )
        };
        out
    }
}

impl Drop for CallData {
    fn drop(&mut self) {
        if !self.0.fixed && !self.0.stack.is_null() {
            // SAFETY: libobs allocated the stack with bmalloc (calldata_free).
            unsafe { sys::bfree(self.0.stack.cast()) };
        }
    }
}

/// Runs a vendor proc of obs-websocket (`obs_websocket_run_simple_proc`).
fn vendor_call(proc_name: &CStr, cd: &mut CallData) -> bool {
    let (ph, vendor) = (PH.load(Ordering::Acquire), VENDOR.load(Ordering::Acquire));
    if ph.is_null() || vendor.is_null() {
        return false;
    }
    cd.set_ptr(c"vendor", vendor);
    // SAFETY: `ph` is obs-websocket's handler (alive while OBS runs), `cd` is a valid calldata.
    unsafe { sys::proc_handler_call(ph, proc_name.as_ptr(), &mut cd.0) };
    cd.boolean(c"success")
}

/// Registers the vendor, its request and the event sink. Call from `obs_module_post_load`
/// (obs-websocket publishes its handler when it loads, which may be after us).
pub fn register() {
    // SAFETY: the global proc handler exists while OBS runs; the calldata is ours.
    let global = unsafe { sys::obs_get_proc_handler() };
    if global.is_null() {
        return;
    }
    let mut cd = CallData::new();
    // SAFETY: valid handler, name and calldata.
    let found =
        unsafe { sys::proc_handler_call(global, c"obs_websocket_api_get_ph".as_ptr(), &mut cd.0) };
    let ph = cd.ptr(c"ph").cast::<sys::proc_handler_t>();
    if !found || ph.is_null() {
        log::info!("obs-websocket is not installed: no vendor events");
        return;
    }
    PH.store(ph, Ordering::Release);
    let mut cd = CallData::new();
    cd.set_string(c"name", VENDOR_NAME);
    // SAFETY: valid handler, name and calldata.
    unsafe { sys::proc_handler_call(ph, c"vendor_register".as_ptr(), &mut cd.0) };
    let vendor = cd.ptr(c"vendor");
    if vendor.is_null() {
        log::warn!("obs-websocket did not register the vendor obs-psn-party");
        return;
    }
    VENDOR.store(vendor, Ordering::Release);
    let mut callback = RequestCallback {
        callback: get_party_status,
        priv_data: ptr::null_mut(),
    };
    let mut cd = CallData::new();
    cd.set_string(c"type", c"GetPartyStatus");
    // obs-websocket copies the struct during the call.
    cd.set_ptr(c"callback", (&mut callback as *mut RequestCallback).cast());
    if !vendor_call(c"vendor_request_register", &mut cd) {
        log::warn!("obs-websocket refused the request GetPartyStatus");
    }
    presence::set_event_sink(Box::new(emit));
    log::info!("obs-websocket vendor obs-psn-party registered");
}

/// Emits one vendor event (from the presence task's thread; obs-websocket queues it).
fn emit(event: &str, data: &serde_json::Value) {
    let (Ok(name), Ok(json)) = (CString::new(event), CString::new(data.to_string())) else {
        return;
    };
    // SAFETY: a valid JSON string; we release our reference after the call.
    let obs_data = unsafe { sys::obs_data_create_from_json(json.as_ptr()) };
    if obs_data.is_null() {
        return;
    }
    let mut cd = CallData::new();
    cd.set_string(c"type", &name);
    cd.set_ptr(c"data", obs_data.cast());
    vendor_call(c"vendor_event_emit", &mut cd);
    // SAFETY: ours, created above ("does not affect event_data refcount").
    unsafe { sys::obs_data_release(obs_data) };
}

/// `GetPartyStatus`: the party now (members, slots, speaking, connection; no account ids).
unsafe extern "C" fn get_party_status(
    _request: *mut sys::obs_data_t,
    response: *mut sys::obs_data_t,
    _priv: *mut c_void,
) {
    guarded("GetPartyStatus", (), || {
        if response.is_null() {
            return;
        }
        let Ok(json) = CString::new(presence::current_status().to_string()) else {
            return;
        };
        // SAFETY: `response` is obs-websocket's, valid for the call; ours is released.
        unsafe {
            let status = sys::obs_data_create_from_json(json.as_ptr());
            if !status.is_null() {
                sys::obs_data_apply(response, status);
                sys::obs_data_release(status);
            }
        }
    });
}
