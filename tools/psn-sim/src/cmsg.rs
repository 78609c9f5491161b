//! The sim's own encoder/decoder of the voice-signalling customMessage (PROTOCOL.md section 5):
//! payload `ver=1.0, type=binary, body=<base64>`, body = 44-byte little-endian header (sender
//! account id and platform code), the line `1/1/1\n`, then JSON with keys in the recorded order.

use base64::Engine;
use serde_json::{json, Value};

pub const PREFIX: &str = "ver=1.0, type=binary, body=";
pub const CHANNEL: &str = "miranda:12";

/// Platform codes in the header and JSON: MOBILE_APP 100001 [C], PS5 5 [C], PS4 4 [I].
pub fn platform_code(platform: &str) -> u64 {
    match platform {
        "MOBILE_APP" => 100_001,
        "PS5" => 5,
        "PS4" => 4,
        _ => 0,
    }
}

/// One signalling message as the JSON carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub from_account: String,
    pub from_platform: u64,
    pub to_account: String,
    pub to_platform: u64,
    /// The member whose audio mid 0 carries (`medias[0].user`).
    pub media_account: String,
    pub media_platform: u64,
    pub kind: String,
    pub sdp: String,
    pub global_seq_num: u64,
    pub sdp_sequence_number: String,
}

fn user(account: &str, platform: u64) -> Value {
    json!({"account_id": account, "platform": platform})
}

/// Encodes `s` as a customMessage payload (header names the sender: `from`).
pub fn encode(s: &Signal) -> String {
    let body = json!({
        "from": user(&s.from_account, s.from_platform),
        "global_seq_num": s.global_seq_num,
        "medias": [{
            "media_records": [{"media_identifier": "voice_chat", "mid": "0"}],
            "msids": ["0"],
            "user": user(&s.media_account, s.media_platform),
        }],
        "sdp": s.sdp,
        "sdp_sequence_number": s.sdp_sequence_number,
        "to": user(&s.to_account, s.to_platform),
        "type": s.kind,
        "users": [user(&s.to_account, s.to_platform)],
    });
    let mut rest = b"1/1/1\n".to_vec();
    rest.extend_from_slice(body.to_string().as_bytes());
    let mut b = Vec::with_capacity(44 + rest.len());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&s.from_account.parse::<u64>().unwrap_or(0).to_le_bytes());
    b.extend_from_slice(&s.from_platform.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&(rest.len() as u32).to_le_bytes());
    b.extend_from_slice(&rest);
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    )
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Decodes a payload; `Err` says what is wrong (never panics).
pub fn decode(payload: &str) -> Result<Signal, String> {
    let b64 = payload
        .strip_prefix(PREFIX)
        .ok_or("payload does not start with `ver=1.0, type=binary, body=`")?;
    let b = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("body is not base64: {e}"))?;
    if b.len() <= 44 {
        return Err(format!(
            "body of {} bytes has no room after the header",
            b.len()
        ));
    }
    if b[0..4] != [1, 0, 0, 0] || b[8..12] != [1, 0, 0, 0] {
        return Err("header does not start 01 00 00 00 .. 01 00 00 00".into());
    }
    let mut l = [0u8; 4];
    l.copy_from_slice(&b[40..44]);
    let len = u32::from_le_bytes(l) as usize;
    if len != b.len() - 44 {
        return Err(format!(
            "header length {len} != {} bytes after it",
            b.len() - 44
        ));
    }
    let hdr_account = le_u64(&b[16..24]);
    let hdr_platform = le_u64(&b[24..32]);
    let rest = &b[44..];
    let nl = rest
        .iter()
        .position(|&c| c == b'\n')
        .ok_or("no version line after the header")?;
    let v: Value = serde_json::from_slice(&rest[nl + 1..]).map_err(|e| format!("JSON: {e}"))?;
    let acc = |x: &Value| -> Result<(String, u64), String> {
        let a = x["account_id"]
            .as_str()
            .ok_or("account_id is not a string")?
            .to_string();
        let p = x["platform"].as_u64().ok_or("platform is not an integer")?;
        Ok((a, p))
    };
    let (from_account, from_platform) = acc(&v["from"]).map_err(|e| format!("from: {e}"))?;
    let (to_account, to_platform) = acc(&v["to"]).map_err(|e| format!("to: {e}"))?;
    let (media_account, media_platform) =
        acc(&v["medias"][0]["user"]).map_err(|e| format!("medias[0].user: {e}"))?;
    if from_account != hdr_account.to_string() || from_platform != hdr_platform {
        return Err("header sender differs from `from`".into());
    }
    let kind = v["type"]
        .as_str()
        .ok_or("type is not a string")?
        .to_string();
    let sdp = v["sdp"].as_str().ok_or("sdp is not a string")?.to_string();
    Ok(Signal {
        from_account,
        from_platform,
        to_account,
        to_platform,
        media_account,
        media_platform,
        kind,
        sdp,
        global_seq_num: v["global_seq_num"].as_u64().unwrap_or(0),
        sdp_sequence_number: v["sdp_sequence_number"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_key_order() {
        let s = Signal {
            from_account: "7000000000000007919".into(),
            from_platform: 5,
            to_account: "6543210987654321001".into(),
            to_platform: 100_001,
            media_account: "7000000000000007919".into(),
            media_platform: 5,
            kind: "offer".into(),
            sdp: "v=0\r\n".into(),
            global_seq_num: 3,
            sdp_sequence_number: "1".into(),
        };
        let p = encode(&s);
        assert_eq!(decode(&p).unwrap(), s);
        let b = base64::engine::general_purpose::STANDARD
            .decode(p.strip_prefix(PREFIX).unwrap())
            .unwrap();
        let text = String::from_utf8_lossy(&b[44..]).to_string();
        assert!(text.starts_with("1/1/1\n{\"from\":"), "{text}");
        let keys = [
            "\"from\"",
            "\"global_seq_num\"",
            "\"medias\"",
            "\"sdp\"",
            "\"sdp_sequence_number\"",
            "\"to\"",
            "\"type\"",
            "\"users\"",
        ];
        let pos: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(le_u64(&b[24..32]), 5);
        for bad in [
            "",
            "ver=1.0, type=binary, body=!!",
            "ver=1.0, type=binary, body=AAAA",
        ] {
            assert!(decode(bad).is_err());
        }
    }
}
