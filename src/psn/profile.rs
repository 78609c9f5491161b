//! Member profiles (PROTOCOL.md section 8, inferred): a member's online id and avatar URLs, and
//! the avatar image itself, fetched once per party for the overlay page.
//!
//! The avatar URL comes from PSN's answer, so it is treated as untrusted: only PSN's image hosts
//! over https (or, against a simulator on loopback, the simulator's own origin), no redirects,
//! a size cap, and a type check of the bytes; anything else is refused and the overlay shows
//! the member's initial instead. The image request carries no token.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::client::PsnClient;
use super::config::is_loopback_host;
use super::error::{PsnError, Result};
use super::http::{HeaderSet, Request};

/// The biggest avatar image accepted (PSN's are 10-100 KiB).
pub const MAX_AVATAR_BYTES: usize = 512 * 1024;
/// The biggest PNG accepted, in pixels on a side.
pub const MAX_AVATAR_SIDE: u32 = 1024;
const AVATAR_TIMEOUT: Duration = Duration::from_secs(5);
/// The avatar sizes PSN names, in the order we prefer (big enough for a 128 px overlay tile).
const SIZE_PREFERENCE: [&str; 4] = ["l", "m", "xl", "s"];

/// `GET /api/userProfile/v1/internal/users/{accountId}/profiles` (shape [I]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Profile {
    #[serde(rename = "onlineId", default)]
    pub online_id: String,
    #[serde(default)]
    pub avatars: Vec<AvatarRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AvatarRef {
    #[serde(default)]
    pub size: String,
    #[serde(default)]
    pub url: String,
}

impl Profile {
    /// The avatar URL to show: the preferred size, else the first one listed.
    pub fn avatar_url(&self) -> Option<&str> {
        SIZE_PREFERENCE
            .iter()
            .find_map(|want| {
                self.avatars
                    .iter()
                    .find(|a| a.size.eq_ignore_ascii_case(want))
            })
            .or(self.avatars.first())
            .map(|a| a.url.as_str())
            .filter(|u| !u.is_empty())
    }
}

/// Asks PSN for a member's profile.
pub async fn fetch_profile(client: &PsnClient, account_id: &str) -> Result<Profile> {
    // Account ids are decimal numbers; anything else would change the path.
    if account_id.is_empty() || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PsnError::protocol("profile", "account id is not a number"));
    }
    let url = client
        .config()
        .endpoints
        .api
        .join(&format!(
            "/api/userProfile/v1/internal/users/{account_id}/profiles"
        ))
        .map_err(|e| PsnError::Config(e.to_string()))?;
    let req = Request::new("profile", Method::GET, url, HeaderSet::Api);
    client.call(req).await?.json::<Profile>()
}

/// A fetched avatar image, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar {
    /// `image/png`, `image/jpeg` or `image/webp`, from the bytes (not from the server's word).
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// Why an avatar was not taken (logged; the overlay shows an initial instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvatarRefused {
    #[error("the avatar URL is not one of PSN's image hosts over https ({0})")]
    Host(String),
    #[error("the avatar URL does not parse")]
    BadUrl,
    #[error("the avatar is bigger than {MAX_AVATAR_BYTES} bytes")]
    TooBig,
    #[error("the avatar is not a PNG, JPEG or WebP image")]
    NotAnImage,
    #[error("the avatar image is larger than {MAX_AVATAR_SIDE} px on a side")]
    TooLarge,
    #[error("fetching the avatar failed: {0}")]
    Fetch(String),
}

/// Whether `url` may be fetched for an avatar: https on PSN's own domains (port 443), or, when
/// the client talks to a simulator on loopback (`api_base`), that same origin.
pub fn check_avatar_url(url: &str, api_base: &Url) -> std::result::Result<Url, AvatarRefused> {
    let parsed = Url::parse(url).map_err(|_| AvatarRefused::BadUrl)?;
    let refuse = || AvatarRefused::Host(parsed.host_str().unwrap_or("-").to_owned());
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse());
    }
    let api_on_loopback = api_base.host().is_some_and(|h| is_loopback_host(&h));
    if api_on_loopback {
        let same_origin = parsed.scheme() == api_base.scheme()
            && parsed.host_str() == api_base.host_str()
            && parsed.port_or_known_default() == api_base.port_or_known_default();
        return if same_origin {
            Ok(parsed)
        } else {
            Err(refuse())
        };
    }
    let Some(url::Host::Domain(host)) = parsed.host() else {
        return Err(refuse());
    };
    let host = host.to_ascii_lowercase();
    let psn_host = ["playstation.net", "playstation.com"]
        .iter()
        .any(|d| host.ends_with(&format!(".{d}")));
    if parsed.scheme() != "https" || !psn_host || parsed.port().is_some_and(|p| p != 443) {
        return Err(refuse());
    }
    Ok(parsed)
}

