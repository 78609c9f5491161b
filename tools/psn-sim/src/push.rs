//! The push side: a WebSocket listener standing in for the host `serveraddr` names. It checks the
//! recorded upgrade headers and subprotocol, wants the protocol 3.0 auth frame first, then
//! delivers frames; pings are answered (unless frozen by a fault).

// The handshake callback's error type is tungstenite's HTTP response.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::shape;
use crate::state::{PushCmd, PushConn};
use crate::Inner;

pub async fn listen(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(connection(inner.clone(), stream));
    }
}

fn reject(status: u16, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_string()));
    *r.status_mut() =
        tokio_tungstenite::tungstenite::http::StatusCode::from_u16(status).expect("valid status");
    r
}

async fn connection(inner: Arc<Inner>, stream: TcpStream) {
    let inner2 = inner.clone();
    let check = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let mut st = inner2.state.lock().unwrap_or_else(|e| e.into_inner());
        st.count("pushConnect");
        if st.faults.refuse_push {
            return Err(reject(503, "Service Unavailable"));
        }
        if req.uri().path() != "/np/pushNotification" {
            return Err(reject(404, "Not Found"));
        }
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let protocols = h("sec-websocket-protocol");
        if !protocols.split(',').any(|p| p.trim() == "np-pushpacket") {
            st.rejections
                .push("push: no np-pushpacket subprotocol".into());
            return Err(reject(400, "Bad Request"));
        }
        for (name, want) in [
            ("x-psn-protocol-version", Some("3.0")),
            ("x-psn-app-type", Some("MOBILE_APP.PSAPP")),
            ("x-psn-keep-alive-status-type", None),
            ("x-psn-reconnect", None),
        ] {
            let v = h(name);
            if v.is_empty() || want.is_some_and(|w| w != v) {
                st.rejections.push(format!("push: header {name}"));
                return Err(reject(400, "Bad Request"));
            }
        }
        resp.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("np-pushpacket"),
        );
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        return;
    };
    // The first frame must be the auth frame with a valid access token of the same account.
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    let account: Option<(String, Option<String>)> = {
        let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let text = match first {
            Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
            _ => String::new(),
        };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mut errors = vec![];
        let mut unexpected = vec![];
        shape::check(&shape::push_auth(), &v, "", &mut errors, &mut unexpected);
        st.unexpected
            .extend(unexpected.into_iter().map(|u| format!("pushAuth: {u}")));
        let order = crate::key_order::check(text.as_bytes());
        st.unexpected
            .extend(order.into_iter().map(|u| format!("pushAuth: {u}")));
        let device = v["auth"]["accessToken"]
            .as_str()
            .and_then(|t| st.token_devices.get(t).cloned());
        let token_account = v["auth"]["accessToken"]
            .as_str()
            .and_then(|t| st.bearer_account(t));
        let ok = errors.is_empty()
            && v["version"] == "3.0"
            && v["method"] == 1003
            && v["status"] == "active"
            && token_account.is_some()
            && token_account.as_deref() == v["accountId"].as_str();
        if ok {
            token_account.map(|a| (a, device))
        } else {
            st.rejections.push("push: missing or bad auth frame".into());
            None
        }
    };
    let Some((account, device)) = account else {
        let _ = ws.close(None).await;
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let id = st.next_conn;
        st.next_conn += 1;
        st.push_conns.push(PushConn {
            id,
            account_id: account,
            device,
            tx,
        });
        id
    };
    inner.push_changed.notify_waiters();
    let mut frozen = false;
    // While the network is down nothing crosses the socket either way: frames wait, pings are
    // not answered.
    let mut network = inner.network_up.subscribe();
    loop {
        let up = *network.borrow_and_update();
        tokio::select! {
            changed = network.changed() => if changed.is_err() { break; },
            cmd = rx.recv(), if up => match cmd {
                Some(PushCmd::Text(t)) => {
                    if ws.send(Message::text(t)).await.is_err() { break; }
                }
                Some(PushCmd::Freeze) => frozen = true,
                Some(PushCmd::Close) | None => {
                    let _ = ws.close(None).await;
                    break;
                }
            },
            msg = ws.next(), if up && !frozen => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(Message::Text(_))) => {
                    let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
                    st.unexpected.push("push: text frame after auth".into());
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    st.push_conns.retain(|c| c.id != id);
    drop(st);
    inner.push_changed.notify_waiters();
}
