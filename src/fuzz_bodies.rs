//! What each fuzz target checks, on one input. The libFuzzer targets in `fuzz/` (nightly,
//! coverage-guided, run for an hour by `fuzz/run.sh`) call these, and so does
//! `tests/fuzz_brief.rs` on stable, briefly, in every `cargo test` (CI): the same code either
//! way. Each must return on any input; a panic is the finding.

use crate::psn::auth::{account_id_from_jwt, parse_authorize_location};
use crate::psn::config::{parse_dotenv, DEFAULT_REDIRECT_URI};
use crate::psn::custom_message;
use crate::psn::http::Response;
use crate::psn::model::{
    BridgeCreatedAnswer, PartiesAnswer, PartyInfo, PartySessionsAnswer, PeerAddedAnswer,
    ReofferAnswer, TokenAnswer,
};
use crate::psn::push::parse_frame;
use crate::psn::trace::redact_body;
use crate::voice::member::{MemberConfig, MemberVoice};
use crate::voice::peer::sdp::{audio_params, unify_bundle_transport};
use crate::voice::rtp::RtpIn;
use crate::voice::BLOCK;

/// The customMessage decoder on any bytes and any payload string; whatever it accepts must
/// encode back to a message that decodes the same.
pub fn custom_message_decode(data: &[u8]) {
    if let Ok(m) = custom_message::decode(data) {
        let again = custom_message::encode(&m);
        assert_eq!(custom_message::decode(&again).as_ref(), Ok(&m));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = custom_message::decode_payload(s);
    }
}

/// Seeds for [`custom_message_decode`]: the recorded shape and each variant the decoder takes
/// (unknown fields, no `medias`/`users`, platforms as strings and names, bytes after the JSON,
/// a header length short of the bytes), as bodies, and as payloads with and without base64
/// padding.
pub fn custom_message_seeds() -> Vec<Vec<u8>> {
    use crate::psn::custom_message::samples::{body_with as body, RECORDED_JSON as RECORDED};
    let unknown = RECORDED.replacen(
        r#""global_seq_num":3,"#,
        r#""global_seq_num":3,"x":{"y":[1]},"#,
        1,
    );
    let bare = r#"{"from":{"account_id":"987654321","platform":5},"sdp":"v=0","to":{"account_id":"1","platform":100001},"type":"answer"}"#;
    let strings = RECORDED
        .replace(r#""platform":5"#, r#""platform":"PS5""#)
        .replace(r#""platform":100001"#, r#""platform":"100001""#)
        .replace(r#""global_seq_num":3"#, r#""global_seq_num":"3""#);
    let mut seeds = vec![
        body(RECORDED, b""),
        body(&unknown, b""),
        body(bare, b""),
        body(&strings, b""),
        body(RECORDED, b"\0\0garbage"),
    ];
    let mut longer = body(RECORDED, b"");
    longer.extend_from_slice(b"\0\0");
    seeds.push(longer);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(body(RECORDED, b""));
    seeds.push(format!("{}{b64}", custom_message::PAYLOAD_PREFIX).into_bytes());
    seeds.push(
        format!(
            "{}{}",
            custom_message::PAYLOAD_PREFIX,
            b64.trim_end_matches('=')
        )
        .into_bytes(),
    );
    seeds
}

/// The push frame parser on any text.
pub fn push_frame_parse(data: &[u8]) {
    let _ = parse_frame(&String::from_utf8_lossy(data));
}

/// Every typed JSON answer the PSN client decodes (`psn::model`: the answers and the party-link info), through
/// the client's own `Response::json`.
pub fn psn_json_answers(data: &[u8]) {
    let response = Response {
        endpoint: "fuzz",
        status: 200,
        headers: Default::default(),
        body: data.to_vec(),
    };
    let _ = response.json::<TokenAnswer>();
    let _ = response.json::<PartiesAnswer>();
    let _ = response.json::<PartySessionsAnswer>();
    let _ = response.json::<BridgeCreatedAnswer>();
    let _ = response.json::<PeerAddedAnswer>();
    let _ = response.json::<ReofferAnswer>();
    let _ = response.json::<PartyInfo>();
    let _ = response.json::<serde_json::Value>();
}

/// Every text the client reads from a server outside the typed answers: PSN's error body, the
/// sign-in redirect's Location, the token's claims, the trace's redaction of any body, `.env`.
/// Redaction must not grow a body without bound.
pub fn psn_text_parsers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let response = Response {
        endpoint: "fuzz",
        status: 400 + u16::from(data.first().copied().unwrap_or(0) % 200),
        headers: Default::default(),
        body: data.to_vec(),
    };
    let _ = response.api_error();
    let _ = response.json::<serde_json::Value>();
    let _ = parse_authorize_location(&text, DEFAULT_REDIRECT_URI);
    let _ = account_id_from_jwt(&text);
    let _ = parse_dotenv(&text);
    let redacted = redact_body(&text);
    assert!(
        redacted.len() <= 8 * text.len() + 64,
        "redaction grew the body"
    );
}

/// A member's SDP offer of any text into the plugin's own SDP handling (the audio parameters it
/// negotiates on, the bundle-transport fix-up applied before the WebRTC stack sees it). The
/// stack's own parser gets mutated offers in `tests/voice_peer.rs`.
pub fn sdp_offer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = audio_params(&text);
    let unified = unify_bundle_transport(&text);
    let _ = audio_params(&unified);
}

/// RTP packets of any shape into one member's receive path (jitter buffer, RED, FEC, libopus,
/// playout), which must keep producing finite 10 ms blocks. After a first byte (its low bit
/// picks a 48 or 16 kHz clock), each packet is 10 bytes of header (payload type, sequence,
/// timestamp, arrival step, marker and pulls, payload length) then the payload: reordering,
/// duplicates, clock jumps and garbage Opus alike.
pub fn rtp_into_member(data: &[u8]) {
    let clock = if data.first().is_some_and(|b| b & 1 == 1) {
        48_000
    } else {
        16_000
    };
    let mut cfg = MemberConfig::new(clock, 96);
    cfg.red_pt = Some(63);
    let Ok(mut member) = MemberVoice::new(cfg) else {
        return;
    };
    let mut out = [0f32; BLOCK];
    let mut now_ns = 0u64;
    let mut rest = data.get(1..).unwrap_or_default();
    while rest.len() >= 10 {
        let (head, tail) = rest.split_at(10);
        let len = usize::from(head[9]).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let payload_type = match head[0] % 4 {
            0 | 1 => 96,
            2 => 63,
            _ => head[0],
        };
        now_ns += u64::from(head[7]) * 1_000_000;
        member.push(&RtpIn {
            payload_type,
            seq: u16::from_be_bytes([head[1], head[2]]),
            timestamp: u32::from_be_bytes([head[3], head[4], head[5], head[6]]),
            marker: head[8] & 1 == 1,
            payload,
            arrival_ns: now_ns,
        });
        for _ in 0..head[8] >> 6 {
            now_ns += 10_000_000;
            member.pull_10ms(now_ns, &mut out);
            assert!(out.iter().all(|s| s.is_finite()), "non-finite samples");
        }
    }
}
