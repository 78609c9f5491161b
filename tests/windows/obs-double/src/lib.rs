//! `obs.dll` for the wine test: a small libobs test double with the functions the plugin imports
//! (its build.rs's list), enough to load the real `obs-psn-party.dll`, create its sources and hear
//! them. Settings are JSON (serde_json), each source's audio is captured and written as a WAV,
//! OBS's log goes to stdout. Never shipped: OBS for Windows is the real thing; this lets the
//! plugin's Windows build run its demo scenario under wine, where no OBS can be had.
//!
//! FFI by nature: every function is called from C (the plugin) with libobs's contracts.
#![allow(clippy::missing_safety_doc, non_camel_case_types)]

mod data;
mod locale;
mod procs;
mod properties;
mod source;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub mod types {
    #![allow(
        non_upper_case_globals,
        non_camel_case_types,
        non_snake_case,
        dead_code
    )]
    include!(concat!(env!("OUT_DIR"), "/libobs_types.rs"));
}

pub use data::*;
pub use locale::*;
pub use procs::*;
pub use properties::*;
pub use source::*;

extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
    fn _snprintf(buf: *mut c_char, size: usize, format: *const c_char, ...) -> c_int;
}

/// Live blocks handed out through `bmalloc` (what OBS reports as memory leaks at shutdown).
static ALLOCS: AtomicI64 = AtomicI64::new(0);

/// A copy of `text` in memory the caller frees with `bfree`, as libobs's `bstrdup`.
pub(crate) fn bstrdup(text: &str) -> *mut c_char {
    // SAFETY: malloc of len + 1 bytes, filled and NUL-terminated below.
    unsafe {
        let ptr = malloc(text.len() + 1).cast::<u8>();
        if ptr.is_null() {
            return std::ptr::null_mut();
        }
        std::ptr::copy_nonoverlapping(text.as_ptr(), ptr, text.len());
        *ptr.add(text.len()) = 0;
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ptr.cast()
    }
}

#[no_mangle]
pub unsafe extern "C" fn bfree(ptr: *mut c_void) {
    if !ptr.is_null() {
        ALLOCS.fetch_sub(1, Ordering::Relaxed);
        free(ptr);
    }
}

#[no_mangle]
pub extern "C" fn bnum_allocs() -> i64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// `blog`: formats like printf and prints `obs[level]: text` to stdout (the host's log).
///
/// libobs declares it variadic; stable Rust cannot define a variadic function. On Windows x64
/// a variadic call passes every argument in an 8-byte slot (the first four in rcx, rdx, r8, r9,
/// floats copied into the integer register too, then the stack), exactly as a call with that
/// many 8-byte integers: so the slots are taken as integers here and passed on to `_snprintf`
/// the same way. Up to six arguments (the plugin passes one); slots past the caller's are read
/// from its frame and ignored by the format.
#[no_mangle]
pub unsafe extern "C" fn blog(
    level: c_int,
    format: *const c_char,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
) {
    let mut buf = [0 as c_char; 4096];
    _snprintf(
        buf.as_mut_ptr(),
        buf.len() - 1,
        format,
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
    );
    let text = CStr::from_ptr(buf.as_ptr()).to_string_lossy();
    log_line(level, &text);
}

static LOG: Mutex<()> = Mutex::new(());

pub(crate) fn log_line(level: c_int, text: &str) {
    let _one_at_a_time = LOG.lock();
    println!("obs[{level}]: {text}");
}

fn clock() -> &'static Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now)
}

/// A monotonic clock in ns, as libobs's (QueryPerformanceCounter on Windows; std uses it too).
#[no_mangle]
pub extern "C" fn os_gettime_ns() -> u64 {
    // Offset so that 0 is never a valid time.
    clock().elapsed().as_nanos() as u64 + 1_000_000_000
}

/// The version the double reports (the headers' API version).
#[no_mangle]
pub extern "C" fn obs_get_version() -> u32 {
    (types::LIBOBS_API_MAJOR_VER << 24)
        | (types::LIBOBS_API_MINOR_VER << 16)
        | types::LIBOBS_API_PATCH_VER
}

pub(crate) unsafe fn string_from(ptr: *const c_char) -> String {
    if ptr.is_null() {
        String::new()
    } else {
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    }
}

pub(crate) fn cstring(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

include!(concat!(env!("OUT_DIR"), "/functions.rs"));
