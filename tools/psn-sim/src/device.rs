//! Devices. The app sends a device id (`duid`) on authorize (seeds' flows: `authorize?duid=...`
//! [C, value not recorded]); PSN ties the code, the tokens issued from it and so the push
//! connection and the party membership to that device [I]. psn-sim keeps that binding, gives
//! the user's MOBILE_APP member the `deviceUniqueId` of the device that joined, and refuses a
//! second membership of the same device (docs/psn-sim.md "Devices").

use crate::state::State;

/// Remembers the device of an authorize call, bound to the code it hands out.
pub fn authorized(st: &mut State, code: &str, duid: Option<&str>) {
    let Some(duid) = duid.filter(|d| !d.is_empty()) else {
        st.unexpected.push("authorize: no duid".into());
        return;
    };
    if !st.devices_seen.iter().any(|d| d == duid) {
        st.devices_seen.push(duid.to_owned());
    }
    st.token_devices.insert(code.to_owned(), duid.to_owned());
}

/// Tokens issued from `from` (a code or a refresh token) belong to its device.
pub fn tokens_issued(st: &mut State, from: &str, answer: &serde_json::Value) {
    let Some(duid) = st.token_devices.get(from).cloned() else {
        return;
    };
    for k in ["access_token", "refresh_token"] {
        if let Some(t) = answer[k].as_str() {
            st.token_devices.insert(t.to_owned(), duid.clone());
        }
    }
}

/// The device of a bearer token, when it was signed in with one.
pub fn of_token(st: &State, token: &str) -> Option<String> {
    st.token_devices.get(token).cloned()
}
