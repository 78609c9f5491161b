//! The recorded key order of the JSON bodies the app sends (PROTOCOL.md sections 3-5). PSN's
//! parser does not care, but a client whose keys come out in another order is not sending what
//! was recorded (and not what was tested: serde_json sorts keys unless `preserve_order` is on
//! in the build that ships). psn-sim reports every object whose keys are out of order as
//! unexpected.

use serde_json::Value;

/// Objects recognised by one key they always carry, and the recorded order of their keys.
const RECORDED: &[(&str, &[&str])] = &[
    // The member object of a join (section 3) [C].
    (
        "pushContexts",
        &[
            "accountId",
            "platform",
            "customData4",
            "pushContexts",
            "voiceChatActivated",
        ],
    ),
    // customMessage send (section 5) [C].
    (
        "payload",
        &["channel", "payload", "to", "withoutSequenceNumber"],
    ),
    // The push auth frame (section 4) [C].
    (
        "tranId",
        &["version", "method", "tranId", "accountId", "status", "auth"],
    ),
    // Create party (section 3) [C].
    (
        "sessionType",
        &[
            "joinableUserType",
            "maxMembers",
            "members",
            "sessionName",
            "sessionType",
            "visibilityType",
        ],
    ),
    // Invitations, bridge link, bridge peer media (sections 3, 6) [C].
    (
        "invitationType",
        &["invitationType", "invitations", "invitationsToGroups"],
    ),
    ("bridgeToken", &["bridgeId", "bridgeToken"]),
    (
        "samplingRates",
        &["bitrate", "channels", "codec", "ptime", "samplingRates"],
    ),
];

/// Every object in `body` (raw JSON bytes) whose keys are out of the recorded order, as
/// "key order: <got> (recorded: <want>)". Not JSON: nothing to say (the shape check says it).
pub fn check(body: &[u8]) -> Vec<String> {
    // psn-sim builds serde_json with `preserve_order`: a parsed map keeps the sender's order.
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return vec![];
    };
    let mut out = vec![];
    walk(&v, &mut out);
    out
}

fn walk(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            for (marker, order) in RECORDED {
                if !keys.contains(marker) {
                    continue;
                }
                let got: Vec<&str> = keys.iter().copied().filter(|k| order.contains(k)).collect();
                let want: Vec<&str> = order.iter().copied().filter(|k| keys.contains(k)).collect();
                if got != want {
                    out.push(format!(
                        "key order: {} (recorded: {})",
                        got.join(","),
                        want.join(",")
                    ));
                }
            }
            map.values().for_each(|x| walk(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_order_passes_and_sorted_member_object_does_not() {
        let recorded = br#"{"members":[{"accountId":"me","platform":"me","customData4":"x","pushContexts":[{"contextId":"c"}],"voiceChatActivated":true}]}"#;
        assert!(check(recorded).is_empty());
        let sorted = br#"{"members":[{"accountId":"me","customData4":"x","platform":"me","pushContexts":[{"contextId":"c"}],"voiceChatActivated":true}]}"#;
        assert_eq!(check(sorted).len(), 1, "{:?}", check(sorted));
        let auth = br#"{"accountId":"1","auth":{"accessToken":"t"},"method":1003,"status":"active","tranId":"1","version":"3.0"}"#;
        assert_eq!(check(auth).len(), 1);
        // Optional keys may be missing; the rest keep their order.
        assert!(check(br#"{"channel":"c","payload":"p"}"#).is_empty());
        assert!(check(b"not json").is_empty());
    }
}
