//! The simulator's world: accounts, issued tokens, parties, bridges, push connections, faults,
//! request counters and the record of unexpected fields.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Recorded platform names (PROTOCOL.md section 3).
pub const MOBILE_APP: &str = "MOBILE_APP";

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub client_id: String,
    pub client_secret: String,
    pub npsso: String,
    pub account_id: String,
    pub online_id: String,
    /// `expires_in` of access tokens (3599 on PSN).
    pub access_ttl: u64,
    /// `refresh_token_expires_in` (5183999 on PSN).
    pub refresh_ttl: u64,
    /// Faults in force from the start of the run (more can be injected at run time).
    pub faults: Vec<Fault>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_id: "00000000-5137-4e5a-9000-000000000001".into(),
            client_secret: format!("sim-secret-{}", random_token(12)),
            npsso: random_token(64),
            account_id: "6543210987654321001".into(),
            online_id: "obs_streamer".into(),
            access_ttl: 3599,
            refresh_ttl: 5183999,
            faults: Vec::new(),
        }
    }
}

pub fn random_token(n: usize) -> String {
    use rand::Rng;
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut r = rand::rng();
    (0..n)
        .map(|_| ABC[r.random_range(0..ABC.len())] as char)
        .collect()
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub account_id: String,
    pub expires: Instant,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub account_id: String,
    pub expires: Instant,
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimMember {
    #[serde(rename = "accountId")]
    pub account_id: String,
    #[serde(rename = "onlineId")]
    pub online_id: String,
    pub platform: String,
    #[serde(rename = "deviceUniqueId")]
    pub device_unique_id: String,
    #[serde(rename = "joinOrder")]
    pub join_order: u64,
    #[serde(rename = "joinTimestamp")]
    pub join_timestamp: String,
    #[serde(rename = "voiceChatActivated")]
    pub voice_chat_activated: bool,
    #[serde(rename = "customData4")]
    pub custom_data4: String,
    #[serde(rename = "isOnShareScreen")]
    pub is_on_share_screen: bool,
}

impl SimMember {
    pub fn from_ref(&self) -> Value {
        json!({"accountId": self.account_id, "deviceUniqueId": self.device_unique_id, "joinOrder": self.join_order,
               "onlineId": self.online_id, "platform": self.platform})
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SimParty {
    #[serde(rename = "sessionId")]
    pub session_id: String,
    #[serde(rename = "sessionName")]
    pub session_name: String,
    #[serde(rename = "linkId")]
    pub link_id: String,
    pub members: Vec<SimMember>,
    pub bridges: Vec<String>,
    #[serde(skip)]
    pub started: u64,
}

#[derive(Debug, Clone)]
pub struct SimBridge {
    pub token: String,
    /// peer id -> answer SDP once answered
    pub peers: BTreeMap<String, Option<String>>,
}

/// A customMessage the user sent, as received.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReceivedMessage {
    #[serde(rename = "sessionId")]
    pub session_id: String,
    pub channel: String,
    pub payload: String,
    pub to: Value,
}

/// What a scripted member receives through its hook.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberInbound {
    pub session_id: String,
    pub to_account_id: String,
    pub channel: String,
    pub payload: String,
}

/// A fault that hits the next `count` requests (of one endpoint, or of all m.np/push requests).
#[derive(Debug, Clone, Default)]
pub struct Counted {
    pub remaining: u32,
    pub endpoint: Option<String>,
}

impl Counted {
    pub fn take(&mut self, endpoint: &str) -> bool {
        if self.remaining > 0 && self.endpoint.as_deref().is_none_or(|e| e == endpoint) {
            self.remaining -= 1;
            return true;
        }
        false
    }
}

#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub unauthorized: Counted,
    pub rate_limit: Counted,
    pub rate_limit_retry_after: Option<u64>,
    pub server_error: Counted,
    pub server_error_status: u16,
    pub slow: Counted,
    pub slow_ms: u64,
    pub custom_message_400: Counted,
    pub refuse_push: bool,
}

