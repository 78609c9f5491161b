//! psn-sim: a strict simulator of the PSN endpoints obs-psn-party speaks (PROTOCOL.md), on
//! loopback only. Tests start it in-process with [`start`]; the `psn-sim` binary runs it for demos.
//! See docs/psn-sim.md for the control API.

pub mod bridge_voice;
pub mod cmsg;
pub mod console;
pub mod control;
pub mod device;
pub mod http;
pub mod key_order;
mod peer;
pub mod profiles;
pub mod push;
pub mod relay;
pub mod shape;
pub mod signal_rules;
pub mod state;
pub mod voice;
pub mod voice_net;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};

pub use state::{Fault, MemberInbound, ReceivedMessage, SimConfig, UserInbound};
use state::{SimMember, State, MOBILE_APP};
pub use voice::{MemberSpec, Network, VoiceSpec, VoiceStatus};

pub struct Inner {
    pub state: Mutex<State>,
    pub push_changed: Notify,
    /// Whether the network works (`SimHandle::set_network`): while false, HTTP answers and
    /// push frames are held and the members' media packets are dropped (src/relay.rs).
    pub network_up: watch::Sender<bool>,
    /// Avatar modes and counters (src/profiles.rs).
    pub profiles: profiles::Profiles,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running simulator. Dropping it stops its servers.
pub struct SimHandle {
    inner: Arc<Inner>,
    http_addr: SocketAddr,
    push_addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A party made by [`SimHandle::start_party`].
#[derive(Debug, Clone)]
pub struct PartySetup {
    pub session_id: String,
    pub link_id: String,
    /// (account id, online id, platform) of the scripted members, the user's console first.
    pub members: Vec<(String, String, String)>,
}

/// One step of a scripted party.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptStep {
    pub after_ms: u64,
    pub join: Option<JoinSpec>,
    pub leave: Option<String>,
    #[serde(default)]
    pub end: bool,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinSpec {
    pub online_id: String,
    pub platform: String,
    /// The joiner's voice (none: roster-only unless the sim-wide default gives one).
    #[serde(default)]
    pub voice: Option<VoiceSpec>,
}

/// Starts the simulator on 127.0.0.1 (HTTP and push each on a free port).
pub async fn start(cfg: SimConfig) -> std::io::Result<SimHandle> {
    start_on(cfg, 0, 0).await
}

/// Starts the simulator on 127.0.0.1 with the given ports (0 = any free port).
pub async fn start_on(
    cfg: SimConfig,
    http_port: u16,
    push_port: u16,
) -> std::io::Result<SimHandle> {
    let http_l = TcpListener::bind((Ipv4Addr::LOCALHOST, http_port)).await?;
    let push_l = TcpListener::bind((Ipv4Addr::LOCALHOST, push_port)).await?;
    let http_addr = http_l.local_addr()?;
    let push_addr = push_l.local_addr()?;
    let faults = cfg.faults.clone();
    let mut st = State::new(cfg);
    st.push_addr = push_addr.to_string();
    for f in faults {
        st.apply_fault(f);
    }
    let inner = Arc::new(Inner {
        state: Mutex::new(st),
        push_changed: Notify::new(),
        network_up: watch::channel(true).0,
        profiles: profiles::Profiles::default(),
    });
    let i2 = inner.clone();
    let http_task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = http_l.accept().await else {
                continue;
            };
            let i3 = i2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| http::serve(i3.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let push_task = tokio::spawn(push::listen(inner.clone(), push_l));
    Ok(SimHandle {
        inner,
        http_addr,
        push_addr,
        tasks: vec![http_task, push_task],
    })
}

pub(crate) fn new_party(
    st: &mut State,
    name: &str,
    members: Vec<(String, String, String)>,
) -> String {
    let sid = uuid::Uuid::new_v4().to_string();
    let link_id = state::random_token(10);
    let members: Vec<SimMember> = members
        .iter()
        .map(|(a, o, p)| st.make_member(a, o, p))
        .collect();
    st.parties.insert(
        sid.clone(),
        state::SimParty {
            session_id: sid.clone(),
            session_name: name.to_string(),
            link_id,
            members,
            bridges: vec![],
            started: (state::unix_millis() / 1000) as u64,
        },
    );
    sid
}

/// Pushes the leave (to the party and the leaver) and ends an empty party.
pub(crate) fn after_leave(st: &mut State, sid: &str, m: SimMember) {
    let data = json!({"sessionId": sid, "customProperties": {"from": m.from_ref()}, "members": [{"accountId": m.account_id, "onlineId": m.online_id, "platform": m.platform}]});
    st.push_to_party(
        sid,
        "v2:ps:members:deleted",
        data,
        std::slice::from_ref(&m.account_id),
    );
    if st.parties.get(sid).is_some_and(|p| p.members.is_empty()) {
        st.parties.remove(sid);
        let data =
            json!({"sessionId": sid, "customProperties": {"deletedEvenCause": "LAST_MEMBER_LEFT"}});
        st.push_to_party(
            sid,
            "outside:v2:partySession:deleted",
            data,
            &[m.account_id],
        );
    }
}

/// Member `from` posts a customMessage to the party: pushed as
/// `v2:ps:customMessage:noSeq:created` to every member's push connections, and to the in-process
/// taps of [`SimHandle::user_messages`].
pub(crate) fn member_post(
    inner: &Inner,
    sid: &str,
    from: &str,
    channel: &str,
    payload: &str,
) -> bool {
    member_post_from(inner, sid, (from, None), channel, payload)
}

/// [`member_post`] from one device of an account (`platform`; `None`: the account's first
/// membership). The server names the real sender in `customProperties.from`, whatever the
/// payload claims; an outsider (an account not in the party, `VoiceSpec::outsider`) is named
/// the same way (docs/psn-sim.md "Impostors and outsiders").
pub(crate) fn member_post_from(
    inner: &Inner,
    sid: &str,
    (from, platform): (&str, Option<&str>),
    channel: &str,
    payload: &str,
) -> bool {
    let mut st = inner.lock();
    let Some(party) = st.parties.get(sid) else {
        return false;
    };
    let sender = party
        .members
        .iter()
        .find(|m| m.account_id == from && platform.is_none_or(|p| p == m.platform))
        .map(|m| m.from_ref())
        .or_else(|| st.outsiders.get(from).cloned());
    let Some(sender) = sender else {
        return false;
    };
    let data = json!({"sessionId": sid, "customProperties": {"from": sender},
                      "customMessage": {"channel": channel, "payload": payload}});
    st.push_to_party(sid, "v2:ps:customMessage:noSeq:created", data, &[]);
    console::deliver(&st, sid, from, payload);
    let msg = UserInbound {
        session_id: sid.to_string(),
        from_account_id: from.to_string(),
        channel: channel.to_string(),
        payload: payload.to_string(),
    };
    st.user_taps.retain(|t| t.send(msg.clone()).is_ok());
    true
}

impl SimHandle {
    /// `http://127.0.0.1:<port>`: every PSN host's base URL.
    /// The plugin's configuration for this simulator, as `.env` lines would
    /// give it (DESIGN.md's configuration contract): the four base URLs, the
    /// client credentials, the NPSSO, and voice on loopback without STUN.
    pub fn plugin_env(&self) -> Vec<(&'static str, String)> {
        let c = self.config();
        let base = self.base_url();
        vec![
            ("PSN_AUTH_BASE_URL", base.clone()),
            ("PSN_API_BASE_URL", base.clone()),
            ("PSN_PUSH_BASE_URL", base.clone()),
            ("PSN_WEB_BASE_URL", base),
            ("PSN_CLIENT_ID", c.client_id),
            ("PSN_CLIENT_SECRET", c.client_secret),
            ("PSN_NPSSO", c.npsso),
            // Voice on loopback too, and no STUN server: nothing leaves the machine.
            ("PSN_VOICE_BIND", "127.0.0.1".to_owned()),
            ("PSN_STUN_SERVERS", String::new()),
        ]
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    pub fn push_addr(&self) -> SocketAddr {
        self.push_addr
    }

    pub fn config(&self) -> SimConfig {
        self.inner.lock().cfg.clone()
    }

    /// Sets token lifetimes for tokens issued from now on ("short lifetimes on request").
    pub fn set_lifetimes(&self, access_secs: u64, refresh_secs: u64) {
        let mut st = self.inner.lock();
        st.cfg.access_ttl = access_secs;
        st.cfg.refresh_ttl = refresh_secs;
    }

    /// A party with the user's own console (PS5) and the given members (online id, platform).
    /// Members are roster-only unless [`SimHandle::set_default_voice`] gave a default voice.
    pub fn start_party(&self, name: &str, members: &[(&str, &str)]) -> PartySetup {
        let specs: Vec<MemberSpec> = members
            .iter()
            .map(|(o, p)| MemberSpec::roster(o, p))
            .collect();
        self.start_party_with(name, &specs)
    }

    /// A party with the user's own console (PS5) and the given members; each member with a
    /// voice (its own, or the sim-wide default) becomes a WebRTC peer once the user's
    /// MOBILE_APP member joins (docs/psn-sim.md "Voice members").
    pub fn start_party_with(&self, name: &str, members: &[MemberSpec]) -> PartySetup {
        let mut voices = vec![];
        let (sid, link_id, list) = {
            let mut st = self.inner.lock();
            let mut list = vec![(
                st.cfg.account_id.clone(),
                st.cfg.online_id.clone(),
                "PS5".to_string(),
            )];
            for m in members {
                let a = st.new_account(&m.online_id);
                let voice = m.voice.clone().or_else(|| st.default_voice.clone());
                if let Some(v) = voice.clone() {
                    voices.push((a.clone(), m.online_id.clone(), m.platform.clone(), v));
                }
                if voice.is_some_and(|v| v.outsider) {
                    // Not in the party: PSN still names it as the sender of what it posts.
                    let from = json!({"accountId": a, "deviceUniqueId": format!("sim-duid-{a}-{}", m.platform),
                                      "joinOrder": 0, "onlineId": m.online_id, "platform": m.platform});
                    st.outsiders.insert(a, from);
                    continue;
                }
                list.push((a, m.online_id.clone(), m.platform.clone()));
            }
            let sid = new_party(&mut st, name, list.clone());
            let link_id = st.parties[&sid].link_id.clone();
            (sid, link_id, list)
        };
        for (a, o, p, v) in voices {
            voice::spawn_member(&self.inner, &sid, &a, &o, &p, v);
        }
        PartySetup {
            session_id: sid,
            link_id,
            members: list,
        }
    }

    /// A member joins (pushed to everyone in the party). Returns the member's account id.
    pub fn member_join(&self, sid: &str, online_id: &str, platform: &str) -> Option<String> {
        self.member_join_with(sid, &MemberSpec::roster(online_id, platform))
    }

    /// A member joins with an optional voice (or the sim-wide default). Returns its account id.
    pub fn member_join_with(&self, sid: &str, spec: &MemberSpec) -> Option<String> {
        let (account, voice) = {
            let mut st = self.inner.lock();
            if !st.parties.contains_key(sid) {
                return None;
            }
            let account = st.new_account(&spec.online_id);
            let m = st.make_member(&account, &spec.online_id, &spec.platform);
            let p = st.parties.get_mut(sid)?;
            p.members.push(m.clone());
            let data = json!({"sessionId": sid, "customProperties": {"from": m.from_ref()}, "members": [m]});
            st.push_to_party(sid, "v2:ps:members:created", data, &[]);
            let voice = spec.voice.clone().or_else(|| st.default_voice.clone());
            (account, voice)
        };
        if let Some(v) = voice {
            voice::spawn_member(
                &self.inner,
                sid,
                &account,
                &spec.online_id,
                &spec.platform,
                v,
            );
        }
        Some(account)
    }

    /// The voice every member made without a voice spec gets from now on (`None`: roster-only).
    pub fn set_default_voice(&self, v: Option<VoiceSpec>) {
        self.inner.lock().default_voice = v;
    }

    /// Changes a voice member's sender-side impairments from its next packet on (false: no
    /// such voice member, or the values are out of range).
    pub fn set_member_network(&self, account_id: &str, net: Network) -> bool {
        if net.validate().is_err() {
            return false;
        }
        match self.inner.lock().voice_status.get_mut(account_id) {
            Some(v) => {
                v.network = net;
                true
            }
            None => false,
        }
    }

    /// Takes the network away (false) or gives it back (true), for the user and every voice
    /// member at once, the way a dead router does: requests and push frames wait (as TCP
    /// would retransmit them), media packets of peer-to-peer members vanish both ways. The
    /// bridge path's media is not cut (docs/psn-sim.md).
    pub fn set_network(&self, up: bool) {
        self.inner.network_up.send_replace(up);
    }

    /// Media packets the relays dropped while the network was down, since the process started.
    pub fn network_dropped_packets(&self) -> u64 {
        relay::DROPPED_WHILE_DOWN.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The voice member's peer connection dies: closed at once, with nothing said in
    /// signalling (false: no such voice member). The member answers the next offer it gets.
    pub fn member_drop_voice(&self, account_id: &str) -> bool {
        let mut inner = self.inner.lock();
        if !inner.voice_status.contains_key(account_id) {
            return false;
        }
        inner.voice_drop_requests.insert(account_id.to_owned());
        true
    }

    /// What each voice member has done (signalling counts, packets, state), by account id order.
    pub fn voice_status(&self) -> Vec<VoiceStatus> {
        self.inner.lock().voice_status.values().cloned().collect()
    }

    /// What bridges send down from now on (src/bridge_voice.rs).
    pub fn set_bridge_audio(&self, mode: bridge_voice::BridgeAudio) {
        self.inner.lock().bridge_audio = mode;
    }

    /// Every bridge peer with live media, by peer id.
    pub fn bridge_status(&self) -> Vec<bridge_voice::BridgeStatus> {
        bridge_voice::status(&self.inner).into_values().collect()
    }

    /// In-process stand-in for the plugin's `POST .../members`: the user's MOBILE_APP member
    /// joins `sid` (pushed like the HTTP join). False when there is no such party.
    pub fn user_join(&self, sid: &str) -> bool {
        let mut st = self.inner.lock();
        let account = st.cfg.account_id.clone();
        let online = st.cfg.online_id.clone();
        let member = st.make_member(&account, &online, MOBILE_APP);
        let Some(p) = st.parties.get_mut(sid) else {
            return false;
        };
        p.members
            .retain(|x| !(x.account_id == account && x.platform == MOBILE_APP));
        p.members.push(member.clone());
        let data = json!({"sessionId": sid, "customProperties": {"from": member.from_ref()}, "members": [member]});
        st.push_to_party(sid, "v2:ps:members:created", data, &[]);
        true
    }

    /// In-process stand-in for the plugin's leave: the user's MOBILE_APP member leaves `sid`.
    pub fn user_leave(&self, sid: &str) -> bool {
        let mut st = self.inner.lock();
        let account = st.cfg.account_id.clone();
        let Some(p) = st.parties.get_mut(sid) else {
            return false;
        };
        let Some(i) = p
            .members
            .iter()
            .position(|x| x.account_id == account && x.platform == MOBILE_APP)
        else {
            return false;
        };
        let m = p.members.remove(i);
        after_leave(&mut st, sid, m);
        true
    }

    /// Every customMessage members post from now on, as the user's push socket gets them.
    pub fn user_messages(&self) -> mpsc::UnboundedReceiver<UserInbound> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.lock().user_taps.push(tx);
        rx
    }

    /// In-process stand-in for the plugin's `POST .../customMessage`: the user sends `payload`
    /// to member `to_account` (checked like the HTTP path: the user must be in the party on
    /// MOBILE_APP and the header must name the user; else `Err` and a rejection).
    pub fn user_send_custom_message(
        &self,
        sid: &str,
        to_account: &str,
        channel: &str,
        payload: &str,
    ) -> Result<(), String> {
        let mut st = self.inner.lock();
        let account = st.cfg.account_id.clone();
        let joined = st.parties.get(sid).is_some_and(|p| {
            p.members
                .iter()
                .any(|x| x.account_id == account && x.platform == MOBILE_APP)
        });
        if !joined {
            return Err("only session members permitted".into());
        }
        if !http::payload_looks_right(payload, &account) {
            st.rejections.push(format!(
                "customMessage (in-process): bad payload to {to_account}"
            ));
            return Err("Bad Request (body: null)".into());
        }
        let platform = st
            .parties
            .get(sid)
            .and_then(|p| p.members.iter().find(|m| m.account_id == to_account))
            .map(|m| m.platform.clone())
            .unwrap_or_default();
        http::route_user_message(
            &mut st,
            sid,
            &account,
            channel,
            payload,
            json!([{"accountId": to_account, "platform": platform}]),
        );
        Ok(())
    }

    /// A member leaves (every entry of that account). False when there was no such member.
    pub fn member_leave(&self, sid: &str, account_id: &str) -> bool {
        let mut st = self.inner.lock();
        let Some(p) = st.parties.get_mut(sid) else {
            return false;
        };
        let gone: Vec<SimMember> = p
            .members
            .iter()
            .filter(|m| m.account_id == account_id)
            .cloned()
            .collect();
        p.members.retain(|m| m.account_id != account_id);
        for m in gone.iter().cloned() {
            after_leave(&mut st, sid, m);
        }
        !gone.is_empty()
    }

    /// Ends the party: everyone gets `outside:v2:partySession:deleted`.
    pub fn end_party(&self, sid: &str) -> bool {
        let mut st = self.inner.lock();
        let Some(p) = st.parties.remove(sid) else {
            return false;
        };
        let accounts: Vec<String> = p.members.iter().map(|m| m.account_id.clone()).collect();
        let data =
            json!({"sessionId": sid, "customProperties": {"deletedEvenCause": "LAST_MEMBER_LEFT"}});
        st.push_to_party(sid, "outside:v2:partySession:deleted", data, &accounts);
        true
    }

    /// The member hook, sending side: member `from` posts a customMessage to the party (pushed
    /// as `v2:ps:customMessage:noSeq:created` to every other member's push connections).
    pub fn member_send_custom_message(
        &self,
        sid: &str,
        from: &str,
        channel: &str,
        payload: &str,
    ) -> bool {
        member_post(&self.inner, sid, from, channel, payload)
    }

    /// Makes the user's own console (the PS5 member of every party) a voice peer that every
    /// voice member made from now on offers to first (src/console.rs). Needs a tokio runtime.
    pub fn set_console_voice(&self, on: bool) {
        console::enable(&self.inner, on);
    }

    /// The console's links with the members, and every time signalling from the user's
    /// MOBILE_APP device disturbed them (an answer to an offer meant for the console, a message
    /// to the console).
    pub fn console_status(&self) -> console::ConsoleStatus {
        console::status(&self.inner.lock())
    }

    /// Every device id (`duid`) the user signed in with, in the order first seen.
    pub fn device_ids(&self) -> Vec<String> {
        self.inner.lock().devices_seen.clone()
    }

    /// Signalling from the user's device that broke a rule (src/signal_rules.rs): such messages
    /// were not delivered.
    pub fn signal_violations(&self) -> Vec<String> {
        self.inner.lock().signal_violations.clone()
    }

    /// The raw bodies of the m.np requests received for `endpoint`, in order.
    pub fn request_bodies(&self, endpoint: &str) -> Vec<Vec<u8>> {
        self.inner
            .lock()
            .request_bodies
            .iter()
            .filter(|(e, _)| e == endpoint)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// A crashed client's membership: the user's MOBILE_APP member of the device the user last
    /// signed in with is in `sid` (without telling anyone: it joined before the crash). PSN
    /// keeps it until it is removed. False without a party or a device seen.
    pub fn place_stale_membership(&self, sid: &str) -> bool {
        let mut st = self.inner.lock();
        let Some(duid) = st.devices_seen.last().cloned() else {
            return false;
        };
        let account = st.cfg.account_id.clone();
        let online = st.cfg.online_id.clone();
        let mut member = st.make_member(&account, &online, MOBILE_APP);
        member.device_unique_id = duid;
        let Some(p) = st.parties.get_mut(sid) else {
            return false;
        };
        p.members.push(member);
        true
    }

    /// The user's MOBILE_APP memberships in `sid` (device ids), for tests of rejoining.
    pub fn user_app_memberships(&self, sid: &str) -> Vec<String> {
        let st = self.inner.lock();
        let account = st.cfg.account_id.clone();
        st.parties
            .get(sid)
            .map(|p| {
                p.members
                    .iter()
                    .filter(|m| m.account_id == account && m.platform == MOBILE_APP)
                    .map(|m| m.device_unique_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The member hook, receiving side: every customMessage the user sends to `account_id`.
    pub fn member_inbox(&self, account_id: &str) -> mpsc::UnboundedReceiver<MemberInbound> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner
            .lock()
            .member_hooks
            .insert(account_id.to_string(), tx);
        rx
    }

    /// Runs a script (joins, leaves, end) on a party in the background.
    pub fn run_script(&self, sid: &str, steps: Vec<ScriptStep>) {
        let inner = self.inner.clone();
        let sid = sid.to_string();
        let h = SimHandle {
            inner,
            http_addr: self.http_addr,
            push_addr: self.push_addr,
            tasks: vec![],
        };
        tokio::spawn(async move {
            for s in steps {
                tokio::time::sleep(Duration::from_millis(s.after_ms)).await;
                if let Some(j) = &s.join {
                    h.member_join_with(
                        &sid,
                        &MemberSpec {
                            online_id: j.online_id.clone(),
                            platform: j.platform.clone(),
                            voice: j.voice.clone(),
                        },
                    );
                }
                if let Some(a) = &s.leave {
                    h.member_leave(&sid, a);
                }
                if s.end {
                    h.end_party(&sid);
                }
            }
        });
    }

    pub fn fault(&self, f: Fault) {
        self.inner.lock().apply_fault(f);
    }

    /// Requests per endpoint name ("token", "bulkGet", "serveraddr", "pushConnect", ...).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.inner.lock().counts.clone()
    }

    pub fn count(&self, endpoint: &str) -> u64 {
        self.inner.lock().counts.get(endpoint).copied().unwrap_or(0)
    }

    pub fn total_requests(&self) -> u64 {
        self.inner.lock().counts.values().sum()
    }

    pub fn reset_counts(&self) {
        self.inner.lock().counts.clear();
    }

    /// Fields, query parameters and frames the recorded shapes do not have ("endpoint: path").
    pub fn unexpected(&self) -> Vec<String> {
        self.inner.lock().unexpected.clone()
    }

    /// Requests answered 400 and push connections refused, for debugging tests.
    pub fn rejections(&self) -> Vec<String> {
        self.inner.lock().rejections.clone()
    }

    pub fn received_messages(&self) -> Vec<ReceivedMessage> {
        self.inner.lock().received.clone()
    }

    /// Every secret the simulator was configured with or issued (NPSSO, client secret, tokens,
    /// codes, bridge tokens): what must never show up in a log, trace or `Debug` string.
    pub fn secrets(&self) -> Vec<String> {
        self.inner.lock().secrets.clone()
    }

    pub fn push_connections(&self) -> usize {
        self.inner.lock().push_conns.len()
    }

    /// Waits until exactly `n` push connections are open (false on timeout).
    pub async fn wait_push_connections(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.push_changed.notified();
            if self.push_connections() == n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.push_connections() == n;
            }
        }
    }

    /// The party as the simulator holds it (JSON), for tests and the control API.
    pub fn party(&self, sid: &str) -> Option<serde_json::Value> {
        self.inner
            .lock()
            .parties
            .get(sid)
            .map(|p| serde_json::to_value(p).unwrap_or_default())
    }
}

/// The platform our client joins as.
pub const CLIENT_PLATFORM: &str = MOBILE_APP;
