//! Configuration: endpoints and client credentials (DESIGN.md "Configuration contract").
//!
//! Each key is looked up, first to last, in: the source settings, the process environment, and
//! `.env` in the plugin's config directory. Defaults are the real PSN hosts (PROTOCOL.md section 1).
//! Plain `http://` base URLs are accepted only for loopback hosts (127.0.0.0/8, ::1, localhost).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use url::Url;

use super::error::{PsnError, Result};
use super::secret::Secret;

pub const ENV_CLIENT_ID: &str = "PSN_CLIENT_ID";
pub const ENV_CLIENT_SECRET: &str = "PSN_CLIENT_SECRET";
pub const ENV_NPSSO: &str = "PSN_NPSSO";
pub const ENV_AUTH_BASE_URL: &str = "PSN_AUTH_BASE_URL";
pub const ENV_API_BASE_URL: &str = "PSN_API_BASE_URL";
pub const ENV_PUSH_BASE_URL: &str = "PSN_PUSH_BASE_URL";
pub const ENV_WEB_BASE_URL: &str = "PSN_WEB_BASE_URL";
/// `1` (or `true`/`on`/`yes`): write the redacted protocol trace to [`TRACE_FILE_NAME`] in the
/// config directory, for a bug report.
pub const ENV_TRACE: &str = "PSN_PARTY_TRACE";
pub const TRACE_FILE_NAME: &str = "psn-trace.log";
/// Comma-separated `stun:host:port`; empty (or `none`) = host candidates only; unset = the
/// built-in [`DEFAULT_STUN_SERVERS`] (docs/network.md).
pub const ENV_STUN_SERVERS: &str = "PSN_STUN_SERVERS";
/// The local address the voice sockets bind; unset = every interface (docs/network.md).
pub const ENV_VOICE_BIND: &str = "PSN_VOICE_BIND";

/// Well-known public STUN servers, asked for our public address when nothing else is set.
pub const DEFAULT_STUN_SERVERS: &[&str] = &[
    "stun:stun.l.google.com:19302",
    "stun:stun1.l.google.com:19302",
    "stun:stun.cloudflare.com:3478",
];

/// PROTOCOL.md section 1.
pub const DEFAULT_AUTH_BASE_URL: &str = "https://ca.account.sony.com";
pub const DEFAULT_API_BASE_URL: &str = "https://m.np.playstation.com";
pub const DEFAULT_PUSH_BASE_URL: &str = "https://mobile-pushcl.np.communication.playstation.net";
pub const DEFAULT_WEB_BASE_URL: &str = "https://web.np.playstation.com";

/// PROTOCOL.md section 2 (Android app), kept configurable because Sony retired a client before.
pub const DEFAULT_REDIRECT_URI: &str = "com.scee.psxandroid.scecompcall://redirect";
pub const DEFAULT_SCOPE: &str = "psn:mobile.v2.core psn:clientapp";
/// PROTOCOL.md section 1: `x-psn-app-ver`.
pub const APP_VERSION: &str = "PlayStationApp-Android/26.1.0";
/// PROTOCOL.md section 1: "an okhttp-like User-Agent".
pub const USER_AGENT: &str = "okhttp/4.12.0";

/// Where the client sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub auth: Url,
    pub api: Url,
    pub push: Url,
    pub web: Url,
}

impl Default for Endpoints {
    fn default() -> Self {
        let p = |s: &str| Url::parse(s).expect("default URL parses");
        Endpoints {
            auth: p(DEFAULT_AUTH_BASE_URL),
            api: p(DEFAULT_API_BASE_URL),
            push: p(DEFAULT_PUSH_BASE_URL),
            web: p(DEFAULT_WEB_BASE_URL),
        }
    }
}

impl Endpoints {
    /// All four on one base URL (the simulator serves every host on one port).
    pub fn all_at(base: &str) -> Result<Self> {
        let u = parse_base_url("base URL", base)?;
        Ok(Endpoints {
            auth: u.clone(),
            api: u.clone(),
            push: u.clone(),
            web: u,
        })
    }
}

