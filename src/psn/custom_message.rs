//! customMessage (PROTOCOL.md section 5): the binary codec and send.
//!
//! `payload` = `ver=1.0, type=binary, body=<base64>`; the body is a 44-byte little-endian header,
//! an ASCII version line (`1/1/1\n`), then JSON with the keys in the recorded order. The decoder
//! returns an error, never panics, on any input.

use base64::Engine;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::Result;
use super::http::{HeaderSet, Request};
use super::party_api::PartyApi;

pub const PAYLOAD_PREFIX: &str = "ver=1.0, type=binary, body=";
pub const HEADER_LEN: usize = 44;
pub const VERSION_LINE: &str = "1/1/1";
pub const DEFAULT_CHANNEL: &str = "miranda:12";
/// Platform codes in the header and JSON (PROTOCOL.md section 5).
pub const PLATFORM_MOBILE_APP: u64 = 100001;
pub const PLATFORM_PS5: u64 = 5;
/// The longest version line the decoder looks for.
const MAX_VERSION_LINE: usize = 32;

/// An account on a platform, as the JSON names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub account_id: String,
    pub platform: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    pub media_identifier: String,
    pub mid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub media_records: Vec<MediaRecord>,
    pub msids: Vec<String>,
    pub user: UserRef,
}

/// The JSON part. Field order here is the recorded key order; serde keeps it on output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub from: UserRef,
    pub global_seq_num: u64,
    pub medias: Vec<Media>,
    pub sdp: String,
    pub sdp_sequence_number: String,
    pub to: UserRef,
    #[serde(rename = "type")]
    pub kind: String,
    pub users: Vec<UserRef>,
}

/// A whole message: header fields, version line, JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sender_account_id: u64,
    pub sender_platform: u64,
    pub version_line: String,
    pub signal: Signal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the payload does not start with \"{PAYLOAD_PREFIX}\"")]
    Prefix,
    #[error("the body is not base64")]
    Base64,
    #[error("the body is shorter than the 44-byte header")]
    Short,
    #[error("the header's fixed fields are not 1/0/1/0")]
    Magic,
    #[error("the header says {said} bytes follow, {have} do")]
    Length { said: usize, have: usize },
    #[error("no version line")]
    VersionLine,
    #[error("the JSON does not have the expected shape: {0}")]
    Json(String),
}

impl Signal {
    /// An offer or answer from `from` to `to` carrying `sdp`, with the media naming `from`'s audio
    /// on mid 0 (the shape PROTOCOL.md section 5 decoded).
    pub fn new(kind: &str, from: UserRef, to: UserRef, sdp: String, seq: u64) -> Signal {
        Signal {
            medias: vec![Media {
                media_records: vec![MediaRecord {
                    media_identifier: "voice_chat".into(),
                    mid: "0".into(),
                }],
                msids: vec!["0".into()],
                user: from.clone(),
            }],
            users: vec![from.clone(), to.clone()],
            from,
            global_seq_num: seq,
            sdp,
            sdp_sequence_number: "1".into(),
            to,
            kind: kind.into(),
        }
    }
}

impl Message {
    /// A message whose header names the JSON's sender (never a foreign account: see PROTOCOL.md section 5).
    pub fn from_signal(signal: Signal) -> Message {
        Message {
            sender_account_id: signal.from.account_id.parse().unwrap_or(0),
            sender_platform: signal.from.platform,
            version_line: VERSION_LINE.into(),
            signal,
        }
    }
}

pub fn encode(msg: &Message) -> Vec<u8> {
    let json = serde_json::to_vec(&msg.signal).expect("a Signal always serializes");
    let tail_len = msg.version_line.len() + 1 + json.len();
    let mut out = Vec::with_capacity(HEADER_LEN + tail_len);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&msg.sender_account_id.to_le_bytes());
    out.extend_from_slice(&msg.sender_platform.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&(tail_len as u32).to_le_bytes());
    out.extend_from_slice(msg.version_line.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&json);
    out
}

