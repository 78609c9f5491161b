//! Push notifications (PROTOCOL.md section 4): `serveraddr` -> WebSocket (`np-pushpacket`,
//! protocol 3.0 auth frame, ping every 5 s, reconnect with backoff and jitter) -> typed events;
//! a polling fallback (bulkGet at the advertised interval) while push is down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use url::Url;

use super::client::PsnClient;
use super::config::{check_scheme, USER_AGENT};
use super::error::{PsnError, Result};
use super::http::{tls_config, HeaderSet, Request};
use super::session::{Member, PartyApi};

pub const DATA_TYPE_PREFIX: &str = "psn:sessionManager:sys:";
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

/// The interval partyInfo advertises (`msPollingInterval`, PROTOCOL.md section 3).
pub const ADVERTISED_POLL_INTERVAL: Duration = Duration::from_millis(5000);

/// Who a frame is about (`data.customProperties.from`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PushFrom {
    #[serde(rename = "accountId", default)]
    pub account_id: String,
    #[serde(rename = "onlineId", default)]
    pub online_id: String,
    #[serde(default)]
    pub platform: String,
    #[serde(rename = "deviceUniqueId", default)]
    pub device_unique_id: String,
    #[serde(rename = "joinOrder", default)]
    pub join_order: Option<i64>,
}

impl PushFrom {
    pub fn member(&self) -> Member {
        Member {
            account_id: self.account_id.clone(),
            online_id: self.online_id.clone(),
            platform: self.platform.clone(),
        }
    }
}

/// A member in `members:created`: who, plus the member's state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PushMember {
    #[serde(flatten)]
    pub who: PushFrom,
    #[serde(rename = "voiceChatActivated", default)]
    pub voice_chat_activated: Option<bool>,
    #[serde(rename = "customData4", default)]
    pub custom_data4: Option<String>,
}

impl PushMember {
    pub fn member(&self) -> Member {
        self.who.member()
    }
}

/// What the push channel (or the polling fallback) reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PushEvent {
    /// The WebSocket is up and authenticated.
    Connected,
    /// The WebSocket went down; the client reconnects by itself.
    Disconnected { reason: String },
    /// Polling stands in for push (or stops doing so).
    PollingFallback { active: bool, interval: Duration },
    MembersJoined {
        session_id: String,
        members: Vec<PushMember>,
    },
    MembersLeft {
        session_id: String,
        members: Vec<Member>,
    },
    CustomMessage {
        session_id: String,
        from: PushFrom,
        channel: String,
        payload: String,
    },
    /// `customData3`/`customData4` of a member changed (`field` is 3 or 4; value when the frame has it).
    CustomDataUpdated {
        session_id: String,
        from: PushFrom,
        field: u8,
        value: Option<String>,
    },
    /// Name, owner or another party property changed.
    PartyUpdated {
        session_id: String,
        data_type: String,
    },
    PartyDeleted {
        session_id: String,
        cause: Option<String>,
    },
    /// A frame of a type this client does not know.
    Unknown { data_type: String },
    /// Push stopped for good (signed out, credentials rejected): the user must act.
    Failed { error: PsnError },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not JSON")]
    NotJson,
    #[error("no dataType")]
    NoDataType,
    #[error("{0} lacks {1}")]
    Missing(String, &'static str),
}

