//! `obs_data_t` as JSON: user values over defaults, reference counted, strings handed out stay
//! valid until the key is set again or the data is released (libobs's contract).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::types::obs_data_type;
use crate::{cstring, string_from};

pub struct obs_data {
    refs: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    user: Map<String, Value>,
    defaults: Map<String, Value>,
    /// Strings handed out, by key (and the whole JSON under "").
    handed_out: HashMap<String, CString>,
    json: CString,
}

impl obs_data {
    pub(crate) fn new(user: Map<String, Value>) -> *mut obs_data {
        Box::into_raw(Box::new(obs_data {
            refs: AtomicUsize::new(1),
            inner: Mutex::new(Inner {
                user,
                ..Inner::default()
            }),
        }))
    }

    pub(crate) unsafe fn addref(data: *mut obs_data) -> *mut obs_data {
        if let Some(d) = data.as_ref() {
            d.refs.fetch_add(1, Ordering::AcqRel);
        }
        data
    }

    /// The user values as JSON text (what a scene file would hold).
    pub(crate) fn user_json(&self) -> String {
        Value::Object(self.inner.lock().unwrap().user.clone()).to_string()
    }

    fn value(&self, name: &str) -> Option<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .user
            .get(name)
            .or_else(|| inner.defaults.get(name))
            .cloned()
    }

    fn set(&self, name: &str, value: Value, default: bool) {
        let mut inner = self.inner.lock().unwrap();
        if default {
            inner.defaults.insert(name.to_owned(), value);
        } else {
            inner.user.insert(name.to_owned(), value);
        }
    }
}

unsafe fn with<T>(data: *mut obs_data, fallback: T, f: impl FnOnce(&obs_data) -> T) -> T {
    match data.as_ref() {
        Some(d) => f(d),
        None => fallback,
    }
}

