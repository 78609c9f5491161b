//! The simulator's HTTP side: every endpoint of PROTOCOL.md on one loopback port (auth, m.np,
//! serveraddr, partyInfo) plus the control API under `/_sim/`.

// Handlers return the HTTP answer itself as their error: it is built once per request.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::shape::{self, Shape};
use crate::state::{SimParty, State, MOBILE_APP};
use crate::Inner;

pub type Resp = Response<Full<Bytes>>;

/// Recorded error codes (PROTOCOL.md section 1).
pub const CODE_BAD_REQUEST: i64 = 2281473;
pub const CODE_NOT_PERMITTED: i64 = 2240526;
pub const CODE_NOT_FOUND: i64 = 2285581;
pub const CODE_RATE_LIMIT: i64 = 2138635;

pub fn error_body(status: u16, code: i64, message: &str) -> Resp {
    json_resp(
        status,
        json!({"error": {"referenceId": uuid::Uuid::new_v4().to_string(), "code": code, "message": message}}),
    )
}

pub fn json_resp(status: u16, v: Value) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("valid response")
}

fn empty(status: u16) -> Resp {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

/// RFC 6749 section 5.2 error body of the token endpoint [I].
fn oauth_error(status: u16, error: &str, description: &str) -> Resp {
    json_resp(
        status,
        json!({"error": error, "error_description": description}),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Auth,
    Api,
    ServerAddr,
    Web,
    /// Avatar images (src/profiles.rs): no token, like PSN's image CDN.
    Avatar,
    Control,
    Unknown,
}

pub struct Ctx {
    pub method: Method,
    pub path: String,
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    pub endpoint: &'static str,
}

impl Ctx {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn route(method: &Method, segs: &[&str]) -> (&'static str, Class) {
    use Class::*;
    let m = method.as_str();
    match (m, segs) {
        (_, ["_sim", ..]) => ("control", Control),
        ("GET", ["api", "authz", "v3", "oauth", "authorize"]) => ("authorize", Auth),
        ("POST", ["api", "authz", "v3", "oauth", "token"]) => ("token", Auth),
        ("POST", ["api", "sessionManager", "v2", "sys", "gameBase", "parties", "bulkGet"]) => {
            ("bulkGet", Api)
        }
        ("GET", ["api", "sessionManager", "v2", "partySessions"]) => ("partySessionsV3", Api),
        ("POST", ["api", "sessionManager", "v2", "partySessions"]) => ("createParty", Api),
        ("POST", ["api", "sessionManager", "v2", "partySessions", _, "members"]) => ("join", Api),
        ("PATCH", ["api", "sessionManager", "v2", "partySessions", _, "members", "me"]) => {
            ("updateMember", Api)
        }
        ("DELETE", ["api", "sessionManager", "v2", "partySessions", _, "members", "me"]) => {
            ("leave", Api)
        }
        ("POST", ["api", "sessionManager", "v2", "partySessions", _, "invitations"]) => {
            ("invitations", Api)
        }
        ("POST", ["api", "sessionManager", "v2", "partySessions", _, "bridges"]) => {
            ("linkBridge", Api)
        }
        ("POST", ["api", "sessionManager", "v2", "partySessions", _, "customMessage"]) => {
            ("customMessage", Api)
        }
        ("POST", ["api", "rtcBridge", "v1", "bridges"]) => ("createBridge", Api),
        ("GET", ["api", "rtcBridge", "v1", "bridges", _]) => ("getBridge", Api),
        ("DELETE", ["api", "rtcBridge", "v1", "bridges", _]) => ("deleteBridge", Api),
        ("POST", ["api", "rtcBridge", "v1", "bridges", _, "peers"]) => ("addPeer", Api),
        ("POST", ["api", "rtcBridge", "v1", "bridges", _, "peers", _, "answer"]) => ("answer", Api),
        ("POST", ["api", "rtcBridge", "v1", "bridges", _, "peers", _, "offer"]) => ("reoffer", Api),
        ("DELETE", ["api", "rtcBridge", "v1", "bridges", _, "peers", _]) => ("deletePeer", Api),
        ("GET", ["api", "userProfile", "v1", "internal", "users", _, "profiles"]) => {
            ("profile", Api)
        }
        ("GET", ["avatars", _, _]) => ("avatar", Avatar),
        ("GET", ["np", "serveraddr"]) => ("serveraddr", ServerAddr),
        ("GET", ["api", "cpss", "v1", "partyInfo", _]) => ("partyInfo", Web),
        _ => ("unknown", Unknown),
    }
}

/// The query parameters each endpoint has in PROTOCOL.md; others are recorded as unexpected.
fn known_query(endpoint: &str) -> &'static [&'static str] {
    match endpoint {
        "authorize" => &[
            "access_type",
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "cid",
            "service_entity",
            "ui",
            "smcid",
            // The device id the app sends (seeds' flows) [C, value not recorded].
            "duid",
        ],
        "bulkGet" => &["limit"],
        "partySessionsV3" => &["view"],
        "addPeer" => &["allow_duid_duplication", "g"],
        "getBridge" => &["fields"],
        "serveraddr" => &["version", "fields", "keepAliveStatusType"],
        "partyInfo" => &["country", "language"],
        _ => &[],
    }
}

pub async fn serve(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_string();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let seg_refs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (endpoint, class) = route(&parts.method, &seg_refs);
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let ctx = Ctx {
        method: parts.method,
        path,
        segs,
        query,
        headers: parts.headers,
        body,
        endpoint,
    };
    if class == Class::Control {
        return Ok(crate::control::handle(&inner, ctx).await);
    }
    // The network is down: the request reaches PSN when it comes back (TCP retransmits), unless
    // the client gave up first.
    let mut network = inner.network_up.subscribe();
    let _ = network.wait_for(|up| *up).await;
    // Faults and counting.
    let (delay, fault) = {
        let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        st.count(endpoint);
        for k in ctx.query.iter().map(|(k, _)| k.as_str()) {
            if !known_query(endpoint).contains(&k) {
                st.unexpected.push(format!("{endpoint}: query {k}"));
            }
        }
        let delay = st
            .faults
            .slow
            .take(endpoint)
            .then(|| Duration::from_millis(st.faults.slow_ms));
        let mut fault = None;
        if class != Class::Unknown {
            if st.faults.rate_limit.take(endpoint) {
                let mut r = json_resp(
                    429,
                    json!({"error": {"code": CODE_RATE_LIMIT, "message": "Rate limit exceeded"}}),
                );
                if let Some(s) = st.faults.rate_limit_retry_after {
                    r.headers_mut()
                        .insert("retry-after", s.to_string().parse().expect("digits"));
                }
                fault = Some(r);
            } else if st.faults.server_error.take(endpoint) {
                let s = st.faults.server_error_status;
                fault = Some(error_body(s, 0, "Service Unavailable"));
            } else if matches!(class, Class::Api | Class::ServerAddr)
                && st.faults.unauthorized.take(endpoint)
            {
                fault = Some(error_body(401, 0, "Unauthorized"));
            }
        }
        (delay, fault)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some(r) = fault {
        return Ok(r);
    }
    let resp = match class {
        Class::Auth => auth(&inner, &ctx),
        Class::Api | Class::ServerAddr => match api_checks(&inner, &ctx, class) {
            Err(r) => r,
            Ok(_) if class == Class::ServerAddr => {
                no_body(&inner, &ctx);
                json_resp(
                    200,
                    json!({"fqdn": inner.state.lock().unwrap_or_else(|e| e.into_inner()).push_addr}),
                )
            }
            Ok(account) => api(&inner, &ctx, &account),
        },
        Class::Web => party_info(&inner, &ctx),
        Class::Avatar => crate::profiles::avatar(&inner, &ctx),
        _ => error_body(404, CODE_NOT_FOUND, "Resource not found"),
    };
    let resp = bridge_media(&inner, &ctx, resp).await;
    if resp.status().as_u16() == 400 {
        let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        st.rejections
            .push(format!("{} {} -> 400", ctx.method, ctx.path));
    }
    Ok(resp)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The recorded m.np headers, the bearer token; returns the caller's account.
fn api_checks(inner: &Inner, ctx: &Ctx, class: Class) -> Result<String, Resp> {
    if ctx.header("user-agent").is_none_or(str::is_empty) {
        return Err(error_body(400, CODE_BAD_REQUEST, "Missing User-Agent"));
    }
    if class == Class::Api {
        if ctx
            .header("x-psn-request-id")
            .and_then(|v| uuid::Uuid::parse_str(v).ok())
            .is_none()
        {
            return Err(error_body(
                400,
                CODE_BAD_REQUEST,
                "x-psn-request-id must be a UUID",
            ));
        }
        if !ctx
            .header("x-psn-app-ver")
            .is_some_and(|v| v.starts_with("PlayStationApp-Android/"))
        {
            return Err(error_body(400, CODE_BAD_REQUEST, "Missing x-psn-app-ver"));
        }
        if ctx.segs.get(1).map(String::as_str) == Some("rtcBridge")
            && ctx.header("x-psn-rtc-title-id") != Some("METROPOL_AND")
        {
            return Err(error_body(
                400,
                CODE_BAD_REQUEST,
                "Missing X-PSN-RTC-TITLE-ID",
            ));
        }
    }
    let st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    let token = ctx
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| st.bearer_account(t)) {
        Some(a) => Ok(a),
        None => Err(error_body(401, 0, "Unauthorized")),
    }
}

/// Checks the JSON body against `shape`; 400 on errors, unexpected fields recorded.
fn body_json(
    inner: &Inner,
    ctx: &Ctx,
    shape: &Shape,
    exact_ct: Option<&str>,
) -> Result<Value, Resp> {
    let ct = ctx.header("content-type").unwrap_or("");
    let ok_ct = match exact_ct {
        Some(want) => ct.eq_ignore_ascii_case(want),
        None => ct
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")),
    };
    if !ok_ct {
        return Err(error_body(
            400,
            CODE_BAD_REQUEST,
            "Bad Request (content type)",
        ));
    }
    let v: Value = serde_json::from_slice(&ctx.body)
        .map_err(|_| error_body(400, CODE_BAD_REQUEST, "Bad Request (body: null)"))?;
    let mut errors = vec![];
    let mut unexpected = vec![];
    shape::check(shape, &v, "", &mut errors, &mut unexpected);
    if !unexpected.is_empty() {
        let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        st.unexpected.extend(
            unexpected
                .into_iter()
                .map(|u| format!("{}: {u}", ctx.endpoint)),
        );
    }
    if let Some(e) = errors.first() {
        return Err(error_body(
            400,
            CODE_BAD_REQUEST,
            &format!("Bad Request ({e})"),
        ));
    }
    Ok(v)
}

fn no_body(inner: &Inner, ctx: &Ctx) {
    if !ctx.body.is_empty() {
        inner
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unexpected
            .push(format!("{}: body on a bodiless request", ctx.endpoint));
    }
}

fn auth(inner: &Inner, ctx: &Ctx) -> Resp {
    let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    if ctx.header("user-agent").is_none_or(str::is_empty) {
        return oauth_error(400, "invalid_request", "Missing User-Agent");
    }
    if ctx.endpoint == "authorize" {
        for k in [
            "access_type",
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
        ] {
            if ctx.q(k).is_none() {
                return oauth_error(400, "invalid_request", &format!("{k} is required"));
            }
        }
        if ctx.q("client_id") != Some(st.cfg.client_id.as_str()) {
            return oauth_error(400, "invalid_client", "Bad client credentials");
        }
        if ctx.q("response_type") != Some("code") || ctx.q("access_type") != Some("offline") {
            return oauth_error(400, "invalid_request", "Bad response_type or access_type");
        }
        let npsso = ctx.header("cookie").and_then(|c| {
            c.split(';')
                .map(str::trim)
                .find_map(|kv| kv.strip_prefix("npsso="))
        });
        if npsso != Some(st.cfg.npsso.as_str()) {
            let loc = "https://my.account.sony.com/sonyacct/signin/?entry=%2Fsignin&error=login_required&error_code=4165&error_description=User+is+not+authenticated&no_captcha=false";
            return redirect(loc);
        }
        let code = format!("v3.{}", crate::state::random_token(6));
        let cid = uuid::Uuid::new_v4().to_string();
        let account = st.cfg.account_id.clone();
        st.codes.insert(code.clone(), (account, Instant::now()));
        st.remember_secrets([code.clone()]);
        crate::device::authorized(&mut st, &code, ctx.q("duid"));
        let redirect_uri = ctx.q("redirect_uri").unwrap_or_default();
        return redirect(&format!("{redirect_uri}/?code={code}&cid={cid}"));
    }
    // token
    if !ctx
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        return oauth_error(
            400,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", st.cfg.client_id, st.cfg.client_secret))
    );
    if ctx.header("authorization") != Some(want.as_str()) {
        return oauth_error(401, "invalid_client", "Bad client credentials");
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&ctx.body)
        .into_owned()
        .collect();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    let (required, allowed): (&[&str], &[&str]) = match grant {
        "authorization_code" => (
            &["code", "grant_type", "redirect_uri", "token_format"],
            &["cid", "scope"],
        ),
        "refresh_token" => (&["refresh_token", "grant_type", "token_format"], &["scope"]),
        _ => return oauth_error(400, "unsupported_grant_type", "Unsupported grant type"),
    };
    for k in form.keys() {
        if !required.contains(&k.as_str()) && !allowed.contains(&k.as_str()) {
            st.unexpected.push(format!("token: form {k}"));
        }
    }
    if let Some(k) = required.iter().find(|k| !form.contains_key(**k)) {
        return oauth_error(400, "invalid_request", &format!("{k} is required"));
    }
    if form["token_format"] != "jwt" {
        return oauth_error(400, "invalid_request", "token_format must be jwt");
    }
    if grant == "authorization_code" {
        match st.codes.remove(&form["code"]) {
            Some((account, at)) if at.elapsed() < Duration::from_secs(300) => {
                let answer = st.issue_tokens(&account, None);
                crate::device::tokens_issued(&mut st, &form["code"], &answer);
                json_resp(200, answer)
            }
            _ => oauth_error(400, "invalid_grant", "Invalid authorization code"),
        }
    } else {
        let rt = form["refresh_token"].clone();
        match st.refresh.get(&rt).cloned() {
            Some(t) if !t.revoked && t.expires > Instant::now() => {
                let answer = st.issue_tokens(&t.account_id, Some(rt.clone()));
                crate::device::tokens_issued(&mut st, &rt, &answer);
                json_resp(200, answer)
            }
            _ => oauth_error(400, "invalid_grant", "Invalid refresh token"),
        }
    }
}

fn redirect(location: &str) -> Resp {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", location)
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

fn party_info(inner: &Inner, ctx: &Ctx) -> Resp {
    if ctx.header("user-agent").is_none_or(str::is_empty) {
        return error_body(400, CODE_BAD_REQUEST, "Missing User-Agent");
    }
    no_body(inner, ctx);
    let st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    let link = ctx.segs.get(4).cloned().unwrap_or_default();
    let Some(p) = st.parties.values().find(|p| p.link_id == link) else {
        return error_body(404, CODE_NOT_FOUND, "Resource not found");
    };
    let host = p
        .members
        .first()
        .map(|m| m.account_id.clone())
        .unwrap_or_default();
    json_resp(
        200,
        json!({
            "sessionName": p.session_name, "isJoinable": true, "joinableFrom": "INVITE_ONLY", "msPollingInterval": 5000,
            "maxMembers": 16, "timeStarted": p.started, "inParty": false,
            "members": p.members.iter().map(|m| json!({"isHost": m.account_id == host, "onlineId": m.online_id,
                "platformId": m.platform, "accountId": m.account_id, "isAnonymous": false})).collect::<Vec<_>>(),
            "sessionId": p.session_id,
        }),
    )
}

fn party_mut<'a>(st: &'a mut State, sid: &str) -> Result<&'a mut SimParty, Resp> {
    st.parties
        .get_mut(sid)
        .ok_or_else(|| error_body(404, CODE_NOT_FOUND, "Resource not found"))
}

fn api(inner: &Inner, ctx: &Ctx, account: &str) -> Resp {
    match api_inner(inner, ctx, account) {
        Ok(r) | Err(r) => r,
    }
}

fn api_inner(inner: &Inner, ctx: &Ctx, account: &str) -> Result<Resp, Resp> {
    let sid = ctx.segs.get(4).cloned().unwrap_or_default();
    if !ctx.body.is_empty() {
        let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let order = crate::key_order::check(&ctx.body);
        st.unexpected
            .extend(order.into_iter().map(|u| format!("{}: {u}", ctx.endpoint)));
        st.request_bodies
            .push((ctx.endpoint.to_owned(), ctx.body.to_vec()));
    }
    let device = ctx
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| crate::device::of_token(&inner.lock(), t));
    match ctx.endpoint {
        "bulkGet" => {
            body_json(inner, ctx, &shape::bulk_get(), None)?;
            let st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let limit: usize = ctx.q("limit").and_then(|l| l.parse().ok()).unwrap_or(11);
            let parties: Vec<Value> = st
                .parties
                .values()
                .filter(|p| p.members.iter().any(|m| m.account_id == account))
                .take(limit)
                .map(|p| st.party_json(p, &p.members[0].account_id))
                .collect();
            Ok(json_resp(200, json!({"parties": parties})))
        }
        "partySessionsV3" => {
            no_body(inner, ctx);
            if ctx.q("view") != Some("v3") {
                return Err(error_body(400, CODE_BAD_REQUEST, "Bad Request (view)"));
            }
            let ids = ctx
                .header("x-psn-session-manager-session-ids")
                .ok_or_else(|| {
                    error_body(
                        400,
                        CODE_BAD_REQUEST,
                        "Missing X-PSN-SESSION-MANAGER-SESSION-IDS",
                    )
                })?;
            let st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let sessions: Vec<Value> = ids
                .split(',')
                .filter_map(|id| st.parties.get(id.trim()))
                .filter(|p| p.members.iter().any(|m| m.account_id == account))
                .map(|p| {
                    json!({"sessionId": p.session_id, "sessionName": p.session_name, "maxMembers": 16,
                           "members": p.members, "bridges": p.bridges.iter().map(|b| json!({"bridgeId": b})).collect::<Vec<_>>()})
                })
                .collect();
            Ok(json_resp(200, json!({"partySessions": sessions})))
        }
        "createParty" => {
            let v = body_json(inner, ctx, &shape::create_party(), None)?;
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let online = st.online_ids.get(account).cloned().unwrap_or_default();
            let name = v["v2PartySessions"][0]["sessionName"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let sid = crate::new_party(
                &mut st,
                &name,
                vec![(account.to_string(), online, MOBILE_APP.to_string())],
            );
            Ok(json_resp(
                201,
                json!({"v2PartySessions": [{"sessionId": sid}]}),
            ))
        }
        "join" => {
            let v = body_json(inner, ctx, &shape::join(), None)?;
            let m = &v["members"][0];
            if m["accountId"] != "me" || m["platform"] != "me" {
                return Err(error_body(403, CODE_NOT_PERMITTED, "Not permitted"));
            }
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let online = st.online_ids.get(account).cloned().unwrap_or_default();
            let mut member = st.make_member(account, &online, MOBILE_APP);
            if let Some(cd4) = m["customData4"].as_str() {
                member.custom_data4 = cd4.to_string();
            }
            if let Some(d) = &device {
                member.device_unique_id = d.clone();
            }
            let p = party_mut(&mut st, &sid)?;
            if !p.members.iter().any(|x| x.account_id == account) {
                // Only someone already in the party (on a console) or invited may join [I].
                return Err(error_body(403, CODE_NOT_PERMITTED, "Not permitted"));
            }
            // One membership per device [I]: a client that crashed is still a member until it
            // (or someone) removes that membership; joining again from the same device is
            // refused, so the client must find and leave its old membership first.
            if p.members.iter().any(|x| {
                x.account_id == account
                    && x.platform == MOBILE_APP
                    && x.device_unique_id == member.device_unique_id
            }) {
                return Err(error_body(
                    409,
                    CODE_BAD_REQUEST,
                    "Conflict (this device is already a member)",
                ));
            }
            // Another device of the account on MOBILE_APP (an old install): replaced, as
            // before devices were modelled.
            p.members
                .retain(|x| !(x.account_id == account && x.platform == MOBILE_APP));
            if p.members.len() >= 16 {
                return Err(error_body(400, CODE_BAD_REQUEST, "Party is full"));
            }
            p.members.push(member.clone());
            let data = json!({"sessionId": sid, "customProperties": {"from": member.from_ref()}, "members": [member]});
            st.push_to_party(&sid, "v2:ps:members:created", data, &[]);
            crate::signal_rules::user_joined(&mut st, &sid);
            Ok(empty(201))
        }
        "updateMember" => {
            let v = body_json(inner, ctx, &shape::update_member(), None)?;
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let p = party_mut(&mut st, &sid)?;
            let Some(m) = p
                .members
                .iter_mut()
                .find(|x| x.account_id == account && x.platform == MOBILE_APP)
            else {
                return Err(error_body(
                    403,
                    CODE_NOT_PERMITTED,
                    "only session members permitted",
                ));
            };
            m.custom_data4 = v["customData4"].as_str().unwrap_or_default().to_string();
            let data = json!({"sessionId": sid, "customProperties": {"from": m.from_ref()}, "customData4": m.custom_data4});
            st.push_to_party(&sid, "v2:ps:m:customData4:updated", data, &[]);
            Ok(empty(204))
        }
        "leave" => {
            no_body(inner, ctx);
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let p = party_mut(&mut st, &sid)?;
            let mine =
                |x: &crate::state::SimMember| x.account_id == account && x.platform == MOBILE_APP;
            // "me" is the caller's device's membership; without a device, the account's app one.
            let Some(i) = p
                .members
                .iter()
                .position(|x| mine(x) && device.as_ref().is_some_and(|d| *d == x.device_unique_id))
                .or_else(|| p.members.iter().position(mine))
            else {
                return Err(error_body(404, CODE_NOT_FOUND, "Resource not found"));
            };
            let m = p.members.remove(i);
            crate::after_leave(&mut st, &sid, m);
            Ok(empty(204))
        }
        "invitations" => {
            body_json(inner, ctx, &shape::invitations(), None)?;
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            party_mut(&mut st, &sid)?;
            Ok(empty(201))
        }
        "linkBridge" => {
            let v = body_json(inner, ctx, &shape::link_bridge(), None)?;
            if ctx.header("x-psn-session-manager-ignore-conflict") != Some("true") {
                return Err(error_body(
                    400,
                    CODE_BAD_REQUEST,
                    "Missing X-PSN-SESSION-MANAGER-IGNORE-CONFLICT",
                ));
            }
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let bid = v["bridges"][0]["bridgeId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let btok = v["bridges"][0]["bridgeToken"].as_str().unwrap_or_default();
            if st.bridges.get(&bid).is_none_or(|b| b.token != btok) {
                return Err(error_body(400, CODE_BAD_REQUEST, "Bad Request (bridge)"));
            }
            party_mut(&mut st, &sid)?.bridges.push(bid);
            Ok(empty(201))
        }
        "customMessage" => {
            let v = body_json(
                inner,
                ctx,
                &shape::custom_message(),
                Some("application/json; charset=utf-8"),
            )?;
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let p = party_mut(&mut st, &sid)?;
            if !p
                .members
                .iter()
                .any(|x| x.account_id == account && x.platform == MOBILE_APP)
            {
                return Err(error_body(
                    403,
                    CODE_NOT_PERMITTED,
                    "only session members permitted",
                ));
            }
            if st.faults.custom_message_400.take("customMessage") {
                return Err(error_body(
                    400,
                    CODE_BAD_REQUEST,
                    "Bad Request (body: null)",
                ));
            }
            let payload = v["payload"].as_str().unwrap_or_default().to_string();
            if !payload_looks_right(&payload, account) {
                return Err(error_body(
                    400,
                    CODE_BAD_REQUEST,
                    "Bad Request (body: null)",
                ));
            }
            let channel = v["channel"].as_str().unwrap_or_default().to_string();
            let to = v.get("to").cloned().unwrap_or(Value::Null);
            let targets: Vec<String> = to
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|t| t["accountId"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if targets.iter().any(|t| t == account) {
                crate::console::disturbed(
                    &mut st,
                    "the MOBILE_APP device sent a customMessage to the user's own account".into(),
                );
            }
            // PSN passes it on; a member's console would trip over a broken one, so it is
            // recorded and not delivered (src/signal_rules.rs).
            if let Err(rule) = crate::signal_rules::check(&mut st, &sid, &payload, &targets) {
                st.signal_violations.push(format!("to {targets:?}: {rule}"));
                return Ok(empty(204));
            }
            route_user_message(&mut st, &sid, account, &channel, &payload, to);
            Ok(empty(204))
        }
        "profile" => {
            no_body(inner, ctx);
            Ok(crate::profiles::profile(inner, ctx))
        }
        "createBridge" => {
            body_json(inner, ctx, &shape::create_bridge(), None)?;
            let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            let id = uuid::Uuid::new_v4().to_string();
            let token = crate::state::random_token(32);
            st.remember_secrets([token.clone()]);
            st.bridges.insert(
                id.clone(),
                crate::state::SimBridge {
                    token: token.clone(),
                    peers: Default::default(),
                },
            );
            Ok(json_resp(
                201,
                json!({"bridge": {"bridgeId": id, "bridgeToken": token, "bridgeHostingType": "us1_uksaws_1"}}),
            ))
        }
        "getBridge" | "deleteBridge" | "addPeer" | "answer" | "reoffer" | "deletePeer" => {
            bridge(inner, ctx)
        }
        _ => Err(error_body(404, CODE_NOT_FOUND, "Resource not found")),
    }
}

/// Records a customMessage the user sent and hands it to the hooks of the members it names
/// (`to`), or of every other member when `to` is absent.
pub(crate) fn route_user_message(
    st: &mut State,
    sid: &str,
    account: &str,
    channel: &str,
    payload: &str,
    to: Value,
) {
    let members: Vec<String> = st
        .parties
        .get(sid)
        .map(|p| p.members.iter().map(|m| m.account_id.clone()).collect())
        .unwrap_or_default();
    let targets: Vec<String> = match to.as_array() {
        Some(list) => list
            .iter()
            .filter_map(|t| t["accountId"].as_str().map(str::to_string))
            .collect(),
        None => members.into_iter().filter(|a| a != account).collect(),
    };
    st.received.push(crate::state::ReceivedMessage {
        session_id: sid.to_string(),
        channel: channel.to_string(),
        payload: payload.to_string(),
        to,
    });
    for t in targets {
        if let Some(hook) = st.member_hooks.get(&t) {
            let _ = hook.send(crate::state::MemberInbound {
                session_id: sid.to_string(),
                to_account_id: t.clone(),
                channel: channel.to_string(),
                payload: payload.to_string(),
            });
        }
    }
}

/// `ver=1.0, type=binary, body=<base64>` with the 44-byte header naming the sender's own account
/// (a foreign account id in the header is the suspected cause of the reported 400 [I]).
pub(crate) fn payload_looks_right(p: &str, account: &str) -> bool {
    let Some(b) = p
        .strip_prefix("ver=1.0, type=binary, body=")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
    else {
        return false;
    };
    if b.len() <= 44 || b[0..4] != [1, 0, 0, 0] || b[8..12] != [1, 0, 0, 0] {
        return false;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&b[16..24]);
    u64::from_le_bytes(id).to_string() == account
}

pub const BRIDGE_OFFER_SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtpmap:111 opus/16000/2\r\na=ptime:40\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sctp-port:5000\r\n";

/// After a bridge call succeeded: its media (src/bridge_voice.rs). A new peer on a bridge linked
/// to a party gets a live offer in place of the static one; an answer is applied to it; deleting
/// closes it.
async fn bridge_media(inner: &Arc<Inner>, ctx: &Ctx, resp: Resp) -> Resp {
    use crate::bridge_voice as media;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return resp;
    }
    let bid = ctx.segs.get(4).cloned().unwrap_or_default();
    let pid = ctx.segs.get(6).cloned().unwrap_or_default();
    match ctx.endpoint {
        "addPeer" | "reoffer" => {
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let pid = if ctx.endpoint == "addPeer" {
                v["peer"]["peerId"].as_str().unwrap_or_default().to_owned()
            } else {
                pid
            };
            match media::offer(inner, &bid, &pid).await {
                Some(Ok(sdp)) => {
                    if ctx.endpoint == "addPeer" {
                        v["peer"]["offer"]["sdp"] = Value::String(sdp);
                    } else {
                        v["offer"]["sdp"] = Value::String(sdp);
                    }
                }
                Some(Err(e)) => inner
                    .lock()
                    .rejections
                    .push(format!("bridge peer {pid}: offer: {e}")),
                None => {}
            }
            json_resp(status, v)
        }
        "answer" => {
            let v: Value = serde_json::from_slice(&ctx.body).unwrap_or(Value::Null);
            let sdp = v["answer"]["sdp"].as_str().unwrap_or_default();
            match media::answer(inner, &pid, sdp).await {
                Ok(_) => resp,
                Err(e) => {
                    inner
                        .lock()
                        .rejections
                        .push(format!("bridge peer {pid}: answer: {e}"));
                    error_body(400, CODE_BAD_REQUEST, "Bad Request (sdp)")
                }
            }
        }
        "deletePeer" => {
            media::close(inner, &pid).await;
            resp
        }
        "deleteBridge" => {
            media::close_bridge(inner, &bid).await;
            resp
        }
        _ => resp,
    }
}

fn bridge(inner: &Inner, ctx: &Ctx) -> Result<Resp, Resp> {
    let bid = ctx.segs.get(4).cloned().unwrap_or_default();
    let pid = ctx.segs.get(6).cloned();
    let body_shape = match ctx.endpoint {
        "addPeer" | "reoffer" => Some(shape::media_types()),
        "answer" => Some(shape::answer()),
        _ => None,
    };
    let v = match &body_shape {
        Some(s) => body_json(inner, ctx, s, None)?,
        None => {
            no_body(inner, ctx);
            Value::Null
        }
    };
    let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    let b = st
        .bridges
        .get_mut(&bid)
        .ok_or_else(|| error_body(404, CODE_NOT_FOUND, "Resource not found"))?;
    // Recorded on add-peer; required on every call about this bridge (the plugin sends it on
    // all of them [I]), so a call without the bridge's token is refused.
    let token_ok = ctx.header("x-psn-bridge-token") == Some(b.token.as_str());
    if !token_ok {
        return Err(error_body(403, CODE_NOT_PERMITTED, "Not permitted"));
    }
    match ctx.endpoint {
        "getBridge" => Ok(json_resp(
            200,
            json!({"bridge": {"bridgeId": bid, "peers": b.peers.keys().map(|p| json!({"peerId": p})).collect::<Vec<_>>()}}),
        )),
        "deleteBridge" => {
            st.bridges.remove(&bid);
            for p in st.parties.values_mut() {
                p.bridges.retain(|x| x != &bid);
            }
            Ok(empty(202))
        }
        "addPeer" => {
            if ctx.q("allow_duid_duplication") != Some("false") || ctx.q("g") != Some("2") {
                return Err(error_body(400, CODE_BAD_REQUEST, "Bad Request (query)"));
            }
            let peer = uuid::Uuid::new_v4().to_string();
            b.peers.insert(peer.clone(), None);
            Ok(json_resp(
                201,
                json!({"peer": {"peerId": peer, "offer": {"sdp": BRIDGE_OFFER_SDP}}}),
            ))
        }
        _ => {
            let pid = pid.unwrap_or_default();
            let slot = b
                .peers
                .get_mut(&pid)
                .ok_or_else(|| error_body(404, CODE_NOT_FOUND, "Resource not found"))?;
            match ctx.endpoint {
                "answer" => {
                    let sdp = v["answer"]["sdp"].as_str().unwrap_or_default();
                    if !sdp.starts_with("v=0") {
                        return Err(error_body(400, CODE_BAD_REQUEST, "Bad Request (sdp)"));
                    }
                    *slot = Some(sdp.to_string());
                    Ok(empty(204))
                }
                "reoffer" => Ok(json_resp(200, json!({"offer": {"sdp": BRIDGE_OFFER_SDP}}))),
                _ => {
                    b.peers.remove(&pid);
                    Ok(empty(202))
                }
            }
        }
    }
}