pub fn decode(bytes: &[u8]) -> std::result::Result<Message, DecodeError> {
    let header = bytes.get(..HEADER_LEN).ok_or(DecodeError::Short)?;
    let u32_at =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[i..i + 8]);
        u64::from_le_bytes(b)
    };
    if u32_at(0) != 1 || u32_at(8) != 1 {
        return Err(DecodeError::Magic);
    }
    let tail = &bytes[HEADER_LEN..];
    let said = u32_at(40) as usize;
    if said != tail.len() {
        return Err(DecodeError::Length {
            said,
            have: tail.len(),
        });
    }
    let nl = tail
        .iter()
        .take(MAX_VERSION_LINE)
        .position(|b| *b == b'\n')
        .ok_or(DecodeError::VersionLine)?;
    let version_line = std::str::from_utf8(&tail[..nl])
        .ok()
        .filter(|s| s.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(DecodeError::VersionLine)?
        .to_string();
    let signal: Signal =
        serde_json::from_slice(&tail[nl + 1..]).map_err(|e| DecodeError::Json(e.to_string()))?;
    Ok(Message {
        sender_account_id: u64_at(16),
        sender_platform: u64_at(24),
        version_line,
        signal,
    })
}

pub fn encode_payload(msg: &Message) -> String {
    format!(
        "{PAYLOAD_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(encode(msg))
    )
}

pub fn decode_payload(payload: &str) -> std::result::Result<Message, DecodeError> {
    let b64 = payload
        .strip_prefix(PAYLOAD_PREFIX)
        .ok_or(DecodeError::Prefix)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| DecodeError::Base64)?;
    decode(&bytes)
}

/// A recipient in the `to` list of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub account_id: String,
    pub platform: String,
}

impl PartyApi {
    /// `POST .../partySessions/{id}/customMessage` -> 204 (PROTOCOL.md section 5). A 400 comes back
    /// as the server's error, verbatim, for the caller to show.
    pub async fn send_custom_message(
        &self,
        session_id: &str,
        channel: &str,
        payload: &str,
        to: &[Recipient],
    ) -> Result<()> {
        let to: Vec<_> = to
            .iter()
            .map(|r| json!({"accountId": r.account_id, "platform": r.platform}))
            .collect();
        let req = Request::new(
            "customMessage",
            Method::POST,
            self.party_url(session_id, "customMessage")?,
            HeaderSet::Api,
        )
        .json(json!({"channel": channel, "payload": payload, "to": to, "withoutSequenceNumber": true}));
        self.client().call(req).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        let from = UserRef {
            account_id: "1234567890123456789".into(),
            platform: PLATFORM_MOBILE_APP,
        };
        let to = UserRef {
            account_id: "987654321".into(),
            platform: PLATFORM_PS5,
        };
        Message::from_signal(Signal::new("offer", from, to, "v=0\r\n".into(), 7))
    }

    #[test]
    fn layout_and_key_order() {
        let m = sample();
        let b = encode(&m);
        assert_eq!(&b[0..4], &[1, 0, 0, 0]);
        assert_eq!(&b[4..8], &[0; 4]);
        assert_eq!(&b[8..12], &[1, 0, 0, 0]);
        assert_eq!(&b[12..16], &[0; 4]);
        assert_eq!(
            u64::from_le_bytes(b[16..24].try_into().unwrap()),
            1234567890123456789
        );
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 100001);
        assert_eq!(&b[32..40], &[0; 8]);
        assert_eq!(
            u32::from_le_bytes(b[40..44].try_into().unwrap()) as usize,
            b.len() - 44
        );
        let text = std::str::from_utf8(&b[44..]).unwrap();
        assert!(text.starts_with("1/1/1\n{\"from\":{\"account_id\":\"1234567890123456789\",\"platform\":100001},\"global_seq_num\":7,\"medias\":[{\"media_records\":[{\"media_identifier\":\"voice_chat\",\"mid\":\"0\"}],\"msids\":[\"0\"],\"user\":"), "{text}");
        let keys: Vec<usize> = [
            "\"sdp\":",
            "\"sdp_sequence_number\":",
            "\"to\":",
            "\"type\":",
            "\"users\":",
        ]
        .iter()
        .map(|k| text.rfind(k).unwrap())
        .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(decode_payload(&encode_payload(&m)).unwrap(), m);
    }

    #[test]
    fn rejects_bad_input() {
        let b = encode(&sample());
        assert_eq!(decode(&b[..10]), Err(DecodeError::Short));
        assert!(matches!(
            decode(&b[..b.len() - 1]),
            Err(DecodeError::Length { .. })
        ));
        let mut bad = b.clone();
        bad[0] = 2;
        assert_eq!(decode(&bad), Err(DecodeError::Magic));
        assert_eq!(decode_payload("nope"), Err(DecodeError::Prefix));
        assert_eq!(
            decode_payload("ver=1.0, type=binary, body=!!!"),
            Err(DecodeError::Base64)
        );
    }
}
