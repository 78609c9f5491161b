//! The typed JSON answers the client reads from PSN, in one place so the fuzz target
//! (fuzz/fuzz_targets/psn_json_answers.rs) and the tests decode exactly what the client decodes.
//! Shapes per PROTOCOL.md; anything not named here is read as a raw `serde_json::Value`.

use serde::Deserialize;

use super::session::Party;

/// The token endpoint's answer (PROTOCOL.md section 2 step 3).
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
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
pub struct PartySessionsAnswer {
    #[serde(rename = "partySessions", default)]
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
pub struct BridgeFields {
    #[serde(rename = "bridgeId")]
    pub bridge_id: String,
    #[serde(rename = "bridgeToken")]
    pub bridge_token: String,
    #[serde(rename = "bridgeHostingType", default)]
    pub hosting_type: String,
}

/// `POST .../peers`'s answer: the bridge's peer and its offer.
#[derive(Debug, Deserialize)]
pub struct PeerAddedAnswer {
    pub peer: PeerFields,
}

#[derive(Debug, Deserialize)]
pub struct PeerFields {
    #[serde(rename = "peerId")]
    pub peer_id: String,
    pub offer: SdpAnswer,
}

/// `POST .../peers/{id}/offer`'s answer.
#[derive(Debug, Deserialize)]
pub struct ReofferAnswer {
    pub offer: SdpAnswer,
}
