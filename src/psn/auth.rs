//! Sign-in (PROTOCOL.md section 2): NPSSO -> authorize (code from `Location`, redirects not
//! followed) -> token exchange; refresh with the lifetimes each response gives.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use reqwest::Method;
use tokio::time::Instant;
use url::Url;

use super::config::PsnConfig;
use super::error::{PsnError, Result};
use super::http::{HeaderSet, Http, Request};
use super::model::TokenAnswer;
use super::secret::Secret;
use super::token_store::StoredTokens;

pub const AUTHORIZE_PATH: &str = "/api/authz/v3/oauth/authorize";
pub const TOKEN_PATH: &str = "/api/authz/v3/oauth/token";

/// The tokens of a signed-in account. Instants are on tokio's clock; the `_unix` twins are for
/// the token store.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub account_id: String,
    pub access_token: Secret,
    pub access_lifetime: Duration,
    pub access_expires_at: Instant,
    pub access_expires_at_unix: u64,
    pub refresh_token: Secret,
    pub refresh_expires_at: Instant,
    pub refresh_expires_at_unix: u64,
}

/// How long before the access token's expiry the client refreshes it: a tenth of its lifetime,
/// at most five minutes (3599 s -> refresh after 3299 s; 10 s -> after 9 s).
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(300))
}

impl Tokens {
    pub fn needs_refresh(&self, now: Instant) -> bool {
        now + refresh_margin(self.access_lifetime) >= self.access_expires_at
    }

    /// When the access token is due for its refresh (a tenth of its lifetime, at most 5 min,
    /// before it expires).
    pub fn refresh_at(&self) -> Instant {
        self.access_expires_at
            .checked_sub(refresh_margin(self.access_lifetime))
            .unwrap_or(self.access_expires_at)
    }

    pub fn refresh_expired(&self, now: Instant) -> bool {
        now >= self.refresh_expires_at
    }

    pub fn to_stored(&self) -> StoredTokens {
        StoredTokens {
            account_id: self.account_id.clone(),
            refresh_token: self.refresh_token.clone(),
            refresh_expires_at_unix: self.refresh_expires_at_unix,
            access_token: Some(self.access_token.clone()),
            access_expires_at_unix: self.access_expires_at_unix,
            device_id: None,
        }
    }

