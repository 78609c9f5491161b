//! Module locale: `<data>/locale/<name>.ini` (`Key="Value"` lines), the default locale first and
//! the chosen one over it, as libobs's text lookup.

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::path::Path;

use crate::source::obs_module;
use crate::{cstring, string_from};

pub struct text_lookup {
    texts: HashMap<String, CString>,
}

fn read_ini(path: &Path, into: &mut HashMap<String, CString>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            into.insert(key.trim().to_owned(), cstring(&value.replace("\\n", "\n")));
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_module_load_locale(
    module: *mut obs_module,
    default_locale: *const c_char,
    locale: *const c_char,
) -> *mut text_lookup {
    let Some(module) = module.as_ref() else {
        return std::ptr::null_mut();
    };
    let dir = Path::new(&module.data_path).join("locale");
    let mut texts = HashMap::new();
    read_ini(
        &dir.join(format!("{}.ini", string_from(default_locale))),
        &mut texts,
    );
    read_ini(
        &dir.join(format!("{}.ini", string_from(locale))),
        &mut texts,
    );
    if texts.is_empty() {
        return std::ptr::null_mut();
    }
    Box::into_raw(Box::new(text_lookup { texts }))
}

#[no_mangle]
pub unsafe extern "C" fn text_lookup_getstr(
    lookup: *mut text_lookup,
    key: *const c_char,
    out: *mut *const c_char,
) -> bool {
    let Some(lookup) = lookup.as_ref() else {
        return false;
    };
    match lookup.texts.get(&string_from(key)) {
        Some(text) if !out.is_null() => {
            *out = text.as_ptr();
            true
        }
        _ => false,
    }
}

#[no_mangle]
pub unsafe extern "C" fn text_lookup_destroy(lookup: *mut text_lookup) {
    if !lookup.is_null() {
        drop(Box::from_raw(lookup));
    }
}
