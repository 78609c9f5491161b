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
        ("accountId", REQ, Shape::Str),
        ("platform", REQ, Shape::Str),
        ("customData4", OPT, Shape::Str),
        (
            "pushContexts",
            OPT,
            arr(obj(vec![("contextId", REQ, Shape::Str)])),
        ),
        ("voiceChatActivated", OPT, Shape::Bool),
    ])
}

pub fn create_party() -> Shape {
    obj(vec![(
        "v2PartySessions",
        REQ,
        arr(obj(vec![
            ("joinableUserType", REQ, Shape::Str),
            ("maxMembers", REQ, Shape::Int),
            ("members", REQ, arr(member())),
            ("sessionName", OPT, Shape::Str),
            ("sessionType", REQ, Shape::Str),
            ("visibilityType", REQ, Shape::Str),
        ])),
    )])
}

pub fn join() -> Shape {
    obj(vec![("members", REQ, arr(member()))])
}

pub fn update_member() -> Shape {
    obj(vec![("customData4", REQ, Shape::Str)])
}

pub fn bulk_get() -> Shape {
    obj(vec![("groupInvitedPartySessions", REQ, arr(Shape::Any))])
}

pub fn invitations() -> Shape {
    obj(vec![
        ("invitationType", REQ, Shape::Str),
        (
            "invitations",
            REQ,
            arr(obj(vec![(
                "to",
                REQ,
                obj(vec![("accountId", REQ, Shape::Str)]),
            )])),
        ),
        ("invitationsToGroups", OPT, arr(Shape::Any)),
    ])
}

pub fn link_bridge() -> Shape {
    obj(vec![(
        "bridges",
        REQ,
        arr(obj(vec![
            ("bridgeId", REQ, Shape::Str),
            ("bridgeToken", REQ, Shape::Str),
        ])),
    )])
}

pub fn custom_message() -> Shape {
    obj(vec![
        ("channel", REQ, Shape::Str),
        ("payload", REQ, Shape::Str),
        (
            "to",
            OPT,
            arr(obj(vec![
                ("accountId", REQ, Shape::Str),
                ("platform", REQ, Shape::Str),
            ])),
        ),
        ("withoutSequenceNumber", OPT, Shape::Bool),
    ])
}

pub fn create_bridge() -> Shape {
    obj(vec![])
}

pub fn media_types() -> Shape {
    obj(vec![(
        "mediaTypes",
        REQ,
        obj(vec![
            (
                "application",
                REQ,
                obj(vec![("isRequired", REQ, Shape::Bool)]),
            ),
            (
                "audio",
                REQ,
                obj(vec![
                    ("isRequired", REQ, Shape::Bool),
                    (
                        "opus",
                        REQ,
                        arr(obj(vec![
                            ("bitrate", REQ, Shape::Int),
                            ("channels", REQ, Shape::Int),
                            ("codec", REQ, Shape::Str),
                            ("ptime", REQ, Shape::Int),
                            ("samplingRates", REQ, arr(Shape::Int)),
                        ])),
                    ),
                ]),
            ),
        ]),
    )])
}

pub fn answer() -> Shape {
    obj(vec![("answer", REQ, obj(vec![("sdp", REQ, Shape::Str)]))])
}

/// The push auth frame (PROTOCOL.md section 4).
pub fn push_auth() -> Shape {
    obj(vec![
        ("version", REQ, Shape::Str),
        ("method", REQ, Shape::Int),
        ("tranId", REQ, Shape::Str),
        ("accountId", REQ, Shape::Str),
        ("status", REQ, Shape::Str),
        ("auth", REQ, obj(vec![("accessToken", REQ, Shape::Str)])),
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