/// Checks the bytes are an image we show; returns its type.
pub fn check_avatar_bytes(bytes: &[u8]) -> std::result::Result<&'static str, AvatarRefused> {
    if bytes.len() > MAX_AVATAR_BYTES {
        return Err(AvatarRefused::TooBig);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        // IHDR comes first: width and height at bytes 16..24.
        if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
            return Err(AvatarRefused::NotAnImage);
        }
        let side = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        if side(16) > MAX_AVATAR_SIDE || side(20) > MAX_AVATAR_SIDE {
            return Err(AvatarRefused::TooLarge);
        }
        return Ok("image/png");
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok("image/jpeg");
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Ok("image/webp");
    }
    Err(AvatarRefused::NotAnImage)
}

/// Fetches and checks an avatar image: no token, no redirects, no cookies, at most
/// [`MAX_AVATAR_BYTES`] read (a server that sends more is cut off), 5 s in all.
pub async fn fetch_avatar(url: &str, api_base: &Url) -> std::result::Result<Avatar, AvatarRefused> {
    let url = check_avatar_url(url, api_base)?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(AVATAR_TIMEOUT)
        .use_preconfigured_tls(super::http::tls_config(true).as_ref().clone())
        .build()
        .map_err(|e| AvatarRefused::Fetch(e.to_string()))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| AvatarRefused::Fetch(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(AvatarRefused::Fetch(format!(
            "HTTP {}",
            resp.status().as_u16()
        )));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_AVATAR_BYTES as u64)
    {
        return Err(AvatarRefused::TooBig);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| AvatarRefused::Fetch(e.without_url().to_string()))?
    {
        if bytes.len() + chunk.len() > MAX_AVATAR_BYTES {
            return Err(AvatarRefused::TooBig);
        }
        bytes.extend_from_slice(&chunk);
    }
    let content_type = check_avatar_bytes(&bytes)?;
    Ok(Avatar {
        content_type,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn avatar_urls_only_from_psn_image_hosts() {
        let psn = base("https://m.np.playstation.com");
        for ok in [
            "https://psn-rsc.prod.dl.playstation.net/psn-rsc/avatar/a.png",
            "https://image.api.playstation.com/x/y.png",
        ] {
            assert!(check_avatar_url(ok, &psn).is_ok(), "{ok}");
        }
        for bad in [
            "http://psn-rsc.prod.dl.playstation.net/a.png",
            "https://evil.example/a.png",
            "https://playstation.net.evil.example/a.png",
            "https://psn-rsc.prod.dl.playstation.net:8443/a.png",
            "https://user:pw@image.api.playstation.com/a.png",
            "file:///etc/passwd",
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:8080/a.png",
            "javascript:alert(1)",
            "",
        ] {
            assert!(check_avatar_url(bad, &psn).is_err(), "{bad}");
        }
        // Against a simulator: its own origin only.
        let sim = base("http://127.0.0.1:4000/");
        assert!(check_avatar_url("http://127.0.0.1:4000/avatars/1/l.png", &sim).is_ok());
        assert!(check_avatar_url("http://127.0.0.1:4001/avatars/1/l.png", &sim).is_err());
        assert!(check_avatar_url("https://image.api.playstation.com/a.png", &sim).is_err());
    }

    #[test]
    fn avatar_bytes_are_type_checked() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&64u32.to_be_bytes());
        png.extend_from_slice(&64u32.to_be_bytes());
        assert_eq!(check_avatar_bytes(&png), Ok("image/png"));
        let mut huge = png.clone();
        huge[16..20].copy_from_slice(&50_000u32.to_be_bytes());
        assert_eq!(check_avatar_bytes(&huge), Err(AvatarRefused::TooLarge));
        assert_eq!(
            check_avatar_bytes(b"<svg onload=alert(1)>"),
            Err(AvatarRefused::NotAnImage)
        );
        assert_eq!(
            check_avatar_bytes(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Ok("image/jpeg")
        );
        assert_eq!(
            check_avatar_bytes(&vec![0xFF; MAX_AVATAR_BYTES + 1]),
            Err(AvatarRefused::TooBig)
        );
    }

    #[test]
    fn the_preferred_avatar_size_is_picked() {
        let p: Profile = serde_json::from_str(
            r#"{"onlineId":"a","aboutMe":"","avatars":[{"size":"s","url":"S"},{"size":"l","url":"L"}],"isPlus":false}"#,
        )
        .unwrap();
        assert_eq!(p.avatar_url(), Some("L"));
        let none: Profile = serde_json::from_str(r#"{"onlineId":"a"}"#).unwrap();
        assert_eq!(none.avatar_url(), None);
    }
}
