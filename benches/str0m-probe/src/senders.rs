//! The senders: psn-sim's voice members, in a child process of their own, so that the
//! receiving process holds nothing but the two receive sides (its heap and threads are theirs).
//!
//! The child (`str0m-probe senders`) runs psn-sim on 127.0.0.1 and stands in for the user's
//! MOBILE_APP device in signalling (psn-sim's in-process hooks: `user_join`, `user_messages`,
//! `user_send_custom_message`). Parent and child speak JSON lines over the child's stdin and
//! stdout: the parent asks for a party, the child hands up each member's offer, the parent
//! hands back the answer its receive side made.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use psn_sim::cmsg::{self, Signal};
use psn_sim::voice::{MemberSpec, Network, VoiceSpec};
use psn_sim::SimConfig;
use serde_json::{json, Value};

/// The load one run sends: `members` voices, Opus at a 16 kHz RTP clock in `ptime_ms`
/// packets, each talking in spurts of its own length (as benches/support/party_load.rs's
/// `Talk::Spurts`), every member with a fixed seed so each run's members send alike.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub members: usize,
    pub ptime_ms: u32,
    /// Connected and silent (digital silence: libopus sends only DTX refresh packets).
    pub silent: bool,
}

impl Load {
    /// Member `i`'s seed: psn-sim draws its first sequence number from it.
    pub fn seed(i: usize) -> u64 {
        0x5eed_0000 + i as u64
    }

    /// The sequence number of the first packet member `i` sends (psn-sim's `send_media`: the
    /// first draw of `StdRng::seed_from_u64(seed)`; DTX frames use none).
    pub fn first_seq(i: usize) -> u16 {
        use rand::{Rng, SeedableRng};
        rand::rngs::StdRng::seed_from_u64(Self::seed(i)).random()
    }

    /// `14x40ms`, `14x40ms-silent`.
    pub fn label(&self) -> String {
        let silent = if self.silent { "-silent" } else { "" };
        format!("{}x{}ms{silent}", self.members, self.ptime_ms)
    }

    fn voice(&self, i: usize) -> VoiceSpec {
        if self.silent {
            return VoiceSpec {
                amplitude: 0.0,
                clock_rate: 16_000,
                ptime_ms: self.ptime_ms,
                seed: Some(Self::seed(i)),
                ..VoiceSpec::default()
            };
        }
        VoiceSpec {
            tone_hz: Some(300.0 + 110.0 * i as f64),
            clock_rate: 16_000,
            ptime_ms: self.ptime_ms,
            talk_ms: Some(500 + 41 * i as u64),
            silence_ms: Some(700 + 53 * i as u64),
            seed: Some(Self::seed(i)),
            ..VoiceSpec::default()
        }
    }
}

/// A member's offer, as the child hands it up.
#[derive(Debug, Clone)]
pub struct Offer {
    pub account: String,
    pub sdp: String,
}

/// One voice member as the child reports it.
#[derive(Debug, Clone)]
pub struct MemberReport {
    pub account: String,
    /// Its place in the party (its voice is `Load::voice(index)`).
    pub index: usize,
    pub state: String,
    pub sent: u64,
}

/// The parent's end of the child.
pub struct Senders {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
}

impl Senders {
    /// Starts this executable again as the senders' process.
    pub fn spawn() -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .arg("senders")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("senders: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, events) = mpsc::channel();
        std::thread::Builder::new()
            .name("probe-senders".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) => {
                            if tx.send(v).is_err() {
                                break;
                            }
                        }
                        Err(e) => eprintln!("senders said {line:?}: {e}"),
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            child,
            stdin,
            events,
        })
    }

    fn send(&mut self, v: Value) -> Result<(), String> {
        writeln!(self.stdin, "{v}").map_err(|e| format!("senders: {e}"))
    }

    /// The next member's offer, within `within` (any other event is an error).
    pub fn next_offer(&mut self, within: Duration) -> Result<Offer, String> {
        let v = self.expect("offer", within)?;
        let field = |k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .ok_or(format!("offer without {k}"))
        };
        Ok(Offer {
            account: field("account")?,
            sdp: field("sdp")?,
        })
    }

    /// The next event the child sends, within `within`.
    fn next(&mut self, within: Duration) -> Result<Value, String> {
        self.events
            .recv_timeout(within)
            .map_err(|e| format!("senders: no event within {within:?} ({e})"))
    }

    /// Forgets whatever a failed run left unread.
    pub fn discard_pending(&mut self) {
        while self.events.try_recv().is_ok() {}
    }

    fn expect(&mut self, ev: &str, within: Duration) -> Result<Value, String> {
        let v = self.next(within)?;
        if v["ev"] == ev {
            Ok(v)
        } else {
            Err(format!("senders: wanted {ev}, got {v}"))
        }
    }

    /// A new party of `load` (named `name`); its members offer from now on.
    pub fn party(&mut self, name: &str, load: Load) -> Result<(), String> {
        self.send(
            json!({"cmd": "party", "name": name, "members": load.members, "ptime": load.ptime_ms}),
        )
    }

    pub fn answer(&mut self, account: &str, sdp: &str) -> Result<(), String> {
        self.send(json!({"cmd": "answer", "account": account, "sdp": sdp}))
    }

    /// Every voice member of the current party, and what psn-sim rejected so far.
    pub fn status(&mut self) -> Result<(Vec<MemberReport>, Vec<String>), String> {
        self.send(json!({"cmd": "status"}))?;
        let v = self.expect("status", Duration::from_secs(10))?;
        let members = v["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| MemberReport {
                account: m["account"].as_str().unwrap_or_default().to_owned(),
                index: m["index"].as_u64().unwrap_or_default() as usize,
                state: m["state"].as_str().unwrap_or_default().to_owned(),
                sent: m["sent"].as_u64().unwrap_or_default(),
            })
            .collect();
        let rejections = v["rejections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect();
        Ok((members, rejections))
    }

    /// The members stop sending (every packet from now on is "lost" at the sender: psn-sim
    /// counts it as dropped, not sent), so the sent counts stand still.
    pub fn mute(&mut self) -> Result<(), String> {
        self.send(json!({"cmd": "mute"}))?;
        self.expect("muted", Duration::from_secs(10)).map(|_| ())
    }

    pub fn end_party(&mut self) -> Result<(), String> {
        self.send(json!({"cmd": "end"}))?;
        self.expect("ended", Duration::from_secs(10)).map(|_| ())
    }
}

