//! Member profiles (PROTOCOL.md section 8, inferred) and generated avatar images.
//!
//! `GET /api/userProfile/v1/internal/users/{accountId}/profiles` answers the shape public PSN
//! client libraries document, with avatar URLs on the simulator's own origin
//! (`/avatars/{accountId}/{size}.png`, no token needed, as PSN's image CDN). Each avatar is a
//! PNG made here: a disc in a colour of the member's own on a dark square. Tests make a member's
//! avatar hostile with [`SimHandle::set_avatar`] (or `POST /_sim/avatar`).

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::json;

use crate::http::{error_body, json_resp, Ctx, Resp, CODE_NOT_FOUND};
use crate::{Inner, SimHandle};

/// The sizes PSN lists, with their side in pixels.
pub const SIZES: [(&str, u32); 4] = [("s", 32), ("m", 64), ("l", 128), ("xl", 240)];

/// What a member's profile says about their avatar.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode", content = "url")]
pub enum AvatarMode {
    /// A generated PNG on the simulator's origin (the default).
    Generated,
    /// No avatars listed.
    Missing,
    /// Every size points at this URL (a hostile or foreign one).
    Url(String),
    /// The image is 4 MiB (PNG header, then junk).
    Huge,
    /// The "image" is HTML with an `image/png` content type.
    NotAnImage,
    /// The image is a PNG claiming 60000 x 60000 pixels.
    HugeDimensions,
}

/// Per-member avatar modes (missing: generated).
#[derive(Debug, Default)]
pub struct Profiles {
    modes: Mutex<HashMap<String, AvatarMode>>,
    /// Avatar images served, by account id.
    served: Mutex<HashMap<String, u64>>,
}

impl Profiles {
    fn mode(&self, account: &str) -> AvatarMode {
        self.modes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .cloned()
            .unwrap_or(AvatarMode::Generated)
    }
}

impl SimHandle {
    /// Sets what `account_id`'s profile says about their avatar.
    pub fn set_avatar(&self, account_id: &str, mode: AvatarMode) {
        self.inner
            .profiles
            .modes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account_id.to_owned(), mode);
    }

    /// How many times each member's avatar image was fetched.
    pub fn avatars_served(&self) -> HashMap<String, u64> {
        self.inner
            .profiles
            .served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// `profile`: the caller must be signed in (checked before); 404 for an unknown account.
pub fn profile(inner: &Inner, ctx: &Ctx) -> Resp {
    let account = ctx.segs.get(5).cloned().unwrap_or_default();
    let online_id = inner
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .online_ids
        .get(&account)
        .cloned();
    let Some(online_id) = online_id else {
        return error_body(404, CODE_NOT_FOUND, "Resource not found");
    };
    let origin = format!("http://{}", ctx.header("host").unwrap_or("127.0.0.1"));
    let avatars: Vec<serde_json::Value> = match inner.profiles.mode(&account) {
        AvatarMode::Missing => vec![],
        AvatarMode::Url(url) => SIZES
            .iter()
            .map(|(size, _)| json!({"size": size, "url": url}))
            .collect(),
        _ => SIZES
            .iter()
            .map(|(size, _)| json!({"size": size, "url": format!("{origin}/avatars/{account}/{size}.png")}))
            .collect(),
    };
    json_resp(
        200,
        json!({
            "onlineId": online_id, "aboutMe": "", "avatars": avatars,
            "languages": ["en"], "isPlus": false, "isOfficiallyVerified": false, "isMe": false,
        }),
    )
}

/// `avatar`: `/avatars/{accountId}/{size}.png`.
pub fn avatar(inner: &Inner, ctx: &Ctx) -> Resp {
    let account = ctx.segs.get(1).cloned().unwrap_or_default();
    let size = ctx.segs.get(2).and_then(|s| s.strip_suffix(".png"));
    let side = SIZES.iter().find(|(n, _)| Some(*n) == size).map(|s| s.1);
    let known = inner
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .online_ids
        .contains_key(&account);
    let (Some(side), true) = (side, known) else {
        return error_body(404, CODE_NOT_FOUND, "Resource not found");
    };
    *inner
        .profiles
        .served
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(account.clone())
        .or_default() += 1;
    let body = match inner.profiles.mode(&account) {
        AvatarMode::Huge => {
            let mut b = png(side, side, hue_of(&account));
            b.resize(4 << 20, 0x55);
            b
        }
        AvatarMode::NotAnImage => b"<html><script>alert(1)</script></html>".to_vec(),
        AvatarMode::HugeDimensions => {
            let mut b = png(side, side, hue_of(&account));
            b[16..20].copy_from_slice(&60_000u32.to_be_bytes());
            b[20..24].copy_from_slice(&60_000u32.to_be_bytes());
            b
        }
        _ => png(side, side, hue_of(&account)),
    };
    Response::builder()
        .status(200)
        .header("content-type", "image/png")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

fn hue_of(account: &str) -> f32 {
    let h = account.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    (h % 360) as f32
}

fn hsv(h: f32, s: f32, v: f32) -> [u8; 3] {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|u| ((u + m) * 255.0) as u8)
}

/// An RGB PNG of `w` x `h`: a disc of `hue` with a lighter centre on a dark square.
pub fn png(w: u32, h: u32, hue: f32) -> Vec<u8> {
    let mut raw = Vec::with_capacity(((w * 3 + 1) * h) as usize);
    let (cx, cy, r) = (w as f32 / 2.0, h as f32 / 2.0, w.min(h) as f32 * 0.45);
    for y in 0..h {
        raw.push(0); // filter: none
        for x in 0..w {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            let px = if d < r * 0.4 {
                hsv(hue, 0.35, 1.0)
            } else if d < r {
                hsv(hue, 0.8, 0.85)
            } else {
                [24, 26, 32]
            };
            raw.extend_from_slice(&px);
        }
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// zlib with uncompressed (stored) deflate blocks: small code, valid everywhere.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xFF, 0xFF]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let n = block.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `POST /_sim/avatar` `{"accountId": "...", "mode": "generated" | "missing" | "huge" |
/// "notAnImage" | "hugeDimensions" | "url", "url": "..."}`.
pub fn control(inner: &Inner, body: &serde_json::Value) -> Resp {
    let Some(account) = body["accountId"].as_str() else {
        return error_body(400, 0, "accountId missing");
    };
    let mut mode = json!({"mode": body["mode"]});
    if !body["url"].is_null() {
        mode["url"] = body["url"].clone();
    }
    match serde_json::from_value::<AvatarMode>(mode) {
        Ok(mode) => {
            inner
                .profiles
                .modes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(account.to_owned(), mode);
            json_resp(200, json!({"ok": true}))
        }
        Err(e) => error_body(400, 0, &format!("mode: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_png_header() {
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        let p = png(4, 4, 120.0);
        assert!(p.starts_with(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"));
        assert!(p.ends_with(&[0xAE, 0x42, 0x60, 0x82]));
    }
}
