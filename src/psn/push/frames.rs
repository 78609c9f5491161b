//! Push frames (PROTOCOL.md section 4): the typed events a text frame carries, the parser that
//! reads them (never panics: the network writes these) and the protocol 3.0 auth frame.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::psn::error::PsnError;
use crate::psn::model::RosterMember;

pub const DATA_TYPE_PREFIX: &str = "psn:sessionManager:sys:";

/// Who a frame is about (`data.customProperties.from`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PushFrom {
    pub account_id: String,
    #[serde(deserialize_with = "crate::psn::log_mask::online_id")]
    pub online_id: String,
    pub platform: String,
    pub device_unique_id: String,
    pub join_order: Option<i64>,
}

impl PushFrom {
    pub fn member(&self) -> RosterMember {
        RosterMember {
            account_id: self.account_id.clone(),
            online_id: self.online_id.clone(),
            platform: self.platform.clone(),
        }
    }
}

/// A member in `members:created`: who, plus the member's state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PushMember {
    #[serde(flatten)]
    pub who: PushFrom,
    pub voice_chat_activated: Option<bool>,
    pub custom_data4: Option<String>,
}

impl PushMember {
    pub fn member(&self) -> RosterMember {
        self.who.member()
    }
}

/// What the push channel (or the polling fallback) reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PushEvent {
    /// The WebSocket is up and authenticated.
    Connected,
    /// The WebSocket went down; the client reconnects by itself.
    Disconnected { reason: String },
    /// Polling stands in for push (or stops doing so).
    PollingFallback { active: bool, interval: Duration },
    MembersJoined {
        session_id: String,
        members: Vec<PushMember>,
    },
    MembersLeft {
        session_id: String,
        members: Vec<RosterMember>,
    },
    CustomMessage {
        session_id: String,
        /// The sender as PSN reports it (`customProperties.from`): the one identity the sender
        /// does not write itself.
        from: PushFrom,
        /// The device the frame was delivered to (the envelope's `to`; `deviceUniqueId` only
        /// when PSN sends one [U]).
        to: PushFrom,
        channel: String,
        payload: String,
    },
    /// `customData3`/`customData4` of a member changed (`field` is 3 or 4; value when the frame has it).
    CustomDataUpdated {
        session_id: String,
        from: PushFrom,
        field: u8,
        value: Option<String>,
    },
    /// Name, owner or another party property changed.
    PartyUpdated {
        session_id: String,
        data_type: String,
    },
    PartyDeleted {
        session_id: String,
        cause: Option<String>,
    },
    /// A frame of a type this client does not know.
    Unknown { data_type: String },
    /// Push stopped for good (signed out, credentials rejected): the user must act.
    Failed { error: PsnError },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not JSON")]
    NotJson,
    #[error("no dataType")]
    NoDataType,
    #[error("{0} lacks {1}")]
    Missing(String, &'static str),
}

/// Parses one text frame. `Ok(None)` for frames that are not events (e.g. answers to our own
/// requests). Never panics.
pub fn parse_frame(text: &str) -> std::result::Result<Option<PushEvent>, FrameError> {
    let v: Value = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
    if v.get("method").and_then(Value::as_i64) != Some(3001) {
        return Ok(None);
    }
    let data_type = v
        .get("dataType")
        .and_then(Value::as_str)
        .ok_or(FrameError::NoDataType)?;
    let short = data_type
        .strip_prefix(DATA_TYPE_PREFIX)
        .unwrap_or(data_type);
    let data = v.pointer("/body/data").cloned().unwrap_or(Value::Null);
    let session_id = || -> std::result::Result<String, FrameError> {
        data.get("sessionId")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| FrameError::Missing(short.to_string(), "sessionId"))
    };
    let from = || -> PushFrom {
        data.pointer("/customProperties/from")
            .and_then(|f| PushFrom::deserialize(f).ok())
            .unwrap_or_default()
    };
    let members = || -> Vec<PushMember> {
        data.get("members")
            .and_then(|m| Vec::<PushMember>::deserialize(m).ok())
            .unwrap_or_default()
    };
    let ev = match short {
        "v2:ps:members:created" | "pts:members:created" => PushEvent::MembersJoined {
            session_id: session_id()?,
            members: members(),
        },
        "v2:ps:members:deleted" | "pts:members:deleted" => {
            let mut left: Vec<RosterMember> = members().iter().map(PushMember::member).collect();
            if left.is_empty() {
                let f = from();
                if f.account_id.is_empty() {
                    return Err(FrameError::Missing(
                        short.to_string(),
                        "members or customProperties.from",
                    ));
                }
                left.push(f.member());
            }
            PushEvent::MembersLeft {
                session_id: session_id()?,
                members: left,
            }
        }
        "v2:ps:customMessage:noSeq:created" | "pts:customMessage:created" => {
            let cm = data
                .get("customMessage")
                .ok_or_else(|| FrameError::Missing(short.to_string(), "customMessage"))?;
            let field = |k: &'static str| {
                cm.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| FrameError::Missing(short.to_string(), k))
            };
            PushEvent::CustomMessage {
                session_id: session_id()?,
                from: from(),
                to: v
                    .get("to")
                    .and_then(|t| PushFrom::deserialize(t).ok())
                    .unwrap_or_default(),
                channel: field("channel")?,
                payload: field("payload")?,
            }
        }
        "v2:ps:m:customData3:updated" | "v2:ps:m:customData4:updated" => {
            let (field, key) = if short.contains("customData3") {
                (3, "customData3")
            } else {
                (4, "customData4")
            };
            let value = data
                .get(key)
                .or_else(|| data.pointer(&format!("/members/0/{key}")))
                .and_then(Value::as_str)
                .map(str::to_string);
            PushEvent::CustomDataUpdated {
                session_id: session_id()?,
                from: from(),
                field,
                value,
            }
        }
        "outside:v2:partySession:deleted" | "v2:partySession:deleted" | "partySession:deleted" => {
            PushEvent::PartyDeleted {
                session_id: session_id()?,
                cause: data
                    .pointer("/customProperties/deletedEvenCause")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }
        }
        s if s.starts_with("v2:ps:") && s.ends_with(":updated") => PushEvent::PartyUpdated {
            session_id: session_id()?,
            data_type: data_type.to_string(),
        },
        _ => PushEvent::Unknown {
            data_type: data_type.to_string(),
        },
    };
    Ok(Some(ev))
}