/// Everything the client needs to know before it sends a request.
#[derive(Debug, Clone)]
pub struct PsnConfig {
    pub endpoints: Endpoints,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// For headless sign-in only; used once, never stored.
    pub npsso: Option<Secret>,
    pub redirect_uri: String,
    pub scope: String,
    /// The plugin's config directory (token store, device id, `.env`); `None` in pure unit tests.
    pub config_dir: Option<PathBuf>,
    /// Where the redacted protocol trace goes, when the user asked for one (`PSN_PARTY_TRACE`).
    pub trace_file: Option<PathBuf>,
    /// `PSN_STUN_SERVERS`: `None` when unset (the defaults), `Some(empty)` for host only.
    pub stun_servers: Option<Vec<String>>,
    /// `PSN_VOICE_BIND`: `None` = every interface.
    pub voice_bind: Option<IpAddr>,
}

impl Default for PsnConfig {
    fn default() -> Self {
        PsnConfig {
            endpoints: Endpoints::default(),
            client_id: None,
            client_secret: None,
            npsso: None,
            redirect_uri: DEFAULT_REDIRECT_URI.to_string(),
            scope: DEFAULT_SCOPE.to_string(),
            config_dir: None,
            trace_file: None,
            stun_servers: None,
            voice_bind: None,
        }
    }
}

impl PsnConfig {
    /// Reads the configuration from source settings, then `env`, then `<config_dir>/.env`.
    /// `env` is a lookup function so tests need not touch the process environment.
    pub fn from_sources(
        settings: &HashMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
        config_dir: Option<&Path>,
    ) -> Result<Self> {
        let dotenv = match config_dir {
            Some(dir) => read_dotenv(&dir.join(".env"))?,
            None => HashMap::new(),
        };
        let dotenv_mode = config_dir
            .and_then(|dir| std::fs::metadata(dir.join(".env")).ok())
            .and_then(|m| crate::platform::readable_by_others(&m));
        // Unlike `get`, an empty value counts: `PSN_STUN_SERVERS=` means "no STUN".
        let raw = |key: &str| -> Option<String> {
            settings
                .get(key)
                .cloned()
                .or_else(|| env(key))
                .or_else(|| dotenv.get(key).cloned())
        };
        let get = |key: &str| -> Option<String> {
            raw(key)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let url = |key: &str, default: &str| -> Result<Url> {
            match get(key) {
                Some(v) => parse_base_url(key, &v),
                None => parse_base_url(key, default),
            }
        };
        let endpoints = Endpoints {
            auth: url(ENV_AUTH_BASE_URL, DEFAULT_AUTH_BASE_URL)?,
            api: url(ENV_API_BASE_URL, DEFAULT_API_BASE_URL)?,
            push: url(ENV_PUSH_BASE_URL, DEFAULT_PUSH_BASE_URL)?,
            web: url(ENV_WEB_BASE_URL, DEFAULT_WEB_BASE_URL)?,
        };
        let dotenv_path = config_dir.map(|dir| dir.join(".env"));
        for warning in config_warnings(&endpoints, dotenv_path.as_deref().zip(dotenv_mode)) {
            warn_once(warning);
        }
        Ok(PsnConfig {
            endpoints,
            client_id: get(ENV_CLIENT_ID),
            client_secret: get(ENV_CLIENT_SECRET).map(Secret::new),
            npsso: get(ENV_NPSSO).map(Secret::new),
            redirect_uri: DEFAULT_REDIRECT_URI.to_string(),
            scope: DEFAULT_SCOPE.to_string(),
            config_dir: config_dir.map(Path::to_path_buf),
            trace_file: get(ENV_TRACE)
                .filter(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "on" | "yes"))
                .and(config_dir)
                .map(|dir| dir.join(TRACE_FILE_NAME)),
            stun_servers: raw(ENV_STUN_SERVERS)
                .map(|v| parse_stun_servers(&v))
                .transpose()?,
            voice_bind: get(ENV_VOICE_BIND)
                .map(|v| parse_voice_bind(&v))
                .transpose()?,
        })
    }

    /// The process environment and `<config_dir>/.env`, no settings.
    pub fn from_env(config_dir: Option<&Path>) -> Result<Self> {
        Self::from_sources(&HashMap::new(), &|k| std::env::var(k).ok(), config_dir)
    }

    /// The client id and secret, or the error that tells the user where to put them.
    pub fn credentials(&self) -> Result<(&str, &Secret)> {
        match (&self.client_id, &self.client_secret) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Ok((id, secret)),
            _ => Err(PsnError::CredentialsMissing),
        }
    }
}

