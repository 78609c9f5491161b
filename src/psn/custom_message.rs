//! customMessage (PROTOCOL.md section 5): the binary codec and send.
//!
//! `payload` = `ver=1.0, type=binary, body=<base64>`; the body is a 44-byte little-endian header,
//! an ASCII version line (`1/1/1\n`), then JSON with the keys in the recorded order. The decoder
//! returns an error, never panics, on any input.
//!
//! Only two messages were decoded (PROTOCOL.md section 5), so the decoder takes what a second
//! recording may plausibly show: unknown JSON fields, no `medias` or `users`, platforms and
//! numbers as JSON strings, platform names (`"PS5"`), base64 without padding, bytes after the
//! JSON. It still refuses a header whose length claims more bytes than follow. The encoder
//! writes exactly the recorded shape (the struct field order is the key order).

use base64::Engine;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::Result;
use super::party_api::PartyApi;

pub const PAYLOAD_PREFIX: &str = "ver=1.0, type=binary, body=";
pub const HEADER_LEN: usize = 44;
pub const VERSION_LINE: &str = "1/1/1";
pub const DEFAULT_CHANNEL: &str = "miranda:12";
/// Platform codes in the header and JSON (PROTOCOL.md section 5).
pub const PLATFORM_MOBILE_APP: u64 = 100001;
pub const PLATFORM_PS5: u64 = 5;
/// PS4's code is not recorded; 4 follows PS5's 5 [I].
pub const PLATFORM_PS4: u64 = 4;
/// The longest version line the decoder looks for.
const MAX_VERSION_LINE: usize = 32;

/// An account on a platform, as the JSON names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    #[serde(deserialize_with = "lenient::id_text")]
    pub account_id: String,
    #[serde(deserialize_with = "lenient::platform")]
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
/// Unknown fields are ignored; `medias` and `users` may be missing (empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub from: UserRef,
    #[serde(default, deserialize_with = "lenient::number")]
    pub global_seq_num: u64,
    #[serde(default)]
    pub medias: Vec<Media>,
    pub sdp: String,
    #[serde(default = "first_sdp_sequence", deserialize_with = "lenient::id_text")]
    pub sdp_sequence_number: String,
    pub to: UserRef,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub users: Vec<UserRef>,
}

fn first_sdp_sequence() -> String {
    "1".into()
}

/// Readers for the values a recording may spell either way (numbers as JSON strings, platform
/// names for codes).
mod lenient {
    use serde::de::{Deserializer, Error};
    use serde::Deserialize;
    use serde_json::Value;

    /// A platform: its code (`5`, `"5"`) or its name (`"PS5"`).
    pub fn platform<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_u64().ok_or_else(|| D::Error::custom("platform code")),
            Value::String(s) => s
                .parse()
                .ok()
                .or_else(|| super::platform_code(&s))
                .ok_or_else(|| D::Error::custom("unknown platform name")),
            _ => Err(D::Error::custom(
                "platform is neither a number nor a string",
            )),
        }
    }

    /// A non-negative integer, as a number or a string of digits.
    pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n.as_u64().ok_or_else(|| D::Error::custom("not a u64")),
            Value::String(s) => s.parse().map_err(|_| D::Error::custom("not a number")),
            _ => Err(D::Error::custom("not a number")),
        }
    }

    /// An id kept as text: a string, or a number written as digits.
    pub fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(s),
            Value::Number(n) if n.is_u64() => Ok(n.to_string()),
            _ => Err(D::Error::custom("neither a string nor a whole number")),
        }
    }
}

/// The platform code of a roster platform name (PROTOCOL.md section 5: MOBILE_APP 100001 and
/// PS5 5 [C]; PS4 4 [I]). `None` for a name nobody recorded.
pub fn platform_code(name: &str) -> Option<u64> {
    match name {
        "PS5" => Some(PLATFORM_PS5),
        "PS4" => Some(PLATFORM_PS4),
        "MOBILE_APP" => Some(PLATFORM_MOBILE_APP),
        _ => None,
    }
}