/// The auth frame of protocol 3.0 (PROTOCOL.md section 4).
pub fn auth_frame(account_id: &str, access_token: &str) -> String {
    json!({"version":"3.0","method":1003,"tranId":"1","accountId":account_id,"status":"active","auth":{"accessToken":access_token}})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_recorded_types() {
        let f = |dt: &str, data: Value| {
            json!({"version":"3.0","method":3001,"dataType":format!("{DATA_TYPE_PREFIX}{dt}"),"to":{},"body":{"data":data}}).to_string()
        };
        let from = json!({"accountId":"1","onlineId":"a","platform":"PS5","deviceUniqueId":"d","joinOrder":1});
        let ev = parse_frame(&f("v2:ps:members:created", json!({"sessionId":"s","customProperties":{"from":from},"members":[{"accountId":"2","onlineId":"b","platform":"PS4"}]}))).unwrap().unwrap();
        assert!(
            matches!(ev, PushEvent::MembersJoined { ref members, .. } if members[0].who.online_id == "b")
        );
        let ev = parse_frame(&f(
            "v2:ps:members:deleted",
            json!({"sessionId":"s","customProperties":{"from":from}}),
        ))
        .unwrap()
        .unwrap();
        assert!(
            matches!(ev, PushEvent::MembersLeft { ref members, .. } if members[0].account_id == "1")
        );
        let ev = parse_frame(&f("v2:ps:customMessage:noSeq:created", json!({"sessionId":"s","customProperties":{"from":from},"customMessage":{"channel":"miranda:12","payload":"p"}}))).unwrap().unwrap();
        assert!(
            matches!(ev, PushEvent::CustomMessage { ref channel, .. } if channel == "miranda:12")
        );
        let ev = parse_frame(&f(
            "outside:v2:partySession:deleted",
            json!({"sessionId":"s","customProperties":{"deletedEvenCause":"LAST_MEMBER_LEFT"}}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            ev,
            PushEvent::PartyDeleted {
                session_id: "s".into(),
                cause: Some("LAST_MEMBER_LEFT".into())
            }
        );
        let ev = parse_frame(&f(
            "v2:ps:m:customData4:updated",
            json!({"sessionId":"s","customProperties":{"from":from}}),
        ))
        .unwrap()
        .unwrap();
        assert!(matches!(ev, PushEvent::CustomDataUpdated { field: 4, .. }));
        let ev = parse_frame(&f("v2:ps:sessionName:updated", json!({"sessionId":"s"})))
            .unwrap()
            .unwrap();
        assert!(matches!(ev, PushEvent::PartyUpdated { .. }));
        assert!(matches!(
            parse_frame(&f("something:new", json!({})))
                .unwrap()
                .unwrap(),
            PushEvent::Unknown { .. }
        ));
        assert_eq!(parse_frame("{]"), Err(FrameError::NotJson));
        assert_eq!(
            parse_frame(r#"{"method":3001}"#),
            Err(FrameError::NoDataType)
        );
        assert_eq!(parse_frame(r#"{"method":1003}"#), Ok(None));
    }
}
