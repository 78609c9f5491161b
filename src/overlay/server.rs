//! The overlay's HTTP server: 127.0.0.1 only, every answer behind the token, a small hand-read
//! HTTP/1.1 (GET only, one request per connection) because it serves four things:
//!
//! - `/?token=T&...`: the page (HTML, with its CSS and JS in the binary)
//! - `/events?token=T`: Server-Sent Events, one JSON snapshot per change (EventSource
//!   reconnects by itself when OBS restarts)
//! - `/state?token=T`: the snapshot now, as JSON
//! - `/avatar/{n}?token=T`: a member's avatar image, fetched by the plugin
//!
//! Anything else, a wrong token or a `Host` that is not this loopback address gets an empty 403
//! or 404. Nothing is logged per request.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};

use crate::party::presence::{AvatarStore, Snapshot};

const PAGE_HTML: &str = include_str!("page.html");
const PAGE_CSS: &str = include_str!("page.css");
const PAGE_JS: &str = include_str!("page.js");

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once (each Browser Source keeps one event stream open).
const MAX_CONNECTIONS: usize = 64;
/// An SSE comment this often keeps idle streams (and proxies) alive.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// What every connection needs.
pub struct ServerState {
    pub token: String,
    pub port: u16,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub avatars: Arc<AvatarStore>,
}

/// Binds 127.0.0.1:`port` (0: any free one). Returns the listener and its port.
pub fn bind(port: u16) -> std::io::Result<(std::net::TcpListener, u16)> {
    let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Serves until `stop` is notified (or the task is aborted); returning closes the listener, so
/// the port is free again when this returns.
pub async fn serve(listener: std::net::TcpListener, state: Arc<ServerState>, stop: Arc<Notify>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("overlay server: {e}");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.notified() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue; // full: the connection is dropped
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = handle(stream, &state).await;
            drop(permit);
        });
    }
}

/// A parsed request line.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub host: Option<String>,
}

/// Reads the request line and headers (up to [`MAX_HEAD`] bytes).
pub fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    if !first.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let host = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim().to_owned());
    Some(Head {
        method,
        path: path.to_owned(),
        query,
        host,
    })
}

/// Compares without stopping at the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// What to answer; `None` answers the event stream.
pub enum Answer {
    Status(u16),
    Body(&'static str, Vec<u8>),
    Events,
}

/// The routing decision, kept apart from the socket for the tests.
pub fn route(head: &Head, state: &ServerState) -> Answer {
    let host_ok = head.host.as_deref().is_some_and(|h| {
        h == format!("127.0.0.1:{}", state.port) || h == format!("localhost:{}", state.port)
    });
    let token_ok = head
        .query
        .iter()
        .find(|(k, _)| k == "token")
        .is_some_and(|(_, v)| same_secret(v, &state.token));
    if !host_ok || !token_ok {
        return Answer::Status(403);
    }
    if head.method != "GET" {
        return Answer::Status(405);
    }
    match head.path.as_str() {
        "/" => Answer::Body(
            "text/html; charset=utf-8",
            PAGE_HTML.replace("{{TOKEN}}", &state.token).into_bytes(),
        ),
        "/overlay.css" => Answer::Body("text/css; charset=utf-8", PAGE_CSS.as_bytes().to_vec()),
        "/overlay.js" => Answer::Body(
            "text/javascript; charset=utf-8",
            PAGE_JS.as_bytes().to_vec(),
        ),
        "/state" => Answer::Body(
            "application/json",
            state.snapshots.borrow().to_json().to_string().into_bytes(),
        ),
        "/events" => Answer::Events,
        path => match path
            .strip_prefix("/avatar/")
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(|n| state.avatars.get(n))
        {
            Some(avatar) => Answer::Body(avatar.content_type, avatar.bytes.clone()),
            None => Answer::Status(404),
        },
    }
}

const COMMON_HEADERS: &str = "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nContent-Security-Policy: default-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'\r\n";

async fn handle(mut stream: TcpStream, state: &ServerState) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read_head = async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_HEAD {
                return Ok(false);
            }
        }
    };
    if !tokio::time::timeout(HEAD_TIMEOUT, read_head)
        .await
        .unwrap_or(Ok(false))?
    {
        return Ok(());
    }
    let Some(head) = parse_head(&head) else {
        return write_status(&mut stream, 400).await;
    };
    match route(&head, state) {
        Answer::Status(code) => write_status(&mut stream, code).await,
        Answer::Body(kind, body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{COMMON_HEADERS}Connection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.shutdown().await
        }
        Answer::Events => events(stream, state.snapshots.clone()).await,
    }
}

async fn write_status(stream: &mut TcpStream, code: u16) -> std::io::Result<()> {
    let reason = match code {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Length: 0\r\n{COMMON_HEADERS}Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    stream.shutdown().await
}

/// The event stream: the snapshot now, then every change.
async fn events(
    mut stream: TcpStream,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n{COMMON_HEADERS}Connection: keep-alive\r\n\r\nretry: 1000\n\n"
    );
    stream.write_all(head.as_bytes()).await?;
    loop {
        let json = snapshots.borrow_and_update().to_json().to_string();
        stream
            .write_all(format!("data: {json}\n\n").as_bytes())
            .await?;
        loop {
            tokio::select! {
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        return Ok(()); // the plugin is stopping
                    }
                    break;
                }
                _ = tokio::time::sleep(KEEPALIVE) => {
                    stream.write_all(b": keepalive\n\n").await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ServerState {
        let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        ServerState {
            token: "0123456789abcdef0123456789abcdef".into(),
            port: 4000,
            snapshots: rx,
            avatars: Arc::default(),
        }
    }

    fn ask(raw: &str) -> u16 {
        let head = parse_head(raw.as_bytes()).unwrap();
        match route(&head, &state()) {
            Answer::Status(c) => c,
            _ => 200,
        }
    }

    #[test]
    fn only_the_token_and_this_host_are_answered() {
        let t = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            ask(&format!(
                "GET /?token={t} HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n\r\n"
            )),
            200
        );
        assert_eq!(
            ask(&format!(
                "GET /state?token={t} HTTP/1.1\r\nhost: localhost:4000\r\n\r\n"
            )),
            200
        );
        assert_eq!(ask("GET / HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n\r\n"), 403);
        assert_eq!(ask("GET /?token=0123456789abcdef0123456789abcdee HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n\r\n"), 403);
        // DNS rebinding: the attacker's name in Host.
        assert_eq!(
            ask(&format!(
                "GET /?token={t} HTTP/1.1\r\nHost: evil.example:4000\r\n\r\n"
            )),
            403
        );
        assert_eq!(
            ask(&format!(
                "GET /avatar/9?token={t} HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n\r\n"
            )),
            404
        );
        assert_eq!(
            ask(&format!(
                "POST /?token={t} HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n\r\n"
            )),
            405
        );
        assert!(parse_head(b"garbage").is_none());
    }
}