/// The roster platform name of a platform code.
pub fn platform_name(code: u64) -> Option<&'static str> {
    match code {
        PLATFORM_PS5 => Some("PS5"),
        PLATFORM_PS4 => Some("PS4"),
        PLATFORM_MOBILE_APP => Some("MOBILE_APP"),
        _ => None,
    }
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
    // The header's length must fit in what follows; bytes beyond it are ignored like bytes
    // after the JSON.
    if said > tail.len() {
        return Err(DecodeError::Length {
            said,
            have: tail.len(),
        });
    }
    let tail = &tail[..said];
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
    // The first JSON value; whatever follows it (a NUL, padding) is not ours to judge.
    let signal: Signal = serde_json::Deserializer::from_slice(&tail[nl + 1..])
        .into_iter::<Signal>()
        .next()
        .ok_or_else(|| DecodeError::Json("no JSON after the version line".into()))?
        .map_err(|e| DecodeError::Json(e.to_string()))?;
    Ok(Message {
        sender_account_id: u64_at(16),
        sender_platform: u64_at(24),
        version_line,
        signal,
    })
}

/// Standard base64, padded or not (a second recording may drop the padding).
const LENIENT_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

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
    let bytes = LENIENT_BASE64
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
        let body = json!({"channel": channel, "payload": payload, "to": to, "withoutSequenceNumber": true});
        let req = self
            .party_request("customMessage", Method::POST, session_id, "customMessage")?
            .json(body);
        self.client().call(req).await?;
        Ok(())
    }
}

/// Bodies as another client might write them: for the golden tests here and the fuzz seeds
/// (src/fuzz_bodies.rs); never in the shipped module.
#[cfg(any(test, feature = "test-host"))]
pub mod samples {
    /// A body as a client other than ours might write it: our header, then `1/1/1\n`, `json`
    /// and `after` (bytes after the JSON, counted in the header's length).
    pub fn body_with(json: &str, after: &[u8]) -> Vec<u8> {
        let mut tail = b"1/1/1\n".to_vec();
        tail.extend_from_slice(json.as_bytes());
        tail.extend_from_slice(after);
        let mut b = Vec::new();
        for word in [1u32, 0, 1, 0] {
            b.extend_from_slice(&word.to_le_bytes());
        }
        b.extend_from_slice(&987654321u64.to_le_bytes());
        b.extend_from_slice(&5u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&(tail.len() as u32).to_le_bytes());
        b.extend_from_slice(&tail);
        b
    }

    /// The recorded offer's JSON (docs/protocol.md).
    pub const RECORDED_JSON: &str = r#"{"from":{"account_id":"987654321","platform":5},"global_seq_num":3,"medias":[{"media_records":[{"media_identifier":"voice_chat","mid":"0"}],"msids":["0"],"user":{"account_id":"987654321","platform":5}}],"sdp":"v=0\r\n","sdp_sequence_number":"1","to":{"account_id":"1234567890123456789","platform":100001},"type":"offer","users":[{"account_id":"1234567890123456789","platform":100001}]}"#;
}

#[cfg(test)]
mod tests {
    use super::samples::{body_with, RECORDED_JSON};
    use super::*;

    /// Our app member and a member's PS5, as in the recorded messages.
    fn me() -> UserRef {
        UserRef {
            account_id: "1234567890123456789".into(),
            platform: PLATFORM_MOBILE_APP,
        }
    }

    fn member() -> UserRef {
        UserRef {
            account_id: "987654321".into(),
            platform: PLATFORM_PS5,
        }
    }

