//! The push WebSocket (PROTOCOL.md section 4): `serveraddr` -> `wss://{fqdn}/np/pushNotification`
//! with the `np-pushpacket` subprotocol and the app's headers, the auth frame, then frames read
//! and pings sent until the socket drops or stops answering.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use url::Url;

use super::frames::{auth_frame, parse_frame, PushEvent};
use super::PushOptions;
use crate::psn::client::PsnClient;
use crate::psn::config::{check_scheme, USER_AGENT};
use crate::psn::error::{PsnError, Result};
use crate::psn::http::{tls_config, HeaderSet, Request};

pub const SUBPROTOCOL: &str = "np-pushpacket";
pub const PUSH_PATH: &str = "/np/pushNotification";
/// The largest push message read (recorded frames are under 2 KB; tungstenite's own default
/// is 64 MiB, which a broken or hostile server could make the plugin hold).
pub const MAX_PUSH_MESSAGE_BYTES: usize = 256 * 1024;

fn push_socket_limits() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_PUSH_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_PUSH_MESSAGE_BYTES))
}

pub(super) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `GET {push}/np/serveraddr?version=3.0&fields=keepAliveStatus&keepAliveStatusType=6` -> fqdn.
pub async fn server_address(client: &PsnClient) -> Result<String> {
    let mut url = client
        .config()
        .endpoints
        .push
        .join("/np/serveraddr")
        .map_err(|e| PsnError::Config(e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("version", "3.0")
        .append_pair("fields", "keepAliveStatus")
        .append_pair("keepAliveStatusType", "6");
    let resp = client
        .call(Request::new(
            "serveraddr",
            Method::GET,
            url,
            HeaderSet::Plain,
        ))
        .await?;
    let v: Value = resp.json()?;
    let fqdn = v
        .get("fqdn")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && !s.contains(['/', '?', '#', '@']))
        .ok_or_else(|| PsnError::protocol("serveraddr", "no usable fqdn in the answer"))?;
    Ok(fqdn.to_string())
}

/// The WebSocket address for `fqdn`: `ws://` when the push base URL is plain http (loopback only).
pub fn websocket_url(push_base: &Url, fqdn: &str) -> Result<Url> {
    let scheme = if push_base.scheme() == "http" {
        "ws"
    } else {
        "wss"
    };
    let url = Url::parse(&format!("{scheme}://{fqdn}{PUSH_PATH}"))
        .map_err(|_| PsnError::protocol("serveraddr", "the fqdn is not a host name"))?;
    check_scheme(&url)?;
    Ok(url)
}

pub(super) async fn connect(client: &Arc<PsnClient>, opts: &PushOptions) -> Result<Ws> {
    let fqdn = server_address(client).await?;
    let url = websocket_url(&client.config().endpoints.push, &fqdn)?;
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| PsnError::protocol("push", e.to_string()))?;
    let h = req.headers_mut();
    for (k, v) in [
        ("Sec-WebSocket-Protocol", SUBPROTOCOL),
        ("X-PSN-PROTOCOL-VERSION", "3.0"),
        ("X-PSN-APP-TYPE", "MOBILE_APP.PSAPP"),
        ("X-PSN-KEEP-ALIVE-STATUS-TYPE", "6"),
        ("X-PSN-RECONNECT", "false"),
        ("User-Agent", USER_AGENT),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    let trace = client.http().trace();
    if let Some(t) = trace {
        t.note(&format!("push connect {url}"));
    }
    let connector = tokio_tungstenite::Connector::Rustls(tls_config(false));
    let (mut ws, _) = tokio::time::timeout(
        opts.connect_timeout,
        tokio_tungstenite::connect_async_tls_with_config(
            req,
            Some(push_socket_limits()),
            false,
            Some(connector),
        ),
    )
    .await
    .map_err(|_| PsnError::Timeout {
        detail: "push WebSocket".into(),
    })?
    .map_err(|e| PsnError::Unreachable {
        detail: format!("push WebSocket: {e}"),
    })?;
    let token = client.access_token().await?;
    let account = client.account_id().await.ok_or(PsnError::NotSignedIn)?;
    let frame = auth_frame(&account, token.expose());
    if let Some(t) = trace {
        t.push(">", &frame);
    }
    ws.send(WsMessage::text(frame))
        .await
        .map_err(|e| PsnError::Unreachable {
            detail: format!("push WebSocket: {e}"),
        })?;
    log::info!("PSN push: connected");
    Ok(ws)
}

/// Reads frames until the socket drops or stops answering pings; returns why it ended.
pub(super) async fn serve(
    mut ws: Ws,
    client: &PsnClient,
    opts: &PushOptions,
    tx: &mpsc::Sender<PushEvent>,
) -> String {
    let trace = client.http().trace();
    let mut ping =
        tokio::time::interval_at(Instant::now() + opts.ping_interval, opts.ping_interval);
    let mut awaiting_pong: Option<Instant> = None;
    loop {
        let pong_deadline = awaiting_pong.map(|t| t + opts.pong_timeout);
        tokio::select! {
            _ = ping.tick() => {
                if awaiting_pong.is_none() {
                    awaiting_pong = Some(Instant::now());
                }
                if let Err(e) = ws.send(WsMessage::Ping(Vec::new().into())).await {
                    return format!("ping failed: {e}");
                }
            }
            _ = async { match pong_deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                let _ = ws.close(None).await;
                return "no pong within the timeout".into();
            }
            msg = ws.next() => {
                match msg {
                    None => return "closed".into(),
                    Some(Err(e)) => return format!("{e}"),
                    Some(Ok(WsMessage::Pong(_))) => awaiting_pong = None,
                    Some(Ok(WsMessage::Close(_))) => return "closed by the server".into(),
                    Some(Ok(WsMessage::Text(text))) => {
                        if let Some(t) = trace {
                            t.push("<", text.as_str());
                        }
                        match parse_frame(text.as_str()) {
                            Ok(Some(ev)) => {
                                if tx.send(ev).await.is_err() {
                                    return "receiver gone".into();
                                }
                            }
                            Ok(None) => {}
                            Err(e) => log::warn!("PSN push: ignored a frame ({e})"),
                        }
                    }
                    Some(Ok(WsMessage::Binary(b))) => {
                        log::warn!("PSN push: ignored a binary frame of {} bytes", b.len());
                        if let Some(t) = trace {
                            t.note(&format!("push binary frame, {} bytes", b.len()));
                        }
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_scheme_follows_base() {
        let http = Url::parse("http://127.0.0.1:1").unwrap();
        assert_eq!(
            websocket_url(&http, "127.0.0.1:9").unwrap().as_str(),
            "ws://127.0.0.1:9/np/pushNotification"
        );
        assert!(websocket_url(&http, "push.example.test").is_err());
        let https = Url::parse("https://push.example.test").unwrap();
        assert_eq!(
            websocket_url(&https, "a.example.test").unwrap().scheme(),
            "wss"
        );
    }
}
