//! Building OBS property lists (`obs_properties_t`) without `unsafe` in the
//! code that decides what the dialog shows (src/obs/source.rs).

use std::ffi::{c_void, CString};

use super::sys;

pub type Clicked =
    unsafe extern "C" fn(*mut sys::obs_properties_t, *mut sys::obs_property_t, *mut c_void) -> bool;

pub type Modified = unsafe extern "C" fn(
    *mut sys::obs_properties_t,
    *mut sys::obs_property_t,
    *mut sys::obs_data_t,
) -> bool;

fn c(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

/// A properties object being filled; `into_raw` hands it to OBS.
pub struct Props {
    raw: *mut sys::obs_properties_t,
    owned: bool,
}

/// One property just added (to adjust it further).
pub struct Prop(*mut sys::obs_property_t);

impl Props {
    pub fn new() -> Props {
        // SAFETY: a fresh object, destroyed in Drop unless handed to OBS.
        Props {
            raw: unsafe { sys::obs_properties_create() },
            owned: true,
        }
    }

    /// For OBS to take ownership of (a get_properties return value).
    pub fn into_raw(mut self) -> *mut sys::obs_properties_t {
        self.owned = false;
        self.raw
    }

    /// A group box holding `content`.
    pub fn group(&mut self, name: &str, label: &str, mut content: Props) -> Prop {
        content.owned = false;
        let (name, label) = (c(name), c(label));
        // SAFETY: both objects are valid; OBS takes ownership of `content`
        // and copies the strings.
        Prop(unsafe {
            sys::obs_properties_add_group(
                self.raw,
                name.as_ptr(),
                label.as_ptr(),
                sys::obs_group_type::OBS_GROUP_NORMAL,
                content.raw,
            )
        })
    }

    fn text(&mut self, name: &str, label: &str, kind: sys::obs_text_type) -> Prop {
        let (name, label) = (c(name), c(label));
        // SAFETY: valid properties; OBS copies the strings.
        Prop(unsafe { sys::obs_properties_add_text(self.raw, name.as_ptr(), label.as_ptr(), kind) })
    }

    /// A line of text (no input).
    pub fn info(&mut self, name: &str, label: &str) -> Prop {
        self.text(name, label, sys::obs_text_type::OBS_TEXT_INFO)
    }

    /// A line of text shown as an error (red in OBS).
    pub fn error(&mut self, name: &str, label: &str) -> Prop {
        let prop = self.info(name, label);
        // SAFETY: a property we just added.
        unsafe {
            sys::obs_property_text_set_info_type(
                prop.0,
                sys::obs_text_info_type::OBS_TEXT_INFO_ERROR,
            )
        };
        prop
    }

    pub fn text_input(&mut self, name: &str, label: &str) -> Prop {
        self.text(name, label, sys::obs_text_type::OBS_TEXT_DEFAULT)
    }

    pub fn password(&mut self, name: &str, label: &str) -> Prop {
        self.text(name, label, sys::obs_text_type::OBS_TEXT_PASSWORD)
    }

    pub fn button(&mut self, name: &str, label: &str, clicked: Clicked) -> Prop {
        let (name, label) = (c(name), c(label));
        // SAFETY: valid properties; OBS copies the strings.
        Prop(unsafe {
            sys::obs_properties_add_button(self.raw, name.as_ptr(), label.as_ptr(), Some(clicked))
        })
    }

    /// A button that opens `url` in the user's browser.
    pub fn url_button(&mut self, name: &str, label: &str, url: &str) -> Prop {
        let (name, label, url) = (c(name), c(label), c(url));
        // SAFETY: valid properties; OBS copies the strings (the URL setter takes a non-const
        // pointer but only duplicates it). The callback is never called for a URL button.
        Prop(unsafe {
            let p = sys::obs_properties_add_button(
                self.raw,
                name.as_ptr(),
                label.as_ptr(),
                Some(never_clicked),
            );
            sys::obs_property_button_set_type(p, sys::obs_button_type::OBS_BUTTON_URL);
            sys::obs_property_button_set_url(p, url.as_ptr().cast_mut());
            p
        })
    }

    pub fn checkbox(&mut self, name: &str, label: &str) -> Prop {
        let (name, label) = (c(name), c(label));
        // SAFETY: valid properties; OBS copies the strings.
        Prop(unsafe { sys::obs_properties_add_bool(self.raw, name.as_ptr(), label.as_ptr()) })
    }

    pub fn int(&mut self, name: &str, label: &str, min: i32, max: i32, step: i32) -> Prop {
        let (name, label) = (c(name), c(label));
        // SAFETY: valid properties; OBS copies the strings.
        Prop(unsafe {
            sys::obs_properties_add_int(self.raw, name.as_ptr(), label.as_ptr(), min, max, step)
        })
    }

    /// A drop-down of strings; `editable` lets the user type a value too.
    pub fn list(
        &mut self,
        name: &str,
        label: &str,
        editable: bool,
        items: &[(String, String)],
    ) -> Prop {
        let (name, label) = (c(name), c(label));
        let kind = if editable {
            sys::obs_combo_type::OBS_COMBO_TYPE_EDITABLE
        } else {
            sys::obs_combo_type::OBS_COMBO_TYPE_LIST
        };
        // SAFETY: valid properties; OBS copies the strings.
        let prop = unsafe {
            sys::obs_properties_add_list(
                self.raw,
                name.as_ptr(),
                label.as_ptr(),
                kind,
                sys::obs_combo_format::OBS_COMBO_FORMAT_STRING,
            )
        };
        for (label, value) in items {
            let (label, value) = (c(label), c(value));
            // SAFETY: a list property we just added; OBS copies the strings.
            unsafe { sys::obs_property_list_add_string(prop, label.as_ptr(), value.as_ptr()) };
        }
        Prop(prop)
    }
}

impl Default for Props {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Props {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: still ours (never handed to OBS).
            unsafe { sys::obs_properties_destroy(self.raw) };
        }
    }
}

unsafe extern "C" fn never_clicked(
    _props: *mut sys::obs_properties_t,
    _prop: *mut sys::obs_property_t,
    _data: *mut std::ffi::c_void,
) -> bool {
    false
}

impl Prop {
    /// The tooltip.
    pub fn tooltip(self, text: &str) -> Prop {
        let text = c(text);
        // SAFETY: a valid property; OBS copies the string.
        unsafe { sys::obs_property_set_long_description(self.0, text.as_ptr()) };
        self
    }

    pub fn enabled(self, enabled: bool) -> Prop {
        // SAFETY: a valid property.
        unsafe { sys::obs_property_set_enabled(self.0, enabled) };
        self
    }

    pub fn visible(self, visible: bool) -> Prop {
        // SAFETY: a valid property.
        unsafe { sys::obs_property_set_visible(self.0, visible) };
        self
    }

    pub fn suffix(self, text: &str) -> Prop {
        let text = c(text);
        // SAFETY: a valid int property; OBS copies the string.
        unsafe { sys::obs_property_int_set_suffix(self.0, text.as_ptr()) };
        self
    }

    /// Redraw the dialog when the user changes this property.
    pub fn reload_on_change(self, modified: Modified) -> Prop {
        // SAFETY: a valid property.
        unsafe { sys::obs_property_set_modified_callback(self.0, Some(modified)) };
        self
    }
}