    fn sample() -> Message {
        Message::from_signal(Signal::new("offer", me(), member(), "v=0\r\n".into(), 7))
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

    /// What every variant below decodes to (bar the variant's own difference).
    fn recorded_signal() -> Signal {
        let mut s = Signal::new("offer", member(), me(), "v=0\r\n".into(), 3);
        s.users = vec![me()];
        s
    }

    #[test]
    fn golden_recorded_shape() {
        let m = decode(&body_with(RECORDED_JSON, b"")).unwrap();
        assert_eq!(m.signal, recorded_signal());
        assert_eq!((m.sender_account_id, m.sender_platform), (987654321, 5));
        assert_eq!(m.version_line, "1/1/1");
        // Our encoder writes those very bytes back.
        assert_eq!(encode(&m), body_with(RECORDED_JSON, b""));
    }

    #[test]
    fn golden_unknown_fields_are_ignored() {
        let json = RECORDED_JSON.replacen(
            r#""global_seq_num":3,"#,
            r#""global_seq_num":3,"ice_restart":false,"extra":{"a":[1,2]},"#,
            1,
        );
        let json = json.replacen(r#""mid":"0"}"#, r#""mid":"0","codec":"opus"}"#, 1);
        assert_eq!(
            decode(&body_with(&json, b"")).unwrap().signal,
            recorded_signal()
        );
    }

    #[test]
    fn golden_missing_medias_and_users() {
        let json = r#"{"from":{"account_id":"987654321","platform":5},"global_seq_num":3,"sdp":"v=0\r\n","sdp_sequence_number":"1","to":{"account_id":"1234567890123456789","platform":100001},"type":"offer"}"#;
        let s = decode(&body_with(json, b"")).unwrap().signal;
        assert!(s.medias.is_empty() && s.users.is_empty());
        assert_eq!(s.from, recorded_signal().from);
        assert_eq!(s.to, recorded_signal().to);
    }

    #[test]
    fn golden_platform_as_string_or_name_and_numbers_as_strings() {
        for (from_platform, to_platform) in
            [(r#""5""#, r#""100001""#), (r#""PS5""#, r#""MOBILE_APP""#)]
        {
            let json = RECORDED_JSON
                .replace(r#""platform":5"#, &format!(r#""platform":{from_platform}"#))
                .replace(
                    r#""platform":100001"#,
                    &format!(r#""platform":{to_platform}"#),
                )
                .replace(r#""global_seq_num":3"#, r#""global_seq_num":"3""#);
            assert_eq!(
                decode(&body_with(&json, b"")).unwrap().signal,
                recorded_signal(),
                "{json}"
            );
        }
        let numeric =
            RECORDED_JSON.replace(r#""sdp_sequence_number":"1""#, r#""sdp_sequence_number":1"#);
        assert_eq!(
            decode(&body_with(&numeric, b"")).unwrap().signal,
            recorded_signal()
        );
        let unknown = RECORDED_JSON.replacen(r#""platform":5"#, r#""platform":"VITA""#, 1);
        assert!(matches!(
            decode(&body_with(&unknown, b"")),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn golden_unpadded_base64() {
        // A body whose length is not a multiple of 3 needs padding.
        let after: &[u8] = [&b""[..], b" ", b"  "]
            .into_iter()
            .find(|a| !body_with(RECORDED_JSON, a).len().is_multiple_of(3))
            .unwrap();
        let b = body_with(RECORDED_JSON, after);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&b);
        let unpadded = b64.trim_end_matches('=');
        assert_ne!(unpadded.len(), b64.len(), "the sample must need padding");
        let m = decode_payload(&format!("{PAYLOAD_PREFIX}{unpadded}")).unwrap();
        assert_eq!(m.signal, recorded_signal());
    }

    #[test]
    fn golden_bytes_after_the_json() {
        for after in [&b"\0"[..], b"\n", b"   ", b"\0\0\0\0garbage"] {
            let m = decode(&body_with(RECORDED_JSON, after)).unwrap();
            assert_eq!(m.signal, recorded_signal(), "{after:?}");
        }
        // Bytes after the header's length are not read either.
        let mut longer = body_with(RECORDED_JSON, b"");
        longer.extend_from_slice(b"\0\0");
        assert_eq!(decode(&longer).unwrap().signal, recorded_signal());
    }

    #[test]
    fn a_header_length_that_does_not_fit_is_refused() {
        let b = body_with(RECORDED_JSON, b"");
        let mut more = b.clone();
        let said = (b.len() - HEADER_LEN + 1) as u32;
        more[40..44].copy_from_slice(&said.to_le_bytes());
        assert!(matches!(decode(&more), Err(DecodeError::Length { .. })));
        let mut huge = b.clone();
        huge[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Err(DecodeError::Length { .. })));
        // A length that cuts the JSON short leaves JSON that does not parse.
        let mut short = b;
        short[40..44].copy_from_slice(&20u32.to_le_bytes());
        assert!(matches!(decode(&short), Err(DecodeError::Json(_))));
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
