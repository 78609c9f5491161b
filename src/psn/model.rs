//! The PSN data the client reads and hands on, in one place: a party and its roster, the
//! public party-link info, a bridge and its peer, and the typed JSON answers as PSN sends them
//! (the fuzz target fuzz/fuzz_targets/psn_json_answers.rs and the tests decode exactly what the
//! client decodes). Shapes per PROTOCOL.md; anything not named here is read as a raw
//! `serde_json::Value`. Depends on nothing else in `psn` but the secret type, so every other
//! module can use it without a cycle.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::secret::Secret;

/// The platforms PROTOCOL.md section 3 has seen.
pub const CONSOLE_PLATFORMS: &[&str] = &["PS5", "PS4"];
/// The PlayStation App's platform: ours, and that of members who talk from a phone [C].
pub const MOBILE_APP: &str = "MOBILE_APP";

/// One member of a party roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RosterMember {
    pub account_id: String,
    #[serde(default, deserialize_with = "crate::psn::log_mask::online_id")]
    pub online_id: String,
    #[serde(default)]
    pub platform: String,
}

impl RosterMember {
    pub fn is_console(&self) -> bool {
        CONSOLE_PLATFORMS.contains(&self.platform.as_str())
    }

    /// Whether the member can talk: on a console, or on the PlayStation App (a phone) [C for
    /// the platform]. Our own app member is not a voice member of ours (the caller checks).
    pub fn has_voice(&self) -> bool {
        self.is_console() || self.platform == MOBILE_APP
    }

    /// The member is our own `MOBILE_APP` member (this plugin, or a copy of it left behind).
    pub fn is_own_app(&self, me: &str) -> bool {
        self.account_id == me && !self.is_console()
    }
}

/// A party as bulkGet answers it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    pub session_id: String,
    #[serde(default)]
    pub session_name: String,
    #[serde(default)]
    pub members: Vec<RosterMember>,
    #[serde(default)]
    pub owner: Value,
    #[serde(default)]
    pub max_members: Option<u32>,
    #[serde(default)]
    pub party_joinable: Option<bool>,
    #[serde(default)]
    pub visibility_type: Option<String>,
    #[serde(default)]
    pub joinable_user_type: Option<String>,
}

impl Party {
    /// Whether `account_id` is in this party on a console.
    pub fn has_on_console(&self, account_id: &str) -> bool {
        self.members
            .iter()
            .any(|m| m.account_id == account_id && m.is_console())
    }
}

/// The public party link info (`partyInfo`, no auth).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PartyInfo {
    pub session_name: String,
    pub is_joinable: bool,
    pub joinable_from: Value,
    pub ms_polling_interval: Option<u64>,
    pub max_members: Option<u32>,
    pub time_started: Value,
    pub in_party: Value,
    pub members: Vec<PartyInfoMember>,
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct PartyInfoMember {
    pub is_host: bool,
    #[serde(deserialize_with = "crate::psn::log_mask::online_id")]
    pub online_id: String,
    pub platform_id: Value,
    pub account_id: String,
    pub is_anonymous: bool,
}

/// A bridge this client created (rtcBridge, PROTOCOL.md section 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub bridge_id: String,
    pub bridge_token: Secret,
    pub hosting_type: String,
}

/// A peer added to a bridge, with the bridge's offer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePeer {
    pub peer_id: String,
    pub offer_sdp: String,
}

// ---- the answers, as PSN sends them

/// The token endpoint's answer (PROTOCOL.md section 2 step 3).
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    pub access_token: Secret,
    pub expires_in: u64,
    pub refresh_token: Option<Secret>,
    pub refresh_token_expires_in: Option<u64>,
}

/// `bulkGet`'s answer: `{"parties":[...]}`.
#[derive(Debug, Deserialize)]
pub struct PartiesAnswer {
    #[serde(default)]
    pub parties: Vec<Party>,
}

/// `partySessions?view=v3`'s answer (shape [I]): `{"partySessions":[...]}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartySessionsAnswer {
    #[serde(default)]
    pub party_sessions: Vec<Party>,
}

/// An SDP as rtcBridge wraps it: `{"sdp":"..."}`.
#[derive(Debug, Deserialize)]
pub struct SdpAnswer {
    pub sdp: String,
}

/// `POST .../bridges`'s answer.
#[derive(Debug, Deserialize)]
pub struct BridgeCreatedAnswer {
    pub bridge: BridgeFields,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeFields {
    pub bridge_id: String,
    pub bridge_token: Secret,
    #[serde(rename = "bridgeHostingType", default)]
    pub hosting_type: String,
}

/// `POST .../peers`'s answer: the bridge's peer and its offer.
#[derive(Debug, Deserialize)]
pub struct PeerAddedAnswer {
    pub peer: PeerFields,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerFields {
    pub peer_id: String,
    pub offer: SdpAnswer,
}

/// `POST .../peers/{id}/offer`'s answer.
#[derive(Debug, Deserialize)]
pub struct ReofferAnswer {
    pub offer: SdpAnswer,
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    /// The tokens are [`Secret`]s from the moment they are parsed: `Debug` redacts them, drop
    /// zeroes them (issue 17 item 8).
    #[test]
    fn debug_of_answers_holding_tokens_is_redacted() {
        let token: TokenAnswer = serde_json::from_str(
            r#"{"access_token":"at-SECRET-1","expires_in":5,"refresh_token":"rt-SECRET-2","refresh_token_expires_in":9}"#,
        )
        .unwrap();
        let bridge: BridgeCreatedAnswer = serde_json::from_str(
            r#"{"bridge":{"bridgeId":"b1","bridgeToken":"bt-SECRET-3","bridgeHostingType":"x"}}"#,
        )
        .unwrap();
        let shown = format!("{token:?} {bridge:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(token.access_token.expose(), "at-SECRET-1");
        assert_eq!(bridge.bridge.bridge_token.expose(), "bt-SECRET-3");
    }
}
