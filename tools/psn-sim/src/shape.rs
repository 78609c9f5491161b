//! The recorded request shapes (PROTOCOL.md) and a checker: a missing or mistyped required field is
//! an error (400, as PSN answers); a field the recorded shape does not have is recorded as
//! unexpected, so client tests can assert that none is ever sent.

use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Shape {
    Str,
    Int,
    Bool,
    Any,
    Arr(Box<Shape>),
    /// (name, required, shape)
    Obj(Vec<(&'static str, bool, Shape)>),
}

pub const REQ: bool = true;
pub const OPT: bool = false;

pub fn obj(fields: Vec<(&'static str, bool, Shape)>) -> Shape {
    Shape::Obj(fields)
}

pub fn arr(s: Shape) -> Shape {
    Shape::Arr(Box::new(s))
}

/// A required field of an object shape.
pub fn req(name: &'static str, s: Shape) -> (&'static str, bool, Shape) {
    (name, REQ, s)
}

/// An optional field of an object shape.
pub fn opt(name: &'static str, s: Shape) -> (&'static str, bool, Shape) {
    (name, OPT, s)
}

/// Checks `v` against `shape`; returns the errors, pushes unexpected field paths.
pub fn check(
    shape: &Shape,
    v: &Value,
    path: &str,
    errors: &mut Vec<String>,
    unexpected: &mut Vec<String>,
) {
    match (shape, v) {
        (Shape::Any, _) => {}
        (Shape::Str, Value::String(_)) | (Shape::Bool, Value::Bool(_)) => {}
        (Shape::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        (Shape::Arr(item), Value::Array(items)) => {
            for (i, it) in items.iter().enumerate() {
                check(item, it, &format!("{path}[{i}]"), errors, unexpected);
            }
        }
        (Shape::Obj(fields), Value::Object(map)) => {
            for (name, required, s) in fields {
                match map.get(*name) {
                    Some(x) => check(s, x, &join_path(path, name), errors, unexpected),
                    None if *required => {
                        errors.push(format!("{} is required", join_path(path, name)))
                    }
                    None => {}
                }
            }
            for k in map.keys() {
                if !fields.iter().any(|(n, _, _)| n == k) {
                    unexpected.push(join_path(path, k));
                }
            }
        }
        _ => errors.push(format!(
            "{} has the wrong type",
            if path.is_empty() { "body" } else { path }
        )),
    }
}

fn join_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// The member object (PROTOCOL.md section 3).
pub fn member() -> Shape {
    obj(vec![
        req("accountId", Shape::Str),
        req("platform", Shape::Str),
        opt("customData4", Shape::Str),
        opt("pushContexts", arr(obj(vec![req("contextId", Shape::Str)]))),
        opt("voiceChatActivated", Shape::Bool),
    ])
}

pub fn create_party() -> Shape {
    obj(vec![req("v2PartySessions", arr(party_session()))])
}

/// One party session to create.
pub fn party_session() -> Shape {
    obj(vec![
        req("joinableUserType", Shape::Str),
        req("maxMembers", Shape::Int),
        req("members", arr(member())),
        opt("sessionName", Shape::Str),
        req("sessionType", Shape::Str),
        req("visibilityType", Shape::Str),
    ])
}

pub fn join() -> Shape {
    obj(vec![req("members", arr(member()))])
}

pub fn update_member() -> Shape {
    obj(vec![req("customData4", Shape::Str)])
}

pub fn bulk_get() -> Shape {
    obj(vec![req("groupInvitedPartySessions", arr(Shape::Any))])
}

pub fn invitations() -> Shape {
    obj(vec![
        req("invitationType", Shape::Str),
        req(
            "invitations",
            arr(obj(vec![req(
                "to",
                obj(vec![req("accountId", Shape::Str)]),
            )])),
        ),
        opt("invitationsToGroups", arr(Shape::Any)),
    ])
}

pub fn link_bridge() -> Shape {
    obj(vec![req("bridges", arr(bridge_ref()))])
}

/// A bridge as a party names it: its id and token.
pub fn bridge_ref() -> Shape {
    obj(vec![
        req("bridgeId", Shape::Str),
        req("bridgeToken", Shape::Str),
    ])
}

pub fn custom_message() -> Shape {
    obj(vec![
        req("channel", Shape::Str),
        req("payload", Shape::Str),
        opt("to", arr(recipient())),
        opt("withoutSequenceNumber", Shape::Bool),
    ])
}

/// A recipient in a customMessage's `to` list.
pub fn recipient() -> Shape {
    obj(vec![
        req("accountId", Shape::Str),
        req("platform", Shape::Str),
    ])
}

pub fn create_bridge() -> Shape {
    obj(vec![])
}

pub fn media_types() -> Shape {
    obj(vec![req(
        "mediaTypes",
        obj(vec![
            req("application", obj(vec![req("isRequired", Shape::Bool)])),
            req(
                "audio",
                obj(vec![
                    req("isRequired", Shape::Bool),
                    req("opus", arr(opus_media())),
                ]),
            ),
        ]),
    )])
}

/// One Opus configuration the add-peer call asks the bridge for.
pub fn opus_media() -> Shape {
    obj(vec![
        req("bitrate", Shape::Int),
        req("channels", Shape::Int),
        req("codec", Shape::Str),
        req("ptime", Shape::Int),
        req("samplingRates", arr(Shape::Int)),
    ])
}

pub fn answer() -> Shape {
    obj(vec![req("answer", obj(vec![req("sdp", Shape::Str)]))])
}

/// The push auth frame (PROTOCOL.md section 4).
pub fn push_auth() -> Shape {
    obj(vec![
        req("version", Shape::Str),
        req("method", Shape::Int),
        req("tranId", Shape::Str),
        req("accountId", Shape::Str),
        req("status", Shape::Str),
        req("auth", obj(vec![req("accessToken", Shape::Str)])),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_missing_wrong_and_unexpected() {
        let mut e = vec![];
        let mut u = vec![];
        check(
            &join(),
            &json!({"members":[{"accountId":"me","platform":1,"extra":true}],"x":1}),
            "",
            &mut e,
            &mut u,
        );
        assert_eq!(e, vec!["members[0].platform has the wrong type"]);
        assert_eq!(u, vec!["members[0].extra", "x"]);
    }
}