/// Faults as the control API and tests name them.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Every access token issued so far expires now.
    ExpireAccessTokens,
    /// Every refresh token issued so far is revoked.
    RevokeRefreshTokens,
    /// The next `count` m.np/push requests (or of `endpoint`) are answered 401.
    Unauthorized {
        count: u32,
        endpoint: Option<String>,
    },
    /// ... answered 429, with `Retry-After` when `retry_after_secs` is set.
    RateLimit {
        count: u32,
        retry_after_secs: Option<u64>,
        endpoint: Option<String>,
    },
    /// ... answered `status` (default 503).
    ServerError {
        count: u32,
        status: Option<u16>,
        endpoint: Option<String>,
    },
    /// ... answered after `delay_ms`.
    Slow {
        count: u32,
        delay_ms: u64,
        endpoint: Option<String>,
    },
    /// Close every open push socket now.
    DropPush,
    /// Refuse push WebSocket upgrades (503) while on.
    RefusePush { on: bool },
    /// Open push sockets stop reading (so they stop answering pings).
    FreezePush,
    /// Send malformed and unknown frames on every open push socket.
    MalformedPush,
    /// The next `count` customMessage sends are answered 400 "Bad Request (body: null)".
    CustomMessage400 { count: u32 },
    /// Clear every pending fault.
    Clear,
}

/// A command to one push connection.
#[derive(Debug)]
pub enum PushCmd {
    Text(String),
    Close,
    Freeze,
}

pub struct PushConn {
    pub id: u64,
    pub account_id: String,
    /// The device id (`duid`) the connection's access token was signed in with (src/device.rs).
    pub device: Option<String>,
    pub tx: mpsc::UnboundedSender<PushCmd>,
}

pub struct State {
    pub cfg: SimConfig,
    pub push_addr: String,
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
    pub codes: HashMap<String, (String, Instant)>,
    pub parties: BTreeMap<String, SimParty>,
    pub bridges: HashMap<String, SimBridge>,
    pub counts: BTreeMap<String, u64>,
    pub unexpected: Vec<String>,
    pub rejections: Vec<String>,
    pub received: Vec<ReceivedMessage>,
    pub push_conns: Vec<PushConn>,
    pub next_conn: u64,
    pub faults: Faults,
    pub member_hooks: HashMap<String, mpsc::UnboundedSender<MemberInbound>>,
    pub next_account: u64,
    pub next_join_order: u64,
    /// Every secret the simulator handed out or was configured with (for leak checks).
    pub secrets: Vec<String>,
    pub online_ids: HashMap<String, String>,
    /// Voice members: how many were made (for default tones), their status, the default voice.
    pub next_voice: u32,
    pub voice_status: BTreeMap<String, crate::voice::VoiceStatus>,
    pub default_voice: Option<crate::voice::VoiceSpec>,
    /// Voice members asked to drop their peer connection (`SimHandle::member_drop_voice`).
    pub voice_drop_requests: std::collections::HashSet<String>,
    /// In-process taps on the customMessages members post (what the user's push socket gets).
    pub user_taps: Vec<mpsc::UnboundedSender<UserInbound>>,
    /// What bridges send down, and their live peers (src/bridge_voice.rs).
    pub bridge_audio: crate::bridge_voice::BridgeAudio,
    pub bridge_status: BTreeMap<String, crate::bridge_voice::BridgeStatus>,
    pub(crate) bridge_media: HashMap<String, crate::bridge_voice::BridgeMedia>,
    /// Devices (src/device.rs): the `duid` each issued code and token was signed in with, and
    /// every `duid` seen on authorize, in order.
    pub token_devices: HashMap<String, String>,
    pub devices_seen: Vec<String>,
    /// The user's own console as a voice peer of every member (src/console.rs).
    pub console: crate::console::ConsoleState,
    /// Signalling from the user's devices that broke a rule (src/signal_rules.rs).
    pub signal_violations: Vec<String>,
    /// The raw bodies of the requests the plugin sent, by endpoint (for byte-level checks).
    pub request_bodies: Vec<(String, Vec<u8>)>,
    /// Accounts that post to a party they are not in, as PSN names them (`customProperties.from`).
    pub outsiders: HashMap<String, Value>,
    /// What the signalling rules have seen per peer (src/signal_rules.rs).
    pub signal_seen: crate::signal_rules::Seen,
}

/// A customMessage a member posted, as an in-process test sees it ([`crate::SimHandle::user_messages`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UserInbound {
    pub session_id: String,
    pub from_account_id: String,
    pub channel: String,
    pub payload: String,
}

/// A file every secret the simulator hands out is appended to, one a line, when set: the whole
/// test suite's secret scan (tools/secret-scan.py) looks for them in everything the suite wrote.
pub const SECRET_LEDGER_VAR: &str = "PSN_SIM_SECRET_LEDGER";

fn append_to_ledger(secrets: &[String]) {
    use std::io::Write;
    let Some(path) = std::env::var_os(SECRET_LEDGER_VAR) else {
        return;
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut file) = file {
        let lines: String = secrets.iter().map(|s| format!("{s}\n")).collect();
        let _ = file.write_all(lines.as_bytes());
    }
}

