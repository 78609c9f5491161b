//! HTTP on reqwest + rustls: the app's headers, a fresh `x-psn-request-id` per request, error
//! mapping, the client-side rate limiter, the protocol trace.
//!
//! No request follows a redirect (the authorize call reads the code from `Location`; no other call
//! has a reason to follow one, and a redirect must never carry credentials to another host). TLS
//! verification is always on: there is no switch to turn it off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::config::{check_scheme, APP_VERSION, USER_AGENT};
use super::error::{PsnError, Result};
use super::secret::Secret;
use super::trace::Trace;

/// What the client waits for after a 429 that says nothing about when to come back
/// (PROTOCOL.md section 1: no rate-limit headers were seen).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The largest response body the client reads (PSN's largest recorded answers are a few KB).
/// A server that sends more (a fault, a hostile or broken proxy) gets a clear error instead of
/// the plugin's memory: reqwest by itself reads any length until the request's timeout.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The TLS setup of every connection the client makes (HTTP and the push WebSocket): rustls with
/// the ring provider and the webpki roots. Certificates are always verified.
pub fn tls_config(alpn_http1: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    if alpn_http1 {
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Arc::new(cfg)
}

/// A sliding-window limiter that keeps the client well under PSN's ~300 requests per 15 minutes
/// (PROTOCOL.md section 1) and, after a 429, sends nothing until the retry time has passed.
#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    state: Mutex<LimiterState>,
}

#[derive(Debug, Default)]
struct LimiterState {
    sent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

impl RateLimiter {
    /// 200 per 15 minutes: two thirds of the community's 300.
    pub const DEFAULT_MAX: usize = 200;
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);

    pub fn new(max: usize, window: Duration) -> Self {
        RateLimiter {
            max: max.max(1),
            window,
            state: Mutex::new(LimiterState::default()),
        }
    }

    /// Takes one slot, or says how long until one is free.
    pub fn acquire(&self) -> std::result::Result<(), Duration> {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = s.blocked_until {
            if until > now {
                return Err(until - now);
            }
            s.blocked_until = None;
        }
        while s
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            s.sent.pop_front();
        }
        if s.sent.len() >= self.max {
            let oldest = *s.sent.front().expect("non-empty");
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        s.sent.push_back(now);
        Ok(())
    }

    /// After a 429: nothing goes out before `now + after`.
    pub fn block_for(&self, after: Duration) {
        let until = Instant::now() + after;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.blocked_until.is_none_or(|u| u < until) {
            s.blocked_until = Some(until);
        }
    }