    /// Tokens loaded from the store; an access token without a known lifetime is treated as due.
    pub fn from_stored(s: &StoredTokens) -> Tokens {
        let now_unix = unix_now();
        let now = Instant::now();
        let left = |at: u64| Duration::from_secs(at.saturating_sub(now_unix));
        let access_left = left(s.access_expires_at_unix);
        Tokens {
            account_id: s.account_id.clone(),
            access_token: s.access_token.clone().unwrap_or_default(),
            access_lifetime: access_left,
            access_expires_at: now + access_left,
            access_expires_at_unix: s.access_expires_at_unix,
            refresh_token: s.refresh_token.clone(),
            refresh_expires_at: now + left(s.refresh_expires_at_unix),
            refresh_expires_at_unix: s.refresh_expires_at_unix,
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// NPSSO -> code. Returns the code and the `cid` that came with it.
/// `duid` is this install's device id: the app sends it first in the query (seeds' flows:
/// `authorize?duid=...&response_type=code&...` [C, value not recorded]).
pub async fn authorize(
    http: &Http,
    cfg: &PsnConfig,
    npsso: Secret,
    duid: &str,
) -> Result<(Secret, Option<String>)> {
    let (client_id, _) = cfg.credentials()?;
    let mut url = cfg
        .endpoints
        .auth
        .join(AUTHORIZE_PATH)
        .map_err(|e| PsnError::Config(e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("duid", duid)
        .append_pair("access_type", "offline")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &cfg.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", &cfg.scope);
    let req = Request::new("authorize", Method::GET, url, HeaderSet::Plain)
        .secret_header("Cookie", Secret::new(format!("npsso={}", npsso.expose())));
    drop(npsso);
    let resp = http.send(req).await?;
    if !(300..400).contains(&resp.status) {
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        return Err(
            if v["error"] == "invalid_client" || v["error"] == "unauthorized_client" {
                PsnError::CredentialsRejected
            } else if resp.status >= 500 {
                resp.api_error()
            } else {
                PsnError::protocol(
                    "authorize",
                    format!("HTTP {} instead of a redirect", resp.status),
                )
            },
        );
    }
    let location = resp
        .header_str("location")
        .ok_or_else(|| PsnError::protocol("authorize", "a redirect without Location"))?;
    parse_authorize_location(location, &cfg.redirect_uri)
}

/// Reads the code (and `cid`) from the authorize redirect; the sign-in page redirect with
/// `error_code=4165` (or any redirect without a code) means the NPSSO is wrong or expired.
pub fn parse_authorize_location(
    location: &str,
    redirect_uri: &str,
) -> Result<(Secret, Option<String>)> {
    let url = Url::parse(location)
        .map_err(|_| PsnError::protocol("authorize", "Location is not a URL"))?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(code) = param("code") {
        if location.starts_with(redirect_uri) {
            return Ok((Secret::new(code), param("cid")));
        }
    }
    if param("error_code").as_deref() == Some("4165")
        || param("error").as_deref() == Some("login_required")
    {
        return Err(PsnError::NpssoInvalid);
    }
    // Any other page (another error code, a consent page) also means the NPSSO did not sign in.
    log::warn!(
        "PSN: authorize redirected without a code (error_code {:?})",
        param("error_code").unwrap_or_default()
    );
    Err(PsnError::NpssoInvalid)
}

/// Code -> tokens.
pub async fn exchange_code(
    http: &Http,
    cfg: &PsnConfig,
    code: Secret,
    cid: Option<&str>,
) -> Result<Tokens> {
    let mut req = token_request(cfg)?.form(&[
        ("code", code.expose()),
        ("grant_type", "authorization_code"),
        ("redirect_uri", &cfg.redirect_uri),
        ("token_format", "jwt"),
    ]);
    if let Some(cid) = cid {
        req = req.header("X-Psn-Correlation-Id", cid);
    }
    token_call(http, req, None, false).await
}

/// NPSSO -> tokens. The NPSSO is consumed here and kept nowhere.
pub async fn sign_in_with_npsso(
    http: &Http,
    cfg: &PsnConfig,
    npsso: Secret,
    duid: &str,
) -> Result<Tokens> {
    cfg.credentials()?;
    let (code, cid) = authorize(http, cfg, npsso, duid).await?;
    exchange_code(http, cfg, code, cid.as_deref()).await
}

/// Refresh token -> new access token (and whatever refresh token the answer carries).
pub async fn refresh(http: &Http, cfg: &PsnConfig, old: &Tokens) -> Result<Tokens> {
    if old.refresh_expired(Instant::now()) {
        return Err(PsnError::SignInExpired);
    }
    let req = token_request(cfg)?.form(&[
        ("refresh_token", old.refresh_token.expose()),
        ("grant_type", "refresh_token"),
        ("token_format", "jwt"),
        ("scope", &cfg.scope),
    ]);
    token_call(http, req, Some(old), true).await
}

fn token_request(cfg: &PsnConfig) -> Result<Request> {
    let (id, secret) = cfg.credentials()?;
    let url = cfg
        .endpoints
        .auth
        .join(TOKEN_PATH)
        .map_err(|e| PsnError::Config(e.to_string()))?;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{}", secret.expose()));
    Ok(Request::new("token", Method::POST, url, HeaderSet::Plain)
        .secret_header("Authorization", Secret::new(format!("Basic {basic}"))))
}

async fn token_call(
    http: &Http,
    req: Request,
    old: Option<&Tokens>,
    is_refresh: bool,
) -> Result<Tokens> {
    let sent_at = Instant::now();
    let sent_unix = unix_now();
    let resp = http.send(req).await?;
    if resp.status != 200 {
        // RFC 6749 section 5.2 error body ({"error":"invalid_grant"|"invalid_client", ...}) [I].
        let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let err = v["error"].as_str().unwrap_or("");
        return Err(match (resp.status, err) {
            (401, _) | (_, "invalid_client") | (_, "unauthorized_client") => {
                PsnError::CredentialsRejected
            }
            // Only PSN's word that the refresh token is dead signs us out (and deletes it).
            (400, "invalid_grant") if is_refresh => PsnError::SignInExpired,
            (400, _) if is_refresh => resp.api_error(),
            (400, _) => PsnError::NpssoInvalid,
            _ => resp.api_error(),
        });
    }
    let t: TokenAnswer = resp.json()?;
    let account_id = account_id_from_jwt(t.access_token.expose())
        .ok_or_else(|| PsnError::protocol("token", "the access token carries no account_id"))?;
    let access_lifetime = Duration::from_secs(t.expires_in);
    let (refresh_token, refresh_expires_at, refresh_expires_at_unix) =
        match (t.refresh_token, t.refresh_token_expires_in, old) {
            (Some(rt), Some(life), _) => {
                (rt, sent_at + Duration::from_secs(life), sent_unix + life)
            }
            // An answer without a new refresh token keeps the old one with its old expiry.
            (_, _, Some(old)) => (
                old.refresh_token.clone(),
                old.refresh_expires_at,
                old.refresh_expires_at_unix,
            ),
            (Some(rt), None, None) => (rt, sent_at + access_lifetime, sent_unix + t.expires_in),
            (None, _, None) => {
                return Err(PsnError::protocol(
                    "token",
                    "no refresh token in the answer",
                ))
            }
        };
    log::info!(
        "PSN: {} ok; access token good for {} s, sign-in for {} s",
        if is_refresh {
            "token refresh"
        } else {
            "sign-in"
        },
        t.expires_in,
        refresh_expires_at
            .saturating_duration_since(sent_at)
            .as_secs()
    );
    Ok(Tokens {
        account_id,
        access_token: t.access_token,
        access_lifetime,
        access_expires_at: sent_at + access_lifetime,
        access_expires_at_unix: sent_unix + t.expires_in,
        refresh_token,
        refresh_expires_at,
        refresh_expires_at_unix,
    })
}

/// The `account_id` claim of a JWT's payload (string or number). The signature is not checked:
/// the token came from PSN over TLS and only PSN checks it.
pub fn account_id_from_jwt(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match &v["account_id"] {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_parsing() {
        let r = crate::psn::config::DEFAULT_REDIRECT_URI;
        let (code, cid) =
            parse_authorize_location(&format!("{r}/?code=v3.ABC&cid=c-1"), r).unwrap();
        assert_eq!(code.expose(), "v3.ABC");
        assert_eq!(cid.as_deref(), Some("c-1"));
        let bad = "https://my.account.sony.com/sonyacct/signin/?entry=x&error=login_required&error_code=4165&no_captcha=false";
        assert!(matches!(
            parse_authorize_location(bad, r),
            Err(PsnError::NpssoInvalid)
        ));
        assert!(parse_authorize_location("not a url", r).is_err());
    }

    #[test]
    fn jwt_account_id() {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"RS256"}"#),
            enc(r#"{"account_id":"123","exp":1}"#)
        );
        assert_eq!(account_id_from_jwt(&jwt).as_deref(), Some("123"));
        let jwt = format!("h.{}.s", enc(r#"{"account_id":456}"#));
        assert_eq!(account_id_from_jwt(&jwt).as_deref(), Some("456"));
        assert_eq!(account_id_from_jwt("garbage"), None);
    }

    #[test]
    fn margins() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3599)),
            Duration::from_secs(300)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(10)),
            Duration::from_secs(1)
        );
    }
}