/// Parses one text frame. `Ok(None)` for frames that are not events (e.g. answers to our own
/// requests). Never panics.
pub fn parse_frame(text: &str) -> std::result::Result<Option<PushEvent>, FrameError> {
    let v: Value = serde_json::from_str(text).map_err(|_| FrameError::NotJson)?;
    if v.get("method").and_then(Value::as_i64) != Some(3001) {
        return Ok(None);
    }
    let data_type = v
        .get("dataType")
        .and_then(Value::as_str)
        .ok_or(FrameError::NoDataType)?;
    let short = data_type
        .strip_prefix(DATA_TYPE_PREFIX)
        .unwrap_or(data_type);
    let data = v.pointer("/body/data").cloned().unwrap_or(Value::Null);
    let session_id = || -> std::result::Result<String, FrameError> {
        data.get("sessionId")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| FrameError::Missing(short.to_string(), "sessionId"))
    };
    let from = || -> PushFrom {
        data.pointer("/customProperties/from")
            .and_then(|f| PushFrom::deserialize(f).ok())
            .unwrap_or_default()
    };
    let members = || -> Vec<PushMember> {
        data.get("members")
            .and_then(|m| Vec::<PushMember>::deserialize(m).ok())
            .unwrap_or_default()
    };
    let ev = match short {
        "v2:ps:members:created" | "pts:members:created" => PushEvent::MembersJoined {
            session_id: session_id()?,
            members: members(),
        },
        "v2:ps:members:deleted" | "pts:members:deleted" => {
            let mut left: Vec<Member> = members().iter().map(PushMember::member).collect();
            if left.is_empty() {
                let f = from();
                if f.account_id.is_empty() {
                    return Err(FrameError::Missing(
                        short.to_string(),
                        "members or customProperties.from",
                    ));
                }
                left.push(f.member());
            }
            PushEvent::MembersLeft {
                session_id: session_id()?,
                members: left,
            }
        }
        "v2:ps:customMessage:noSeq:created" | "pts:customMessage:created" => {
            let cm = data
                .get("customMessage")
                .ok_or_else(|| FrameError::Missing(short.to_string(), "customMessage"))?;
            let field = |k: &'static str| {
                cm.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| FrameError::Missing(short.to_string(), k))
            };
            PushEvent::CustomMessage {
                session_id: session_id()?,
                from: from(),
                channel: field("channel")?,
                payload: field("payload")?,
            }
        }
        "v2:ps:m:customData3:updated" | "v2:ps:m:customData4:updated" => {
            let (field, key) = if short.contains("customData3") {
                (3, "customData3")
            } else {
                (4, "customData4")
            };
            let value = data
                .get(key)
                .or_else(|| data.pointer(&format!("/members/0/{key}")))
                .and_then(Value::as_str)
                .map(str::to_string);
            PushEvent::CustomDataUpdated {
                session_id: session_id()?,
                from: from(),
                field,
                value,
            }
        }
        "outside:v2:partySession:deleted" | "v2:partySession:deleted" | "partySession:deleted" => {
            PushEvent::PartyDeleted {
                session_id: session_id()?,
                cause: data
                    .pointer("/customProperties/deletedEvenCause")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }
        }
        s if s.starts_with("v2:ps:") && s.ends_with(":updated") => PushEvent::PartyUpdated {
            session_id: session_id()?,
            data_type: data_type.to_string(),
        },
        _ => PushEvent::Unknown {
            data_type: data_type.to_string(),
        },
    };
    Ok(Some(ev))
}

/// The auth frame of protocol 3.0 (PROTOCOL.md section 4).
pub fn auth_frame(account_id: &str, access_token: &str) -> String {
    json!({"version":"3.0","method":1003,"tranId":"1","accountId":account_id,"status":"active","auth":{"accessToken":access_token}})
        .to_string()
}