#[no_mangle]
pub extern "C" fn obs_data_create() -> *mut obs_data {
    obs_data::new(Map::new())
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_create_from_json(json: *const c_char) -> *mut obs_data {
    match serde_json::from_str::<Value>(&string_from(json)) {
        Ok(Value::Object(map)) => obs_data::new(map),
        _ => std::ptr::null_mut(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_release(data: *mut obs_data) {
    if let Some(d) = data.as_ref() {
        if d.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            drop(Box::from_raw(data));
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_get_json(data: *mut obs_data) -> *const c_char {
    with(data, std::ptr::null(), |d| {
        let json = cstring(&d.user_json());
        let mut inner = d.inner.lock().unwrap();
        inner.json = json;
        inner.json.as_ptr()
    })
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_get_string(
    data: *mut obs_data,
    name: *const c_char,
) -> *const c_char {
    let name = string_from(name);
    with(data, c"".as_ptr(), |d| {
        let text = match d.value(&name) {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        let mut inner = d.inner.lock().unwrap();
        let kept = inner.handed_out.entry(name).or_default();
        if kept.to_bytes() != text.as_bytes() {
            *kept = cstring(&text);
        }
        kept.as_ptr()
    })
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_get_int(data: *mut obs_data, name: *const c_char) -> i64 {
    let name = string_from(name);
    with(data, 0, |d| match d.value(&name) {
        Some(Value::Number(n)) => n
            .as_i64()
            .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
        _ => 0,
    })
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_get_double(data: *mut obs_data, name: *const c_char) -> f64 {
    let name = string_from(name);
    with(data, 0.0, |d| match d.value(&name) {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        _ => 0.0,
    })
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_get_bool(data: *mut obs_data, name: *const c_char) -> bool {
    let name = string_from(name);
    with(data, false, |d| {
        matches!(d.value(&name), Some(Value::Bool(true)))
    })
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_get_obj(
    data: *mut obs_data,
    name: *const c_char,
) -> *mut obs_data {
    let name = string_from(name);
    with(data, std::ptr::null_mut(), |d| match d.value(&name) {
        Some(Value::Object(map)) => obs_data::new(map),
        _ => std::ptr::null_mut(),
    })
}

macro_rules! setters {
    ($set:ident, $set_default:ident, $ty:ty, $conv:expr) => {
        #[no_mangle]
        pub unsafe extern "C" fn $set(data: *mut obs_data, name: *const c_char, value: $ty) {
            let name = string_from(name);
            let value: Value = $conv(value);
            with(data, (), |d| d.set(&name, value, false));
        }

        #[no_mangle]
        pub unsafe extern "C" fn $set_default(
            data: *mut obs_data,
            name: *const c_char,
            value: $ty,
        ) {
            let name = string_from(name);
            let value: Value = $conv(value);
            with(data, (), |d| d.set(&name, value, true));
        }
    };
}

setters!(
    obs_data_set_string,
    obs_data_set_default_string,
    *const c_char,
    |v| Value::String(string_from(v))
);
setters!(obs_data_set_int, obs_data_set_default_int, i64, Value::from);
setters!(
    obs_data_set_double,
    obs_data_set_default_double,
    f64,
    Value::from
);
setters!(
    obs_data_set_bool,
    obs_data_set_default_bool,
    bool,
    Value::Bool
);

#[no_mangle]
pub unsafe extern "C" fn obs_data_erase(data: *mut obs_data, name: *const c_char) {
    let name = string_from(name);
    with(data, (), |d| {
        let mut inner = d.inner.lock().unwrap();
        inner.user.remove(&name);
        inner.defaults.remove(&name);
    });
}

/// An item of `obs_data_first`'s walk: every key with a user or a default value.
pub struct obs_data_item {
    data: *mut obs_data,
    keys: Vec<String>,
    at: usize,
    name: CString,
}

impl obs_data_item {
    fn key(&self) -> &str {
        &self.keys[self.at]
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_first(data: *mut obs_data) -> *mut obs_data_item {
    with(data, std::ptr::null_mut(), |d| {
        let inner = d.inner.lock().unwrap();
        let mut keys: Vec<String> = inner.user.keys().cloned().collect();
        keys.extend(
            inner
                .defaults
                .keys()
                .filter(|k| !inner.user.contains_key(*k))
                .cloned(),
        );
        drop(inner);
        if keys.is_empty() {
            return std::ptr::null_mut();
        }
        let name = cstring(&keys[0]);
        Box::into_raw(Box::new(obs_data_item {
            data: obs_data::addref(data),
            keys,
            at: 0,
            name,
        }))
    })
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_item_next(item: *mut *mut obs_data_item) -> bool {
    let Some(current) = item.as_mut().and_then(|i| i.as_mut()) else {
        return false;
    };
    current.at += 1;
    if current.at < current.keys.len() {
        current.name = cstring(&current.keys[current.at]);
        true
    } else {
        obs_data_item_release(item);
        false
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_item_release(item: *mut *mut obs_data_item) {
    if let Some(slot) = item.as_mut() {
        if !slot.is_null() {
            let owned = Box::from_raw(*slot);
            obs_data_release(owned.data);
            *slot = std::ptr::null_mut();
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_item_get_name(item: *mut obs_data_item) -> *const c_char {
    item.as_ref().map_or(std::ptr::null(), |i| i.name.as_ptr())
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_item_gettype(item: *mut obs_data_item) -> c_int {
    let Some(i) = item.as_ref() else {
        return obs_data_type::OBS_DATA_NULL as c_int;
    };
    let kind = match (*i.data).value(i.key()) {
        Some(Value::String(_)) => obs_data_type::OBS_DATA_STRING,
        Some(Value::Number(_)) => obs_data_type::OBS_DATA_NUMBER,
        Some(Value::Bool(_)) => obs_data_type::OBS_DATA_BOOLEAN,
        Some(Value::Object(_)) => obs_data_type::OBS_DATA_OBJECT,
        Some(Value::Array(_)) => obs_data_type::OBS_DATA_ARRAY,
        _ => obs_data_type::OBS_DATA_NULL,
    };
    kind as c_int
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_item_get_bool(item: *mut obs_data_item) -> bool {
    item.as_ref()
        .is_some_and(|i| matches!((*i.data).value(i.key()), Some(Value::Bool(true))))
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_item_has_user_value(item: *mut obs_data_item) -> bool {
    item.as_ref().is_some_and(|i| {
        let inner = (*i.data).inner.lock().unwrap();
        inner.user.contains_key(i.key())
    })
}

#[no_mangle]
pub unsafe extern "C" fn obs_data_has_user_value(data: *mut obs_data, name: *const c_char) -> bool {
    let name = string_from(name);
    with(data, false, |d| {
        d.inner.lock().unwrap().user.contains_key(&name)
    })
}

/// Copies every user value of `from` into `target` (libobs's `obs_data_apply`).
#[no_mangle]
pub unsafe extern "C" fn obs_data_apply(target: *mut obs_data, from: *mut obs_data) {
    let (Some(target), Some(from)) = (target.as_ref(), from.as_ref()) else {
        return;
    };
    if std::ptr::eq(target, from) {
        return;
    }
    let values = from.inner.lock().unwrap().user.clone();
    for (name, value) in values {
        target.set(&name, value, false);
    }
}