impl State {
    /// Keeps secrets handed out for the leak checks (and the suite's ledger).
    pub fn remember_secrets<const N: usize>(&mut self, secrets: [String; N]) {
        append_to_ledger(&secrets);
        self.secrets.extend(secrets);
    }

    pub fn new(cfg: SimConfig) -> Self {
        let secrets = vec![cfg.npsso.clone(), cfg.client_secret.clone()];
        append_to_ledger(&secrets);
        let mut online_ids = HashMap::new();
        online_ids.insert(cfg.account_id.clone(), cfg.online_id.clone());
        State {
            cfg,
            push_addr: String::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            parties: BTreeMap::new(),
            bridges: HashMap::new(),
            counts: BTreeMap::new(),
            unexpected: Vec::new(),
            rejections: Vec::new(),
            received: Vec::new(),
            push_conns: Vec::new(),
            next_conn: 1,
            faults: Faults::default(),
            member_hooks: HashMap::new(),
            next_account: 1,
            next_join_order: 1,
            secrets,
            online_ids,
            next_voice: 0,
            voice_status: BTreeMap::new(),
            default_voice: None,
            voice_drop_requests: Default::default(),
            user_taps: Vec::new(),
            bridge_audio: Default::default(),
            bridge_status: BTreeMap::new(),
            bridge_media: HashMap::new(),
            token_devices: HashMap::new(),
            devices_seen: Vec::new(),
            console: Default::default(),
            signal_violations: Vec::new(),
            request_bodies: Vec::new(),
            outsiders: HashMap::new(),
            signal_seen: Default::default(),
        }
    }

    pub fn count(&mut self, endpoint: &str) {
        *self.counts.entry(endpoint.to_string()).or_default() += 1;
    }

    pub fn apply_fault(&mut self, f: Fault) {
        let now = Instant::now();
        match f {
            Fault::ExpireAccessTokens => self.access.values_mut().for_each(|t| t.expires = now),
            Fault::RevokeRefreshTokens => self.refresh.values_mut().for_each(|t| t.revoked = true),
            Fault::Unauthorized { count, endpoint } => {
                self.faults.unauthorized = Counted {
                    remaining: count,
                    endpoint,
                }
            }
            Fault::RateLimit {
                count,
                retry_after_secs,
                endpoint,
            } => {
                self.faults.rate_limit = Counted {
                    remaining: count,
                    endpoint,
                };
                self.faults.rate_limit_retry_after = retry_after_secs;
            }
            Fault::ServerError {
                count,
                status,
                endpoint,
            } => {
                self.faults.server_error = Counted {
                    remaining: count,
                    endpoint,
                };
                self.faults.server_error_status = status.unwrap_or(503);
            }
            Fault::Slow {
                count,
                delay_ms,
                endpoint,
            } => {
                self.faults.slow = Counted {
                    remaining: count,
                    endpoint,
                };
                self.faults.slow_ms = delay_ms;
            }
            Fault::DropPush => {
                for c in self.push_conns.drain(..) {
                    let _ = c.tx.send(PushCmd::Close);
                }
            }
            Fault::RefusePush { on } => self.faults.refuse_push = on,
            Fault::FreezePush => {
                for c in &self.push_conns {
                    let _ = c.tx.send(PushCmd::Freeze);
                }
            }
            Fault::MalformedPush => {
                let frames = [
                    "{not json".to_string(),
                    r#"{"version":"3.0","method":3001}"#.to_string(),
                    r#"{"version":"3.0","method":3001,"dataType":"psn:sessionManager:sys:v2:ps:members:created","body":{"data":{}}}"#.to_string(),
                    r#"{"version":"3.0","method":3001,"dataType":"psn:sim:unknown:thing","body":{"data":{"x":1}}}"#.to_string(),
                    "\u{0}\u{1}garbage".to_string(),
                ];
                for c in &self.push_conns {
                    for f in &frames {
                        let _ = c.tx.send(PushCmd::Text(f.clone()));
                    }
                }
            }
            Fault::CustomMessage400 { count } => {
                self.faults.custom_message_400 = Counted {
                    remaining: count,
                    endpoint: None,
                }
            }
            Fault::Clear => self.faults = Faults::default(),
        }
    }

    pub fn new_account(&mut self, online_id: &str) -> String {
        let id = format!(
            "{}",
            7_000_000_000_000_000_000u64 + self.next_account * 7919
        );
        self.next_account += 1;
        self.online_ids.insert(id.clone(), online_id.to_string());
        id
    }

