//! The opt-in protocol trace: every request, response and push frame, redacted, one line each,
//! so a user can attach it to a bug report. Tokens, NPSSO, codes, bridge tokens, the client secret
//! and account ids are masked; the shapes (keys, lengths, status codes) stay.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::secret::REDACTED;

/// What an account id is replaced with.
pub const ACCOUNT_MASK: &str = "[account]";

/// JSON keys and form/query parameters whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "access_token",
    "accessToken",
    "refresh_token",
    "refreshToken",
    "id_token",
    "npsso",
    "code",
    "client_secret",
    "bridgeToken",
    "authorization",
    "cookie",
    "x-psn-bridge-token",
];
/// JSON keys whose values identify an account (or carry one, like `customData3` and the
/// customMessage payload).
const ACCOUNT_KEYS: &[&str] = &["accountId", "account_id", "customData3", "payload"];

/// Where trace lines go.
#[derive(Clone)]
pub struct Trace {
    sink: Arc<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Trace")
    }
}

impl Trace {
    pub fn new(sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Trace {
            sink: Arc::new(sink),
        }
    }

    /// Appends lines to a file (created 0600: a trace has party members' names in it).
    pub fn to_file(path: &Path) -> std::io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        let f = crate::platform::set_create_mode(&mut options, 0o600).open(path)?;
        let f = Mutex::new(f);
        Ok(Trace::new(move |line| {
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{line}");
            }
        }))
    }

    pub fn line(&self, line: &str) {
        (self.sink)(line)
    }

    pub fn request(&self, method: &str, url: &str, headers: &[(String, String)], body: &str) {
        let hs: Vec<String> = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", redact_header(k, v)))
            .collect();
        self.line(&format!(
            "> {method} {} [{}] {}",
            redact_text(url),
            hs.join("; "),
            redact_body(body)
        ));
    }

    pub fn response(&self, status: u16, location: Option<&str>, body: &str) {
        let loc = location
            .map(|l| format!(" Location: {}", redact_text(l)))
            .unwrap_or_default();
        self.line(&format!("< {status}{loc} {}", redact_body(body)));
    }

    pub fn push(&self, direction: &str, frame: &str) {
        self.line(&format!("{direction} push {}", redact_body(frame)));
    }

    pub fn note(&self, what: &str) {
        self.line(&format!("# {}", redact_text(what)));
    }
}

pub fn redact_header(name: &str, value: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "authorization" => match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} {REDACTED}"),
            None => REDACTED.to_string(),
        },
        "cookie" | "x-psn-bridge-token" => REDACTED.to_string(),
        _ => redact_text(value),
    }
}

/// A body: JSON is walked key by key; anything else is treated as form/query text.
pub fn redact_body(body: &str) -> String {
    if body.is_empty() {
        return String::new();
    }
    match serde_json::from_str::<Value>(body) {
        Ok(mut v) => {
            redact_json(&mut v);
            v.to_string()
        }
        Err(_) => redact_text(body),
    }
}

pub fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                    *val = Value::String(REDACTED.to_string());
                } else if ACCOUNT_KEYS.contains(&k.as_str())
                    && !matches!(val, Value::Object(_) | Value::Array(_))
                {
                    if val.as_str() != Some("me") {
                        *val = Value::String(ACCOUNT_MASK.to_string());
                    }
                } else {
                    redact_json(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::String(s) => *s = redact_text(s),
        _ => {}
    }
}

/// Masks `key=value` pairs (query strings, form bodies, Location headers) whose key is secret or
/// an account id, and any run of 16 or more digits (account ids in free text).
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        // Split at the next separator, keeping it.
        let end = rest
            .find(['&', '?', ';', ' ', ','])
            .map(|i| i + 1)
            .unwrap_or(rest.len());
        let (piece, tail) = rest.split_at(end);
        let (body, sep) = match piece.char_indices().last() {
            Some((i, '&' | '?' | ';' | ' ' | ',')) => (&piece[..i], &piece[i..]),
            _ => (piece, ""),
        };
        match body.split_once('=') {
            Some((k, _)) if SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k.trim())) => {
                out.push_str(k);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(&mask_long_digits(body)),
        }
        out.push_str(sep);
        rest = tail;
    }
    out
}

fn mask_long_digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut digits = String::new();
    for c in s.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 16 {
            out.push_str(ACCOUNT_MASK);
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_trace_is_private() {
        let path = std::env::temp_dir().join(format!("psn-trace-{}", uuid::Uuid::new_v4()));
        let t = Trace::to_file(&path).unwrap();
        t.request(
            "GET",
            "http://127.0.0.1/x?code=abc",
            &[("Cookie".into(), "npsso=zzz".into())],
            "",
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("abc") && !text.contains("zzz"), "{text}");
        // Windows has no mode bits: the profile's ACL keeps the folder the user's own.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn masks_tokens_and_accounts() {
        let body = r#"{"access_token":"eyJhbGc.x.y","refresh_token":"rt","expires_in":3599,"members":[{"accountId":"1234567890123456789","onlineId":"bob"}],"auth":{"accessToken":"jwt"}}"#;
        let r = redact_body(body);
        assert!(
            !r.contains("eyJ")
                && !r.contains("\"rt\"")
                && !r.contains("1234567890123456789")
                && !r.contains("jwt"),
            "{r}"
        );
        assert!(r.contains("bob") && r.contains("3599"));
        let form = "code=v3.ABC&grant_type=authorization_code&refresh_token=xyz";
        let r = redact_text(form);
        assert!(
            !r.contains("v3.ABC")
                && !r.contains("xyz")
                && r.contains("grant_type=authorization_code"),
            "{r}"
        );
        let loc = "com.scee.psxandroid.scecompcall://redirect/?code=v3.SECRET&cid=abc";
        assert!(!redact_text(loc).contains("SECRET"));
        assert_eq!(
            redact_header("Authorization", "Bearer abc"),
            "Bearer [redacted]"
        );
        assert_eq!(redact_header("Cookie", "npsso=abc"), REDACTED);
        assert_eq!(
            redact_text("id 1234567890123456789 here"),
            "id [account] here"
        );
    }
}