/// Whether a host is one of Sony's (PROTOCOL.md section 1): `sony.com`, `playstation.com`,
/// `playstation.net` or a subdomain.
pub fn is_sony_host(host: &url::Host<&str>) -> bool {
    let url::Host::Domain(d) = host else {
        return false;
    };
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    ["sony.com", "playstation.com", "playstation.net"]
        .iter()
        .any(|s| d == *s || d.ends_with(&format!(".{s}")))
}

/// What about the configuration the user should know, each as one log line: a `.env` other
/// users can read (it may hold the client secret), base URLs that send the sign-in somewhere
/// other than Sony (psn-sim on loopback is one such place, on purpose).
pub fn config_warnings(endpoints: &Endpoints, dotenv: Option<(&Path, u32)>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((path, mode)) = dotenv {
        out.push(format!(
            "{} is readable by other users (mode {mode:o}) and may hold your client secret: make it private (chmod 600)",
            path.display()
        ));
    }
    let mut hosts: Vec<String> = [
        &endpoints.auth,
        &endpoints.api,
        &endpoints.push,
        &endpoints.web,
    ]
    .iter()
    .filter(|u| !u.host().is_some_and(|h| is_sony_host(&h)))
    .filter_map(|u| u.host_str().map(str::to_owned))
    .collect();
    hosts.dedup();
    if !hosts.is_empty() {
        out.push(format!(
            "PSN base URLs point at {}, not at Sony's hosts: the sign-in and the party go there (expected only with psn-sim)",
            hosts.join(", ")
        ));
    }
    out
}

/// Logs `warning` unless this process logged it already (the configuration is read at every
/// sign-in; the user needs the line once).
fn warn_once(warning: String) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if !seen.contains(&warning) {
        log::warn!("{warning}");
        seen.insert(warning);
    }
}

/// Whether a host is on this machine: 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// Accepts `https://` anywhere and `http://` on loopback only. Used for every base URL and for the
/// push WebSocket's `ws://` / `wss://` address.
pub fn check_scheme(url: &Url) -> Result<()> {
    let host = url
        .host()
        .ok_or_else(|| PsnError::Config(format!("{url} has no host")))?;
    match url.scheme() {
        "https" | "wss" => Ok(()),
        "http" | "ws" if is_loopback_host(&host) => Ok(()),
        "http" | "ws" => Err(PsnError::Config(format!(
            "{url}: plain {} is allowed only for loopback hosts (127.0.0.1, ::1, localhost); use https",
            url.scheme()
        ))),
        other => Err(PsnError::Config(format!("{url}: unsupported scheme {other}"))),
    }
}

/// `stun:host:port` entries, comma- or space-separated (`host:port` alone gets `stun:`; the
/// port defaults to 3478). Empty or `none`: no STUN server.
pub fn parse_stun_servers(value: &str) -> Result<Vec<String>> {
    let value = value.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("none") {
        return Ok(vec![]);
    }
    value
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let bad = || {
                PsnError::Config(format!(
                    "{ENV_STUN_SERVERS}: {entry:?} is not a STUN server (stun:host:port)"
                ))
            };
            let rest = entry.strip_prefix("stun:").unwrap_or(entry);
            if rest.contains("//") || rest.contains('?') {
                return Err(bad());
            }
            let (host, port) = match rest.rsplit_once(':') {
                // An IPv6 literal keeps its brackets: `[2001:db8::1]:3478`.
                Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => {
                    (h, p.parse::<u16>().map_err(|_| bad())?)
                }
                _ if !rest.is_empty() && !rest.contains(':') => (rest, 3478),
                _ => return Err(bad()),
            };
            if port == 0
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_[]:".contains(c))
            {
                return Err(bad());
            }
            Ok(format!("stun:{host}:{port}"))
        })
        .collect()
}

/// An IP address of this machine (`127.0.0.1`, `0.0.0.0`, `192.168.1.20`, `::`).
pub fn parse_voice_bind(value: &str) -> Result<IpAddr> {
    value.trim().parse().map_err(|_| {
        PsnError::Config(format!(
            "{ENV_VOICE_BIND}: {value:?} is not an IP address (e.g. 0.0.0.0 or 127.0.0.1)"
        ))
    })
}