    pub fn make_member(&mut self, account_id: &str, online_id: &str, platform: &str) -> SimMember {
        let order = self.next_join_order;
        self.next_join_order += 1;
        SimMember {
            account_id: account_id.to_string(),
            online_id: online_id.to_string(),
            platform: platform.to_string(),
            device_unique_id: format!("sim-duid-{account_id}-{platform}"),
            join_order: order,
            join_timestamp: format!("{}", unix_millis()),
            voice_chat_activated: true,
            custom_data4: base64::engine::general_purpose::STANDARD
                .encode(r#"["","","1","0","6.2.0","0","0","0","",""]"#),
            is_on_share_screen: false,
        }
    }

    pub fn issue_tokens(&mut self, account_id: &str, refresh: Option<String>) -> Value {
        let now = Instant::now();
        let access = jwt(account_id, &self.cfg.client_id, self.cfg.access_ttl);
        let id_token = jwt(account_id, &self.cfg.client_id, self.cfg.access_ttl);
        self.access.insert(
            access.clone(),
            AccessToken {
                account_id: account_id.to_string(),
                expires: now + Duration::from_secs(self.cfg.access_ttl),
            },
        );
        let rt = match refresh {
            Some(rt) => rt,
            None => {
                let rt = random_token(48);
                self.refresh.insert(
                    rt.clone(),
                    RefreshToken {
                        account_id: account_id.to_string(),
                        expires: now + Duration::from_secs(self.cfg.refresh_ttl),
                        revoked: false,
                    },
                );
                rt
            }
        };
        let rt_left = self
            .refresh
            .get(&rt)
            .map(|t| t.expires.saturating_duration_since(now).as_secs())
            .unwrap_or(0);
        self.remember_secrets([access.clone(), id_token.clone(), rt.clone()]);
        json!({
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.cfg.access_ttl,
            "scope": "psn:mobile.v2.core psn:clientapp",
            "id_token": id_token,
            "refresh_token": rt,
            "refresh_token_expires_in": rt_left,
        })
    }

    /// The account of a valid bearer token.
    pub fn bearer_account(&self, token: &str) -> Option<String> {
        self.access
            .get(token)
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.account_id.clone())
    }

    /// Sends a push frame about `party` to every push connection whose account is in it
    /// (plus `extra`, e.g. a member who just left).
    pub fn push_to_party(&self, session_id: &str, data_type: &str, data: Value, extra: &[String]) {
        let Some(p) = self.parties.get(session_id) else {
            // The party is gone: deliver to `extra` only.
            self.push_to_accounts(extra, data_type, data);
            return;
        };
        let mut accounts: Vec<String> = p.members.iter().map(|m| m.account_id.clone()).collect();
        accounts.extend(extra.iter().cloned());
        accounts.sort();
        accounts.dedup();
        self.push_to_accounts(&accounts, data_type, data);
    }

    fn push_to_accounts(&self, accounts: &[String], data_type: &str, data: Value) {
        for c in self
            .push_conns
            .iter()
            .filter(|c| accounts.contains(&c.account_id))
        {
            let frame = json!({
                "version": "3.0",
                "method": 3001,
                "dataType": format!("psn:sessionManager:sys:{data_type}"),
                "to": {"accountId": c.account_id, "onlineId": self.online_ids.get(&c.account_id).cloned().unwrap_or_default(), "platform": MOBILE_APP},
                "body": {"data": data.clone()},
            });
            let _ = c.tx.send(PushCmd::Text(frame.to_string()));
        }
    }

    pub fn party_json(&self, p: &SimParty, owner: &str) -> Value {
        json!({
            "sessionId": p.session_id,
            "sessionName": p.session_name,
            "members": p.members.iter().map(|m| json!({"accountId": m.account_id, "onlineId": m.online_id, "platform": m.platform})).collect::<Vec<_>>(),
            "owner": {"accountId": owner},
            "maxMembers": 16,
            "partyJoinable": true,
            "visibilityType": "INVITE_ONLY",
            "joinableUserType": "INVITE_ONLY",
        })
    }
}

pub fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A JWT-shaped token (RS256 header, `kid: np_1`, the recorded claims, a random signature).
pub fn jwt(account_id: &str, client_id: &str, ttl: u64) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let iat = (unix_millis() / 1000) as u64;
    let header = json!({"alg":"RS256","kid":"np_1","typ":"JWT"});
    let claims = json!({"account_id": account_id, "client_id": client_id, "device_type": "ANDROID_APP",
        "exp": iat + ttl, "iat": iat, "locale": "en-US", "legal_country": "US", "jti": uuid::Uuid::new_v4().to_string()});
    format!("{}.{}.{}", b64(&header), b64(&claims), random_token(43))
}

/// `customData3` = base64 of "<sessionId>\n<accountId zero-padded to 21 digits>\n".
pub fn custom_data3(session_id: &str, account_id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{session_id}\n{account_id:0>21}\n"))
}
