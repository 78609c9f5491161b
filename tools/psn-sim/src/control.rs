//! The control API under `/_sim/` (docs/psn-sim.md): start a party, members join/leave, end the
//! party, members send customMessages, inject faults, read counters and the unexpected-field log.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::http::{error_body, json_resp, Ctx, Resp, CODE_BAD_REQUEST, CODE_NOT_FOUND};
use crate::{Fault, Inner, MemberSpec, ScriptStep, SimHandle, VoiceSpec};

pub async fn handle(inner: &Arc<Inner>, ctx: Ctx) -> Resp {
    // A handle without tasks: dropping it stops nothing.
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    let h = SimHandle {
        inner: inner.clone(),
        http_addr: addr,
        push_addr: addr,
        tasks: vec![],
    };
    let body: Value = serde_json::from_slice(&ctx.body).unwrap_or(Value::Null);
    let segs: Vec<&str> = ctx.segs.iter().skip(1).map(String::as_str).collect();
    let ok = || json_resp(200, json!({"ok": true}));
    match (ctx.method.as_str(), segs.as_slice()) {
        ("GET", ["state"]) => {
            let st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            json_resp(
                200,
                json!({
                    "accountId": st.cfg.account_id, "onlineId": st.cfg.online_id, "clientId": st.cfg.client_id,
                    "parties": st.parties.values().collect::<Vec<_>>(),
                    "counts": st.counts, "pushConnections": st.push_conns.len(),
                }),
            )
        }
        ("GET", ["counts"]) => json_resp(200, json!(h.counts())),
        ("POST", ["counts", "reset"]) => {
            h.reset_counts();
            ok()
        }
        ("GET", ["unexpected"]) => json_resp(200, json!(h.unexpected())),
        ("GET", ["rejections"]) => json_resp(200, json!(h.rejections())),
        ("GET", ["messages"]) => json_resp(200, json!(h.received_messages())),
        ("GET", ["voice"]) => json_resp(200, json!(h.voice_status())),
        ("POST", ["avatar"]) => crate::profiles::control(inner, &body),
        ("POST", ["network"]) => match body.get("up").and_then(Value::as_bool) {
            Some(up) => {
                h.set_network(up);
                ok()
            }
            None => error_body(
                400,
                CODE_BAD_REQUEST,
                "bad network: expected {\"up\": true|false}",
            ),
        },
        ("POST", ["voice", account, "network"]) => {
            match serde_json::from_value::<crate::Network>(body) {
                Ok(n) if n.validate().is_ok() => {
                    if h.set_member_network(account, n) {
                        ok()
                    } else {
                        error_body(404, CODE_NOT_FOUND, "no such voice member")
                    }
                }
                Ok(n) => error_body(
                    400,
                    CODE_BAD_REQUEST,
                    &format!("bad network: {:?}", n.validate()),
                ),
                Err(e) => error_body(400, CODE_BAD_REQUEST, &format!("bad network: {e}")),
            }
        }
        ("POST", ["voice", "default"]) => match voice_of(&body) {
            Ok(v) => {
                h.set_default_voice(v);
                ok()
            }
            Err(e) => error_body(400, CODE_BAD_REQUEST, &e),
        },
        ("POST", ["parties"]) => {
            let name = body["name"].as_str().unwrap_or("");
            let mut members = vec![];
            for m in body["members"].as_array().cloned().unwrap_or_default() {
                match member_of(&m) {
                    Ok(spec) => members.push(spec),
                    Err(e) => return error_body(400, CODE_BAD_REQUEST, &e),
                }
            }
            let p = h.start_party_with(name, &members);
            json_resp(
                201,
                json!({"sessionId": p.session_id, "linkId": p.link_id,
                       "members": p.members.iter().map(|(a, o, pl)| json!({"accountId": a, "onlineId": o, "platform": pl})).collect::<Vec<_>>()}),
            )
        }
        ("POST", ["parties", sid, "members"]) => {
            let spec = match member_of(&body) {
                Ok(s) => s,
                Err(e) => return error_body(400, CODE_BAD_REQUEST, &e),
            };
            match h.member_join_with(sid, &spec) {
                Some(a) => json_resp(201, json!({"accountId": a})),
                None => error_body(404, CODE_NOT_FOUND, "no such party"),
            }
        }
        ("DELETE", ["parties", sid, "members", account]) => {
            if h.member_leave(sid, account) {
                ok()
            } else {
                error_body(404, CODE_NOT_FOUND, "no such member")
            }
        }
        ("DELETE", ["parties", sid]) => {
            if h.end_party(sid) {
                ok()
            } else {
                error_body(404, CODE_NOT_FOUND, "no such party")
            }
        }
        ("POST", ["parties", sid, "messages"]) => {
            let from = body["fromAccountId"].as_str().unwrap_or("");
            let channel = body["channel"].as_str().unwrap_or("miranda:12");
            let payload = body["payload"].as_str().unwrap_or("");
            if h.member_send_custom_message(sid, from, channel, payload) {
                ok()
            } else {
                error_body(404, CODE_NOT_FOUND, "no such party or member")
            }
        }
        ("POST", ["parties", sid, "script"]) => {
            match serde_json::from_value::<Vec<ScriptStep>>(body["steps"].clone()) {
                Ok(steps) => {
                    h.run_script(sid, steps);
                    ok()
                }
                Err(e) => error_body(400, CODE_BAD_REQUEST, &format!("bad script: {e}")),
            }
        }
        ("POST", ["faults"]) => match serde_json::from_value::<Fault>(body) {
            Ok(f) => {
                h.fault(f);
                ok()
            }
            Err(e) => error_body(400, CODE_BAD_REQUEST, &format!("bad fault: {e}")),
        },
        ("POST", ["lifetimes"]) => {
            let st_cfg = h.config();
            h.set_lifetimes(
                body["accessSecs"].as_u64().unwrap_or(st_cfg.access_ttl),
                body["refreshSecs"].as_u64().unwrap_or(st_cfg.refresh_ttl),
            );
            ok()
        }
        _ => error_body(404, CODE_NOT_FOUND, "unknown control call"),
    }
}

/// `voice`: absent/null = none, `true` = the default voice, an object = a [`VoiceSpec`].
fn voice_of(v: &Value) -> Result<Option<VoiceSpec>, String> {
    let spec = match v {
        Value::Null | Value::Bool(false) => return Ok(None),
        Value::Bool(true) => VoiceSpec::default(),
        o => {
            serde_json::from_value::<VoiceSpec>(o.clone()).map_err(|e| format!("bad voice: {e}"))?
        }
    };
    spec.validate().map_err(|e| format!("bad voice: {e}"))?;
    Ok(Some(spec))
}

/// A member of the control API: `{"onlineId", "platform", "voice"}` (all optional).
fn member_of(m: &Value) -> Result<MemberSpec, String> {
    Ok(MemberSpec {
        online_id: m["onlineId"].as_str().unwrap_or("member").to_string(),
        platform: m["platform"].as_str().unwrap_or("PS5").to_string(),
        voice: voice_of(&m["voice"])?,
    })
}