#[derive(Debug, Clone)]
pub struct PushOptions {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A connection that lived this long resets the backoff.
    pub stable_after: Duration,
    /// Failed attempts in a row before polling stands in.
    pub fallback_after: u32,
    /// The polling interval; the advertised `msPollingInterval` by default.
    pub poll_interval: Duration,
    pub connect_timeout: Duration,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            ping_interval: Duration::from_secs(5),
            pong_timeout: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(30),
            fallback_after: 2,
            poll_interval: ADVERTISED_POLL_INTERVAL,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The delay before reconnect attempt `failures` (1, 2, ...): "equal jitter", uniform in
/// [d/2, d] where d = base * 2^(failures-1) capped at max. Never zero, so no storm.
pub fn backoff_delay(opts: &PushOptions, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let d = opts
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(opts.backoff_max);
    let half = d / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// The running push connection. Dropping it (or calling `stop`) ends it.
#[derive(Debug)]
pub struct PushClient {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PushClient {
    /// Starts push for the signed-in account. `session_id` is the party to poll when push is down.
    pub fn start(
        party: PartyApi,
        session_id: Option<String>,
        opts: PushOptions,
    ) -> (PushClient, mpsc::Receiver<PushEvent>) {
        let (tx, rx) = mpsc::channel(256);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(party, session_id, opts, tx, stop_rx));
        (
            PushClient {
                stop,
                task: Some(task),
            },
            rx,
        )
    }

    /// Stops and waits for the task to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for PushClient {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn run(
    party: PartyApi,
    session_id: Option<String>,
    opts: PushOptions,
    tx: mpsc::Sender<PushEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let client = party.client().clone();
    let mut failures: u32 = 0;
    let mut poller = Poller::new(session_id);
    loop {
        if *stop.borrow() || tx.is_closed() {
            return;
        }
        let attempt = tokio::select! {
            r = connect(&client, &opts) => r,
            _ = stop.changed() => return,
        };
        let mut wait_at_least = Duration::ZERO;
        match attempt {
            Ok(ws) => {
                let _ = tx.send(PushEvent::Connected).await;
                if poller.active {
                    poller.active = false;
                    let _ = tx
                        .send(PushEvent::PollingFallback {
                            active: false,
                            interval: opts.poll_interval,
                        })
                        .await;
                }
                let started = Instant::now();
                let reason = tokio::select! {
                    r = serve(ws, &client, &opts, &tx) => r,
                    _ = stop.changed() => return,
                };
                log::info!("PSN push: disconnected ({reason})");
                let _ = tx.send(PushEvent::Disconnected { reason }).await;
                if started.elapsed() >= opts.stable_after {
                    failures = 0;
                }
                failures += 1;
            }
            Err(
                e @ (PsnError::NotSignedIn
                | PsnError::SignInExpired
                | PsnError::CredentialsRejected
                | PsnError::CredentialsMissing
                | PsnError::Config(_)),
            ) => {
                log::warn!("PSN push: stopping: {e}");
                let _ = tx.send(PushEvent::Failed { error: e }).await;
                return;
            }
            Err(e) => {
                log::info!("PSN push: connecting failed: {e}");
                failures += 1;
                if let Some(after) = e.retry_after() {
                    wait_at_least = after;
                }
            }
        }
        if failures >= opts.fallback_after && poller.session_id.is_some() && !poller.active {
            poller.active = true;
            let _ = tx
                .send(PushEvent::PollingFallback {
                    active: true,
                    interval: opts.poll_interval,
                })
                .await;
        }
        let delay = backoff_delay(&opts, failures).max(wait_at_least);
        let until = Instant::now() + delay;
        // Wait for the next attempt; poll the party meanwhile when push has failed repeatedly.
        loop {
            let next_poll = if poller.active {
                poller.next_at.max(Instant::now())
            } else {
                until
            };
            if next_poll >= until {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = stop.changed() => return,
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_poll) => {}
                _ = stop.changed() => return,
            }
            poller.next_at = Instant::now() + opts.poll_interval;
            if !poller.poll(&party, &tx).await {
                return;
            }
        }
    }
}

/// The polling fallback: bulkGet, diffed against the last roster.
struct Poller {
    session_id: Option<String>,
    active: bool,
    next_at: Instant,
    last: Option<BTreeMap<(String, String), Member>>,
}

impl Poller {
    fn new(session_id: Option<String>) -> Self {
        Poller {
            session_id,
            active: false,
            next_at: Instant::now(),
            last: None,
        }
    }