    pub fn in_window(&self) -> usize {
        let now = Instant::now();
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.sent
            .iter()
            .filter(|t| now.duration_since(**t) < self.window)
            .count()
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    /// JSON with the given content type.
    Json(serde_json::Value, &'static str),
    /// `application/x-www-form-urlencoded`, already encoded (may carry secrets: traced redacted).
    Form(Secret),
}

/// Which of the app's header sets a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderSet {
    /// `User-Agent` only (auth host, partyInfo, serveraddr).
    Plain,
    /// m.np: `User-Agent`, `x-psn-app-ver`, a fresh `x-psn-request-id` (PROTOCOL.md section 1).
    Api,
}

#[derive(Debug, Clone)]
pub struct Request {
    /// Short name of the call, for errors and the trace ("token", "bulkGet", ...).
    pub endpoint: &'static str,
    pub method: Method,
    pub url: Url,
    pub header_set: HeaderSet,
    pub headers: Vec<(&'static str, String)>,
    pub secret_headers: Vec<(&'static str, Secret)>,
    pub bearer: Option<Secret>,
    pub body: Body,
}

impl Request {
    pub fn new(endpoint: &'static str, method: Method, url: Url, header_set: HeaderSet) -> Self {
        Request {
            endpoint,
            method,
            url,
            header_set,
            headers: Vec::new(),
            secret_headers: Vec::new(),
            bearer: None,
            body: Body::Empty,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn secret_header(mut self, name: &'static str, value: Secret) -> Self {
        self.secret_headers.push((name, value));
        self
    }

    pub fn json(mut self, v: serde_json::Value) -> Self {
        self.body = Body::Json(v, "application/json; charset=utf-8");
        self
    }

    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        self.body = Body::Form(Secret::new(s.finish()));
        self
    }
}

/// A response read to the end.
#[derive(Debug)]
pub struct Response {
    pub endpoint: &'static str,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// 2xx passes; 401 is [`PsnError::Unauthorized`]; anything else becomes [`PsnError::Api`]
    /// with PSN's error body (`{"error":{"referenceId","code","message"}}`) when there is one.
    pub fn ok(self) -> Result<Response> {
        match self.status {
            200..=299 => Ok(self),
            401 => Err(PsnError::Unauthorized),
            _ => Err(self.api_error()),
        }
    }

    pub fn api_error(&self) -> PsnError {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        let e = &v["error"];
        let text = String::from_utf8_lossy(&self.body);
        PsnError::Api {
            endpoint: self.endpoint.to_string(),
            status: self.status,
            code: e["code"].as_i64().unwrap_or(0),
            message: e["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(200).collect()),
            reference_id: e["referenceId"].as_str().unwrap_or("-").to_string(),
        }
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            PsnError::protocol(
                self.endpoint,
                format!("the answer is not the expected JSON ({e})"),
            )
        })
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Options of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub timeout: Duration,
    pub rate_max: usize,
    pub rate_window: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(20),
            rate_max: RateLimiter::DEFAULT_MAX,
            rate_window: RateLimiter::DEFAULT_WINDOW,
        }
    }
}

/// The HTTP client shared by every PSN call.
#[derive(Debug)]
pub struct Http {
    client: reqwest::Client,
    limiter: RateLimiter,
    trace: Option<Trace>,
    sent: AtomicU64,
}

impl Http {
    pub fn new(opts: &HttpOptions, trace: Option<Trace>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls_config(true)).clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| PsnError::Config(format!("cannot set up HTTP ({e})")))?;
        Ok(Http {
            client,
            limiter: RateLimiter::new(opts.rate_max, opts.rate_window),
            trace,
            sent: AtomicU64::new(0),
        })
    }

    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Requests that went on the wire since this client was made.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends one request. A 429 comes back as [`PsnError::RateLimited`] (and blocks the limiter);
    /// every other status comes back as a [`Response`] for the caller to judge.
    pub async fn send(&self, req: Request) -> Result<Response> {
        check_scheme(&req.url)?;
        if let Err(wait) = self.limiter.acquire() {
            log::warn!(
                "PSN: holding back {} for {} s (client-side rate limit)",
                req.endpoint,
                wait.as_secs()
            );
            return Err(PsnError::RateLimited { retry_after: wait });
        }
        let mut headers: Vec<(String, String)> = vec![("User-Agent".into(), USER_AGENT.into())];
        if req.header_set == HeaderSet::Api {
            headers.push(("x-psn-request-id".into(), uuid::Uuid::new_v4().to_string()));
            headers.push(("x-psn-app-ver".into(), APP_VERSION.into()));
        }
        for (k, v) in &req.headers {
            headers.push(((*k).into(), v.clone()));
        }
        let (body_bytes, content_type): (Vec<u8>, Option<&str>) = match &req.body {
            Body::Empty => (Vec::new(), None),
            Body::Json(v, ct) => (v.to_string().into_bytes(), Some(ct)),
            Body::Form(s) => (
                s.expose().as_bytes().to_vec(),
                Some("application/x-www-form-urlencoded"),
            ),
        };
        if let Some(ct) = content_type {
            headers.push(("Content-Type".into(), ct.into()));
        }
        if let Some(t) = &self.trace {
            let mut shown = headers.clone();
            if req.bearer.is_some() {
                shown.push(("Authorization".into(), "Bearer x".into()));
            }
            for (k, _) in &req.secret_headers {
                shown.push(((*k).into(), "x".into()));
            }
            t.request(
                req.method.as_str(),
                req.url.as_str(),
                &shown,
                &String::from_utf8_lossy(&body_bytes),
            );
        }
        let mut map = HeaderMap::new();
        for (k, v) in &headers {
            map.append(header_name(k)?, header_value(v)?);
        }
        if let Some(b) = &req.bearer {
            let mut v = header_value(&format!("Bearer {}", b.expose()))?;
            v.set_sensitive(true);
            map.insert(reqwest::header::AUTHORIZATION, v);
        }
        for (k, s) in &req.secret_headers {
            let mut v = header_value(s.expose())?;
            v.set_sensitive(true);
            map.append(header_name(k)?, v);
        }
        let mut builder = self
            .client
            .request(req.method.clone(), req.url.clone())
            .headers(map);
        if content_type.is_some() {
            builder = builder.body(body_bytes);
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        log::debug!("PSN: {} {} ({})", req.method, req.url.path(), req.endpoint);
        let resp = builder
            .send()
            .await
            .map_err(|e| transport_error(req.endpoint, &e))?;
        let status = resp.status().as_u16();
        let resp_headers = resp.headers().clone();
        let body = read_body(resp, req.endpoint).await?;
        if let Some(t) = &self.trace {
            let loc = resp_headers.get("location").and_then(|v| v.to_str().ok());
            t.response(status, loc, &String::from_utf8_lossy(&body));
        }
        if status == 429 {
            let retry_after = resp_headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_RETRY_AFTER);
            self.limiter.block_for(retry_after);
            log::warn!(
                "PSN: {} was rate limited (429); waiting {} s",
                req.endpoint,
                retry_after.as_secs()
            );
            return Err(PsnError::RateLimited { retry_after });
        }
        Ok(Response {
            endpoint: req.endpoint,
            status,
            headers: resp_headers,
            body,
        })
    }
}

fn header_name(k: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| PsnError::Config(format!("bad header name {k}")))
}

fn header_value(v: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(v)
        .map_err(|_| PsnError::Config("a header value has characters HTTP does not allow".into()))
}

/// Reads a response body of at most [`MAX_BODY_BYTES`], chunk by chunk (a declared or
/// streamed larger body is refused as soon as it is known to be too large).
async fn read_body(mut resp: reqwest::Response, endpoint: &'static str) -> Result<Vec<u8>> {
    let too_large = || PsnError::Protocol {
        endpoint: endpoint.to_string(),
        detail: format!("the response is larger than {MAX_BODY_BYTES} bytes"),
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error(endpoint, &e))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn transport_error(endpoint: &str, e: &reqwest::Error) -> PsnError {
    // reqwest's Display of an error names the URL (no secret is ever in one), never headers or bodies.
    let detail = format!("{endpoint}: {e}");
    if e.is_timeout() {
        PsnError::Timeout { detail }
    } else {
        PsnError::Unreachable { detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limiter_window_and_block() {
        let l = RateLimiter::new(3, Duration::from_secs(10));
        for _ in 0..3 {
            l.acquire().unwrap();
        }
        let wait = l.acquire().unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(10)).await;
        l.acquire().unwrap();
        l.block_for(Duration::from_secs(5));
        assert_eq!(l.acquire().unwrap_err(), Duration::from_secs(5));
        tokio::time::advance(Duration::from_secs(5)).await;
        l.acquire().unwrap();
        assert_eq!(l.in_window(), 2);
    }
}