fn parse_base_url(key: &str, value: &str) -> Result<Url> {
    let url = Url::parse(value)
        .map_err(|e| PsnError::Config(format!("{key}: {value:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PsnError::Config(format!(
            "{key}: {value:?} must start with https://"
        )));
    }
    check_scheme(&url).map_err(|e| PsnError::Config(format!("{key}: {e}")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(PsnError::Config(format!(
            "{key}: {value:?} must not carry a query or fragment"
        )));
    }
    Ok(url)
}

/// Reads a `.env` file: `KEY=VALUE` lines, `#` comments, optional `export ` and quotes.
/// A missing file is an empty map.
pub fn read_dotenv(path: &Path) -> Result<HashMap<String, String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_dotenv(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(PsnError::Storage {
            what: path.display().to_string(),
            detail: e.to_string(),
        }),
    }
}

pub fn parse_dotenv(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        let mut v = v.trim();
        if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            v = &v[1..v.len() - 1];
        } else if let Some(i) = v.find(" #") {
            v = v[..i].trim_end();
        }
        if !k.is_empty() {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

/// A stable per-install device id, kept in `<config_dir>/device_id` (PROTOCOL.md section 1, [I]).
pub fn device_id(config_dir: Option<&Path>) -> Result<String> {
    let Some(dir) = config_dir else {
        return Ok(uuid::Uuid::new_v4().to_string());
    };
    let path = dir.join("device_id");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(id) = uuid::Uuid::parse_str(text.trim()) {
            return Ok(id.to_string());
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::create_dir_all(dir).map_err(|e| PsnError::Storage {
        what: dir.display().to_string(),
        detail: e.to_string(),
    })?;
    super::token_store::write_atomic(&path, id.as_bytes(), 0o644)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_are_the_real_hosts() {
        let c = PsnConfig::from_sources(&HashMap::new(), &no_env, None).unwrap();
        assert_eq!(c.endpoints, Endpoints::default());
        assert!(matches!(c.credentials(), Err(PsnError::CredentialsMissing)));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let cases = [
            ("http://127.0.0.1:8080", true),
            ("http://127.9.9.9", true),
            ("http://[::1]:1", true),
            ("http://localhost:3", true),
            ("https://example.test", true),
            ("http://10.0.0.1", false),
            ("http://192.168.1.2:80", false),
            ("http://example.test", false),
            ("ftp://127.0.0.1", false),
            ("http://127.0.0.1/?x=1", false),
        ];
        for (url, allowed) in cases {
            for key in [ENV_API_BASE_URL, ENV_PUSH_BASE_URL] {
                let env = |k: &str| (k == key).then(|| url.to_string());
                match PsnConfig::from_sources(&HashMap::new(), &env, None) {
                    Ok(_) => assert!(allowed, "{key}={url} was taken"),
                    Err(PsnError::Config(_)) => assert!(!allowed, "{key}={url} was refused"),
                    Err(e) => panic!("{key}={url}: {e}"),
                }
            }
        }
    }

    #[test]
    fn settings_then_env_then_dotenv() {
        let dir = std::env::temp_dir().join(format!("psn-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(".env"),
            "# comment\nexport PSN_CLIENT_ID=\"from-dotenv\"\nPSN_CLIENT_SECRET='dotenv-secret'\nPSN_WEB_BASE_URL=http://localhost:9 # trailing\n",
        )
        .unwrap();
        let env = |k: &str| (k == ENV_CLIENT_ID).then(|| "from-env".to_string());
        let mut settings = HashMap::new();
        let c = PsnConfig::from_sources(&settings, &env, Some(&dir)).unwrap();
        assert_eq!(c.client_id.as_deref(), Some("from-env"));
        assert_eq!(c.client_secret.as_ref().unwrap().expose(), "dotenv-secret");
        assert_eq!(c.endpoints.web.as_str(), "http://localhost:9/");
        settings.insert(ENV_CLIENT_ID.to_string(), "from-settings".to_string());
        let c = PsnConfig::from_sources(&settings, &env, Some(&dir)).unwrap();
        assert_eq!(c.client_id.as_deref(), Some("from-settings"));
        assert!(!format!("{c:?}").contains("dotenv-secret"));
        let id1 = device_id(Some(&dir)).unwrap();
        assert_eq!(id1, device_id(Some(&dir)).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stun_servers_unset_empty_or_listed_and_the_voice_bind() {
        let c = PsnConfig::from_sources(&HashMap::new(), &no_env, None).unwrap();
        assert_eq!(c.stun_servers, None);
        assert_eq!(c.voice_bind, None);
        let env = |k: &str| match k {
            ENV_STUN_SERVERS => Some(String::new()),
            ENV_VOICE_BIND => Some("127.0.0.1".to_string()),
            _ => None,
        };
        let c = PsnConfig::from_sources(&HashMap::new(), &env, None).unwrap();
        assert_eq!(c.stun_servers, Some(vec![]));
        assert_eq!(c.voice_bind, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(
            parse_stun_servers("stun:198.51.100.2:3478, 198.51.100.3:3479 stun:stun.example.test")
                .unwrap(),
            vec![
                "stun:198.51.100.2:3478",
                "stun:198.51.100.3:3479",
                "stun:stun.example.test:3478"
            ]
        );
        assert_eq!(
            parse_stun_servers("stun:[2001:db8::1]:3478").unwrap(),
            vec!["stun:[2001:db8::1]:3478"]
        );
        assert_eq!(parse_stun_servers("None").unwrap(), Vec::<String>::new());
        for bad in [
            "stun:host:0",
            "stun://host",
            "turn:host:3478?transport=udp",
            "turn:host:3478",
            "stun:ho/st",
        ] {
            assert!(parse_stun_servers(bad).is_err(), "{bad}");
        }
        let env = |k: &str| (k == ENV_VOICE_BIND).then(|| "lan".to_string());
        assert!(matches!(
            PsnConfig::from_sources(&HashMap::new(), &env, None),
            Err(PsnError::Config(_))
        ));
    }

    #[test]
    fn trace_only_when_asked_and_only_in_the_config_dir() {
        let dir = std::env::temp_dir().join("psn-config-trace");
        let asked = |v: &'static str| move |k: &str| (k == ENV_TRACE).then(|| v.to_string());
        let c = PsnConfig::from_sources(&HashMap::new(), &no_env, Some(&dir)).unwrap();
        assert_eq!(c.trace_file, None);
        let c = PsnConfig::from_sources(&HashMap::new(), &asked("0"), Some(&dir)).unwrap();
        assert_eq!(c.trace_file, None);
        let c = PsnConfig::from_sources(&HashMap::new(), &asked("On"), Some(&dir)).unwrap();
        assert_eq!(c.trace_file, Some(dir.join(TRACE_FILE_NAME)));
        let c = PsnConfig::from_sources(&HashMap::new(), &asked("1"), None).unwrap();
        assert_eq!(c.trace_file, None, "no config dir, no trace");
    }
}

#[cfg(test)]
mod warning_tests {
    use super::*;

    #[test]
    fn sony_hosts_and_others() {
        for (url, sony) in [
            (DEFAULT_AUTH_BASE_URL, true),
            (DEFAULT_PUSH_BASE_URL, true),
            ("https://sony.com.evil.example", false),
            ("https://evilplaystation.com", false),
            ("https://PS.PlayStation.NET.", true),
            ("http://127.0.0.1:4000", false),
        ] {
            let u = Url::parse(url).unwrap();
            assert_eq!(is_sony_host(&u.host().unwrap()), sony, "{url}");
        }
    }

    #[test]
    fn warnings_name_the_problem_once_each() {
        assert!(config_warnings(&Endpoints::default(), None).is_empty());
        let e = Endpoints {
            api: Url::parse("https://psn.example.net").unwrap(),
            ..Endpoints::default()
        };
        let w = config_warnings(&e, Some((Path::new("/x/.env"), 0o644)));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("/x/.env") && w[0].contains("644"), "{w:?}");
        assert!(
            w[1].contains("psn.example.net") && !w[1].contains("sony.com"),
            "{w:?}"
        );
        let all = Endpoints::all_at("http://127.0.0.1:1").unwrap();
        let w = config_warnings(&all, None);
        assert_eq!(w.len(), 1, "one line for four base URLs on one host: {w:?}");
    }
}