    /// One poll; false when the party is gone (the run ends).
    async fn poll(&mut self, party: &PartyApi, tx: &mpsc::Sender<PushEvent>) -> bool {
        let Some(sid) = self.session_id.clone() else {
            return true;
        };
        let roster = match party.roster(&sid).await {
            Ok(r) => r,
            Err(e) => {
                log::info!("PSN poll: {e}");
                return true;
            }
        };
        let Some(roster) = roster else {
            let _ = tx
                .send(PushEvent::PartyDeleted {
                    session_id: sid,
                    cause: None,
                })
                .await;
            return false;
        };
        let now: BTreeMap<_, _> = roster
            .into_iter()
            .map(|m| ((m.account_id.clone(), m.platform.clone()), m))
            .collect();
        if let Some(last) = &self.last {
            let joined: Vec<PushMember> = now
                .iter()
                .filter(|(k, _)| !last.contains_key(*k))
                .map(|(_, m)| PushMember {
                    who: PushFrom {
                        account_id: m.account_id.clone(),
                        online_id: m.online_id.clone(),
                        platform: m.platform.clone(),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .collect();
            let left: Vec<Member> = last
                .iter()
                .filter(|(k, _)| !now.contains_key(*k))
                .map(|(_, m)| m.clone())
                .collect();
            if !joined.is_empty() {
                let _ = tx
                    .send(PushEvent::MembersJoined {
                        session_id: sid.clone(),
                        members: joined,
                    })
                    .await;
            }
            if !left.is_empty() {
                let _ = tx
                    .send(PushEvent::MembersLeft {
                        session_id: sid.clone(),
                        members: left,
                    })
                    .await;
            }
        }
        self.last = Some(now);
        true
    }
}

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

async fn connect(client: &Arc<PsnClient>, opts: &PushOptions) -> Result<Ws> {
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
async fn serve(
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
    fn parses_recorded_types() {
        let f = |dt: &str, data: Value| {
            json!({"version":"3.0","method":3001,"dataType":format!("{DATA_TYPE_PREFIX}{dt}"),"to":{},"body":{"data":data}}).to_string()
        };
        let from = json!({"accountId":"1","onlineId":"a","platform":"PS5","deviceUniqueId":"d","joinOrder":1});
        let ev = parse_frame(&f("v2:ps:members:created", json!({"sessionId":"s","customProperties":{"from":from},"members":[{"accountId":"2","onlineId":"b","platform":"PS4"}]}))).unwrap().unwrap();
        assert!(
            matches!(ev, PushEvent::MembersJoined { ref members, .. } if members[0].who.online_id == "b")
        );
        let ev = parse_frame(&f(
            "v2:ps:members:deleted",
            json!({"sessionId":"s","customProperties":{"from":from}}),
        ))
        .unwrap()
        .unwrap();
        assert!(
            matches!(ev, PushEvent::MembersLeft { ref members, .. } if members[0].account_id == "1")
        );
        let ev = parse_frame(&f("v2:ps:customMessage:noSeq:created", json!({"sessionId":"s","customProperties":{"from":from},"customMessage":{"channel":"miranda:12","payload":"p"}}))).unwrap().unwrap();
        assert!(
            matches!(ev, PushEvent::CustomMessage { ref channel, .. } if channel == "miranda:12")
        );
        let ev = parse_frame(&f(
            "outside:v2:partySession:deleted",
            json!({"sessionId":"s","customProperties":{"deletedEvenCause":"LAST_MEMBER_LEFT"}}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            ev,
            PushEvent::PartyDeleted {
                session_id: "s".into(),
                cause: Some("LAST_MEMBER_LEFT".into())
            }
        );
        let ev = parse_frame(&f(
            "v2:ps:m:customData4:updated",
            json!({"sessionId":"s","customProperties":{"from":from}}),
        ))
        .unwrap()
        .unwrap();
        assert!(matches!(ev, PushEvent::CustomDataUpdated { field: 4, .. }));
        let ev = parse_frame(&f("v2:ps:sessionName:updated", json!({"sessionId":"s"})))
            .unwrap()
            .unwrap();
        assert!(matches!(ev, PushEvent::PartyUpdated { .. }));
        assert!(matches!(
            parse_frame(&f("something:new", json!({})))
                .unwrap()
                .unwrap(),
            PushEvent::Unknown { .. }
        ));
        assert_eq!(parse_frame("{]"), Err(FrameError::NotJson));
        assert_eq!(
            parse_frame(r#"{"method":3001}"#),
            Err(FrameError::NoDataType)
        );
        assert_eq!(parse_frame(r#"{"method":1003}"#), Ok(None));
    }

    #[test]
    fn backoff_grows_with_jitter_and_cap() {
        let o = PushOptions::default();
        for f in 1..20 {
            let d = backoff_delay(&o, f);
            let cap = o
                .backoff_base
                .saturating_mul(1 << (f - 1).min(16))
                .min(o.backoff_max);
            assert!(d >= cap / 2 && d <= cap, "{f}: {d:?}");
        }
    }

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