impl Drop for Senders {
    fn drop(&mut self) {
        let _ = self.send(json!({"cmd": "quit"}));
        let _ = self.child.wait();
    }
}

/// The child's side: runs psn-sim until stdin closes or says `quit`.
pub fn serve() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sim-rt")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(serve_async())
}

fn say(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// The user's signalling message to `to` (a PS5 member), as the plugin sends it.
fn user_signal(user: &str, to: &str, kind: &str, sdp: String) -> String {
    cmsg::encode(&Signal {
        from_account: user.to_owned(),
        from_platform: cmsg::platform_code("MOBILE_APP"),
        to_account: to.into(),
        to_platform: cmsg::platform_code("PS5"),
        media_account: user.to_owned(),
        media_platform: cmsg::platform_code("MOBILE_APP"),
        kind: kind.into(),
        sdp,
        global_seq_num: 1,
        sdp_sequence_number: "1".into(),
    })
}

async fn serve_async() -> Result<(), String> {
    let sim = psn_sim::start(SimConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let user = sim.config().account_id;
    let mut taps = sim.user_messages();
    let (cmd_tx, mut cmds) = tokio::sync::mpsc::unbounded_channel::<Value>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if cmd_tx.send(v).is_err() {
                break;
            }
        }
    });
    // The current party: session id and its voice members' account ids.
    let mut sid = String::new();
    let mut accounts: HashMap<String, usize> = HashMap::new();
    let mut offered: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { return Ok(()) };
                match cmd["cmd"].as_str().unwrap_or_default() {
                    "party" => {
                        let name = cmd["name"].as_str().unwrap_or("p");
                        let load = Load {
                            members: cmd["members"].as_u64().unwrap_or(1) as usize,
                            ptime_ms: cmd["ptime"].as_u64().unwrap_or(40) as u32,
                            silent: cmd["silent"].as_bool().unwrap_or(false),
                        };
                        let specs: Vec<MemberSpec> = (0..load.members)
                            .map(|i| MemberSpec::with_voice(&format!("{name}{i:02}_ps"), "PS5", load.voice(i)))
                            .collect();
                        let p = sim.start_party_with(name, &specs);
                        sid = p.session_id.clone();
                        accounts = p.members.iter().skip(1).enumerate().map(|(i, m)| (m.0.clone(), i)).collect();
                        offered.clear();
                        if !sim.user_join(&sid) {
                            return Err("user_join failed".into());
                        }
                    }
                    "answer" => {
                        let account = cmd["account"].as_str().unwrap_or_default();
                        let sdp = cmd["sdp"].as_str().unwrap_or_default().to_owned();
                        let payload = user_signal(&user, account, "answer", sdp);
                        if let Err(e) = sim.user_send_custom_message(&sid, account, cmsg::CHANNEL, &payload) {
                            say(json!({"ev": "error", "what": format!("answer to {account}: {e}")}));
                        }
                    }
                    "status" => {
                        let members: Vec<Value> = sim
                            .voice_status()
                            .into_iter()
                            .filter_map(|v| accounts.get(&v.account_id).map(|i| json!({"account": v.account_id, "index": i, "state": v.state, "sent": v.packets_sent})))
                            .collect();
                        say(json!({"ev": "status", "members": members, "rejections": sim.rejections()}));
                    }
                    "mute" => {
                        for a in accounts.keys() {
                            sim.set_member_network(a, Network { loss: 1.0, ..Network::default() });
                        }
                        say(json!({"ev": "muted"}));
                    }
                    "end" => {
                        sim.end_party(&sid);
                        accounts.clear();
                        say(json!({"ev": "ended"}));
                    }
                    "quit" => return Ok(()),
                    other => say(json!({"ev": "error", "what": format!("unknown command {other}")})),
                }
            }
            msg = taps.recv() => {
                let Some(m) = msg else { return Ok(()) };
                if m.session_id != sid || !accounts.contains_key(&m.from_account_id) {
                    continue;
                }
                let Ok(s) = cmsg::decode(&m.payload) else { continue };
                // A member offers again when no answer came within 3 s; the first offer is
                // the one the parent answers.
                if s.kind == "offer" && offered.insert(s.from_account.clone()) {
                    say(json!({"ev": "offer", "account": s.from_account, "sdp": s.sdp}));
                }
            }
        }
    }
}

/// Waits until every member of the current party is connected (`timeout` at most).
pub fn wait_connected(
    senders: &mut Senders,
    members: usize,
    timeout: Duration,
) -> Result<Vec<MemberReport>, String> {
    let end = std::time::Instant::now() + timeout;
    loop {
        let (status, rejections) = senders.status()?;
        if !rejections.is_empty() {
            return Err(format!("psn-sim rejected: {rejections:?}"));
        }
        let connected = status.iter().filter(|m| m.state == "connected").count();
        if status.len() == members && connected == members {
            return Ok(status);
        }
        if std::time::Instant::now() > end {
            let states: HashMap<_, _> = status.iter().map(|m| (&m.account, &m.state)).collect();
            return Err(format!("not all connected after {timeout:?}: {states:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
