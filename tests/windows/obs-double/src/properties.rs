//! `obs_properties_t`: a list of named properties (groups nest), kept so the plugin's properties
//! callback can build its dialog; the double only frees it (no UI under wine).

use std::ffi::{c_char, c_int, c_void};

use crate::string_from;

#[derive(Default)]
pub struct obs_properties {
    items: Vec<Box<obs_property>>,
}

#[derive(Default)]
pub struct obs_property {
    pub name: String,
    pub description: String,
    pub long_description: String,
    pub visible: bool,
    pub enabled: bool,
    pub list: Vec<(String, String)>,
    pub group: Option<Box<obs_properties>>,
    pub suffix: String,
    pub clicked: *mut c_void,
    pub modified: *mut c_void,
}

unsafe fn add(
    props: *mut obs_properties,
    name: *const c_char,
    desc: *const c_char,
) -> *mut obs_property {
    let Some(props) = props.as_mut() else {
        return std::ptr::null_mut();
    };
    let mut item = Box::new(obs_property {
        name: string_from(name),
        description: string_from(desc),
        visible: true,
        enabled: true,
        ..obs_property::default()
    });
    let ptr: *mut obs_property = &mut *item;
    props.items.push(item);
    ptr
}

#[no_mangle]
pub extern "C" fn obs_properties_create() -> *mut obs_properties {
    Box::into_raw(Box::default())
}

#[no_mangle]
pub unsafe extern "C" fn obs_properties_destroy(props: *mut obs_properties) {
    if !props.is_null() {
        drop(Box::from_raw(props));
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_properties_add_bool(
    props: *mut obs_properties,
    name: *const c_char,
    desc: *const c_char,
) -> *mut obs_property {
    add(props, name, desc)
}

#[no_mangle]
pub unsafe extern "C" fn obs_properties_add_int(
    props: *mut obs_properties,
    name: *const c_char,
    desc: *const c_char,
    _min: c_int,
    _max: c_int,
    _step: c_int,
) -> *mut obs_property {
    add(props, name, desc)
}

#[no_mangle]
pub unsafe extern "C" fn obs_properties_add_text(
    props: *mut obs_properties,
    name: *const c_char,
    desc: *const c_char,
    _kind: c_int,
) -> *mut obs_property {
    add(props, name, desc)
}

#[no_mangle]
pub unsafe extern "C" fn obs_properties_add_list(
    props: *mut obs_properties,
    name: *const c_char,
    desc: *const c_char,
    _kind: c_int,
    _format: c_int,
) -> *mut obs_property {
    add(props, name, desc)
}

#[no_mangle]
pub unsafe extern "C" fn obs_properties_add_button(
    props: *mut obs_properties,
    name: *const c_char,
    text: *const c_char,
    callback: *mut c_void,
) -> *mut obs_property {
    let p = add(props, name, text);
    if let Some(p) = p.as_mut() {
        p.clicked = callback;
    }
    p
}

/// The group takes ownership of `group` (libobs frees it with the parent).
#[no_mangle]
pub unsafe extern "C" fn obs_properties_add_group(
    props: *mut obs_properties,
    name: *const c_char,
    desc: *const c_char,
    _kind: c_int,
    group: *mut obs_properties,
) -> *mut obs_property {
    let p = add(props, name, desc);
    if let Some(p) = p.as_mut() {
        if !group.is_null() {
            p.group = Some(Box::from_raw(group));
        }
    }
    p
}

#[no_mangle]
pub unsafe extern "C" fn obs_property_list_add_string(
    p: *mut obs_property,
    name: *const c_char,
    value: *const c_char,
) -> usize {
    p.as_mut().map_or(0, |p| {
        p.list.push((string_from(name), string_from(value)));
        p.list.len() - 1
    })
}

#[no_mangle]
pub unsafe extern "C" fn obs_property_set_long_description(
    p: *mut obs_property,
    text: *const c_char,
) {
    if let Some(p) = p.as_mut() {
        p.long_description = string_from(text);
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_property_set_enabled(p: *mut obs_property, enabled: bool) {
    if let Some(p) = p.as_mut() {
        p.enabled = enabled;
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_property_set_visible(p: *mut obs_property, visible: bool) {
    if let Some(p) = p.as_mut() {
        p.visible = visible;
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_property_text_set_info_type(_p: *mut obs_property, _kind: c_int) {}

#[no_mangle]
pub unsafe extern "C" fn obs_property_int_set_suffix(p: *mut obs_property, suffix: *const c_char) {
    if let Some(p) = p.as_mut() {
        p.suffix = string_from(suffix);
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_property_set_modified_callback(
    p: *mut obs_property,
    callback: *mut c_void,
) {
    if let Some(p) = p.as_mut() {
        p.modified = callback;
    }
}

/// A button that opens a URL in OBS; the double keeps the URL in the property's `suffix` field,
/// for a test to read (it never opens it).
#[no_mangle]
pub unsafe extern "C" fn obs_property_button_set_type(
    _p: *mut obs_property,
    _kind: std::ffi::c_int,
) {
}

#[no_mangle]
pub unsafe extern "C" fn obs_property_button_set_url(p: *mut obs_property, url: *mut c_char) {
    if let Some(p) = p.as_mut() {
        p.suffix = string_from(url);
    }
}
