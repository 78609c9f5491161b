//! Reading a source's settings (`obs_data_t`) without `unsafe` elsewhere.

use std::ffi::CString;

use super::sys;

/// A borrowed view of an `obs_data_t` that OBS owns for the call's duration.
pub struct Settings {
    data: *mut sys::obs_data_t,
}

// Until the party settings are read (voice issue), only the test producer
// reads numbers.
#[cfg_attr(not(feature = "test-producer"), allow(dead_code))]
impl Settings {
    /// # Safety
    /// `data` must be a valid `obs_data_t` for as long as the view is used.
    pub unsafe fn from_raw(data: *mut sys::obs_data_t) -> Settings {
        Settings { data }
    }

    fn key(name: &str) -> CString {
        CString::new(name).unwrap_or_default()
    }

    pub fn string(&self, name: &str) -> String {
        if self.data.is_null() {
            return String::new();
        }
        let key = Self::key(name);
        // SAFETY: `data` is valid (from_raw's contract); OBS returns a string
        // it owns (or null) that we copy at once.
        unsafe {
            let value = sys::obs_data_get_string(self.data, key.as_ptr());
            if value.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(value)
                    .to_string_lossy()
                    .into_owned()
            }
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        if self.data.is_null() {
            return 0;
        }
        let key = Self::key(name);
        // SAFETY: `data` is valid (from_raw's contract).
        unsafe { sys::obs_data_get_int(self.data, key.as_ptr()) }
    }

    pub fn double(&self, name: &str) -> f64 {
        if self.data.is_null() {
            return 0.0;
        }
        let key = Self::key(name);
        // SAFETY: `data` is valid (from_raw's contract).
        unsafe { sys::obs_data_get_double(self.data, key.as_ptr()) }
    }

    pub fn set_default_string(&self, name: &str, value: &str) {
        if self.data.is_null() {
            return;
        }
        let key = Self::key(name);
        let value = CString::new(value).unwrap_or_default();
        // SAFETY: `data` is valid; OBS copies key and value.
        unsafe { sys::obs_data_set_default_string(self.data, key.as_ptr(), value.as_ptr()) };
    }

    pub fn set_default_int(&self, name: &str, value: i64) {
        if self.data.is_null() {
            return;
        }
        let key = Self::key(name);
        // SAFETY: `data` is valid; OBS copies the key.
        unsafe { sys::obs_data_set_default_int(self.data, key.as_ptr(), value) };
    }

    pub fn set_default_double(&self, name: &str, value: f64) {
        if self.data.is_null() {
            return;
        }
        let key = Self::key(name);
        // SAFETY: `data` is valid; OBS copies the key.
        unsafe { sys::obs_data_set_default_double(self.data, key.as_ptr(), value) };
    }
}
