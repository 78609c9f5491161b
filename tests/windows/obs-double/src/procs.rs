//! libobs's procedure handlers and call data, as OBS without obs-websocket has them: the global
//! handler exists, but no procedure is registered on it (`obs_websocket_api_get_ph` is
//! obs-websocket's), so every call answers false and the plugin's vendor stays unregistered,
//! which is what the plugin does in an OBS without obs-websocket. Call data keeps nothing: the
//! plugin reads back only what a procedure answered, and none answers here.

use std::ffi::{c_char, c_void};

#[repr(C)]
pub struct calldata {
    pub stack: *mut u8,
    pub size: usize,
    pub capacity: usize,
    pub fixed: bool,
}

pub struct proc_handler {
    _private: u8,
}

static GLOBAL_PROC_HANDLER: proc_handler = proc_handler { _private: 0 };

#[no_mangle]
pub extern "C" fn obs_get_proc_handler() -> *mut proc_handler {
    std::ptr::addr_of!(GLOBAL_PROC_HANDLER).cast_mut()
}

#[no_mangle]
pub unsafe extern "C" fn proc_handler_call(
    _handler: *mut proc_handler,
    _name: *const c_char,
    _params: *mut calldata,
) -> bool {
    false
}

#[no_mangle]
pub unsafe extern "C" fn calldata_set_data(
    _data: *mut calldata,
    _name: *const c_char,
    _value: *const c_void,
    _size: usize,
) {
}

#[no_mangle]
pub unsafe extern "C" fn calldata_get_data(
    _data: *const calldata,
    _name: *const c_char,
    _out: *mut c_void,
    _size: usize,
) -> bool {
    false
}
