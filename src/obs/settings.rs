//! Reading a source's settings (`obs_data_t`) without `unsafe` elsewhere.

use std::ffi::CString;

use super::sys;

/// A borrowed view of an `obs_data_t` that OBS owns for the call's duration.
pub struct Settings {
    data: *mut sys::obs_data_t,
}

// Only the test producer reads doubles.
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

    pub fn bool(&self, name: &str) -> bool {
        if self.data.is_null() {
            return false;
        }
        let key = Self::key(name);
        // SAFETY: `data` is valid (from_raw's contract).
        unsafe { sys::obs_data_get_bool(self.data, key.as_ptr()) }
    }

    /// The string the user set under `name`, removed from the settings at
    /// once (even an empty one: the user emptied the field); `None` when
    /// `name` holds no user value.
    pub fn take_string(&self, name: &str) -> Option<String> {
        if self.data.is_null() {
            return None;
        }
        let key = Self::key(name);
        // SAFETY: `data` is valid (from_raw's contract).
        if !unsafe { sys::obs_data_has_user_value(self.data, key.as_ptr()) } {
            return None;
        }
        let value = self.string(name);
        self.erase(name);
        Some(value)
    }

    /// Removes `name` (used to keep secrets out of the scene collection).
    pub fn erase(&self, name: &str) {
        if self.data.is_null() {
            return;
        }
        let key = Self::key(name);
        // SAFETY: `data` is valid; OBS copies the key.
        unsafe { sys::obs_data_erase(self.data, key.as_ptr()) };
    }

    pub fn set_default_bool(&self, name: &str, value: bool) {
        if self.data.is_null() {
            return;
        }
        let key = Self::key(name);
        // SAFETY: `data` is valid; OBS copies the key.
        unsafe { sys::obs_data_set_default_bool(self.data, key.as_ptr(), value) };
    }

    /// Every boolean the user set whose key starts with `prefix`, as
    /// (rest of the key, value).
    pub fn user_bools_with_prefix(&self, prefix: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        if self.data.is_null() {
            return out;
        }
        // SAFETY: `data` is valid; each item is released by item_next (and
        // the last one by OBS when next returns false, item becomes null).
        unsafe {
            let mut item = sys::obs_data_first(self.data);
            while !item.is_null() {
                let name = sys::obs_data_item_get_name(item);
                if !name.is_null()
                    && sys::obs_data_item_gettype(item) == sys::obs_data_type::OBS_DATA_BOOLEAN
                    && sys::obs_data_item_has_user_value(item)
                {
                    let name = std::ffi::CStr::from_ptr(name).to_string_lossy();
                    if let Some(rest) = name.strip_prefix(prefix) {
                        out.push((rest.to_owned(), sys::obs_data_item_get_bool(item)));
                    }
                }
                if !sys::obs_data_item_next(&mut item) {
                    break;
                }
            }
            if !item.is_null() {
                sys::obs_data_item_release(&mut item);
            }
        }
        out
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

/// A source's own settings, held (and released when dropped).
pub struct SourceSettings(Settings);

impl SourceSettings {
    /// # Safety
    /// `source` must be a valid source.
    pub unsafe fn of(source: *mut sys::obs_source_t) -> SourceSettings {
        // SAFETY: the caller's promise; we own the returned reference.
        SourceSettings(Settings {
            data: unsafe { sys::obs_source_get_settings(source) },
        })
    }
}

impl std::ops::Deref for SourceSettings {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.0
    }
}

impl Drop for SourceSettings {
    fn drop(&mut self) {
        if !self.0.data.is_null() {
            // SAFETY: the reference obs_source_get_settings gave us.
            unsafe { sys::obs_data_release(self.0.data) };
        }
    }
}
