//! Voice members: each simulated member with a [`VoiceSpec`] is a real WebRTC peer (`webrtc`
//! 0.21) that signals over customMessage (PROTOCOL.md sections 5-7, codec in [`crate::cmsg`]) and
//! sends Opus (libopus through the `opus` crate) on 127.0.0.1. See docs/psn-sim.md "Voice members".

use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

use crate::cmsg::{self, Signal};
use crate::console::CONSOLE_PLATFORM;
use crate::peer::{
    e2s, gathered_local_sdp, offer_with_datachannel, opus_codec, opus_track, stack_keys,
    stack_peer, state_name, Side, StackKeys,
};
use crate::relay::{member_sdp_via, user_sdp_via, Relay};
use crate::state::MOBILE_APP;
use crate::Inner;

/// Opus payload type and RED payload type of the recorded offer.
pub const OPUS_PT: u8 = 96;
pub const RED_PT: u8 = 63;
/// How long an offering member waits for an answer before offering again, and how often.
pub const REOFFER_AFTER: Duration = Duration::from_secs(3);
pub const MAX_OFFERS: u32 = 5;
/// Delay between the user's join and a member's first offer.
pub const OFFER_DELAY: Duration = Duration::from_millis(300);
/// How long a member's offer to the user's console goes ahead of its offer to the user's app.
pub const CONSOLE_HEAD_START: Duration = Duration::from_millis(1500);

/// How a member sounds and signals. Every field has a default (JSON: camelCase, all optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VoiceSpec {
    /// Sine frequency; `None` = a distinct one per voice member: 300, 450, 600, 750 ... Hz.
    pub tone_hz: Option<f64>,
    pub amplitude: f64,
    /// RTP clock of Opus in the offer: 16000 (recorded) or 48000.
    pub clock_rate: u32,
    pub ptime_ms: u32,
    /// Fraction of packets dropped at the sender.
    pub loss: f64,
    /// Each packet is delayed by a uniform 0..jitterMs.
    pub jitter_ms: u64,
    /// Fraction of packets held back and sent after the next one.
    pub reorder: f64,
    /// Fraction of packets sent twice.
    pub duplicate: f64,
    /// Talkspurts: `talkMs` of tone, then `silenceMs` of silence (DTX), repeated. Both needed.
    pub talk_ms: Option<u64>,
    pub silence_ms: Option<u64>,
    /// Where in its talk/silence cycle the member starts, in ms (members talking in turns).
    pub talk_offset_ms: u64,
    /// The member offers first (true) or waits for the user's offer and answers it (false).
    pub offers: bool,
    /// Peer-to-peer with the user works (true) or never connects (false: the member's SDPs
    /// name a candidate nobody listens on, as behind a NAT that blocks it); the bridge then
    /// carries the member's voice.
    pub p2p: bool,
    /// Seed of the impairment RNG (and the first sequence number / timestamp); `None` = from
    /// the member's account id, so runs repeat.
    pub seed: Option<u64>,
    /// An impostor: the member's messages claim to come from the party member with this online
    /// id (binary header, JSON `from` and `medias[].user`); PSN still names the real sender
    /// (docs/psn-sim.md "Impostors and outsiders").
    pub pose_as: Option<String>,
    /// An outsider: an account not in the party whose messages PSN delivers anyway.
    pub outsider: bool,
}

impl Default for VoiceSpec {
    fn default() -> Self {
        VoiceSpec {
            tone_hz: None,
            amplitude: 0.3,
            clock_rate: 16_000,
            ptime_ms: 40,
            loss: 0.0,
            jitter_ms: 0,
            reorder: 0.0,
            duplicate: 0.0,
            talk_ms: None,
            silence_ms: None,
            talk_offset_ms: 0,
            offers: true,
            p2p: true,
            seed: None,
            pose_as: None,
            outsider: false,
        }
    }
}

impl VoiceSpec {
    /// Checks the values (clock 16000/48000, ptime 10/20/40/60, fractions in 0..=1).
    pub fn validate(&self) -> Result<(), String> {
        if self.clock_rate != 16_000 && self.clock_rate != 48_000 {
            return Err(format!("clockRate {} (16000 or 48000)", self.clock_rate));
        }
        if ![10, 20, 40, 60].contains(&self.ptime_ms) {
            return Err(format!("ptimeMs {} (10, 20, 40 or 60)", self.ptime_ms));
        }
        for (n, v) in [
            ("loss", self.loss),
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{n} {v} (0..1)"));
            }
        }
        if let Some(f) = self.tone_hz {
            if !(20.0..=7000.0).contains(&f) {
                return Err(format!("toneHz {f} (20..7000)"));
            }
        }
        if !(0.0..=1.0).contains(&self.amplitude) {
            return Err(format!("amplitude {} (0..1)", self.amplitude));
        }
        if self.jitter_ms > 1000 {
            return Err(format!("jitterMs {} (at most 1000)", self.jitter_ms));
        }
        Ok(())
    }
}

/// A member to put in a party: online id, platform, and optionally a voice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberSpec {
    pub online_id: String,
    #[serde(default = "ps5")]
    pub platform: String,
    #[serde(default)]
    pub voice: Option<VoiceSpec>,
}

fn ps5() -> String {
    "PS5".into()
}

impl MemberSpec {
    /// A roster-only member (no voice unless the sim-wide default gives one).
    pub fn roster(online_id: &str, platform: &str) -> Self {
        MemberSpec {
            online_id: online_id.into(),
            platform: platform.into(),
            voice: None,
        }
    }

    /// A voice member with the default voice (distinct tone, offers first).
    pub fn voice(online_id: &str, platform: &str) -> Self {
        Self::with_voice(online_id, platform, VoiceSpec::default())
    }

    pub fn with_voice(online_id: &str, platform: &str, v: VoiceSpec) -> Self {
        MemberSpec {
            online_id: online_id.into(),
            platform: platform.into(),
            voice: Some(v),
        }
    }
}

/// What a voice member has done so far (`GET /_sim/voice`, [`crate::SimHandle::voice_status`]).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VoiceStatus {
    pub session_id: String,
    pub account_id: String,
    pub online_id: String,
    pub tone_hz: f64,
    pub clock_rate: u32,
    pub offers: bool,
    /// waiting (for the user), offering, answering, connecting, connected, closed, failed
    pub state: String,
    pub offers_sent: u32,
    pub answers_sent: u32,
    pub answers_received: u32,
    /// Times the member's connection was dropped on request (`member_drop_voice`).
    pub voice_drops: u32,
    pub offers_received: u32,
    /// The user's offers ignored because this member's own offer was out (glare).
    pub glare_ignored: u32,
    /// RTP packets written (duplicates counted, dropped ones not).
    pub packets_sent: u64,
    /// Packets dropped by the `loss` setting.
    pub packets_dropped: u64,
    pub ssrc: u32,
    /// The impairments in force now (from the spec; changed by `set_member_network`).
    pub network: Network,
    /// Wall-clock time (ns since the Unix epoch) at which each talkspurt's first packet was
    /// sent (at most the last [`MAX_ONSETS`]): the demo measures latency from these.
    pub talk_onsets_unix_ns: Vec<u64>,
    /// When the first packet of each of the latest talkspurts (talk/silence cycle) was written
    /// to the socket, after any jitter delay: the latency benchmark's start times (in-process).
    #[serde(skip)]
    pub talk_onsets: Vec<std::time::Instant>,
}

fn note_onset(w: &Weak<Inner>, account: &str) {
    let at = std::time::Instant::now();
    set_status(w, account, |v| {
        if v.talk_onsets.len() >= MAX_ONSETS {
            v.talk_onsets.remove(0);
        }
        v.talk_onsets.push(at);
    });
}

/// How many talkspurt onsets a status keeps.
pub const MAX_ONSETS: usize = 1000;

/// A member's sender-side impairments, changeable while it talks.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Network {
    pub loss: f64,
    pub jitter_ms: u64,
    pub reorder: f64,
    pub duplicate: f64,
}

impl Network {
    pub fn validate(&self) -> Result<(), String> {
        VoiceSpec {
            loss: self.loss,
            jitter_ms: self.jitter_ms,
            reorder: self.reorder,
            duplicate: self.duplicate,
            ..Default::default()
        }
        .validate()
    }
}

fn set_status(w: &Weak<Inner>, account: &str, f: impl FnOnce(&mut VoiceStatus)) {
    if let Some(inner) = w.upgrade() {
        if let Some(s) = inner.lock().voice_status.get_mut(account) {
            f(s);
        }
    }
}

fn reject(w: &Weak<Inner>, what: String) {
    if let Some(inner) = w.upgrade() {
        inner.lock().rejections.push(what);
    }
}

/// Starts the member's task (on the current tokio runtime; without one the member stays
/// roster-only and a rejection says so).
pub(crate) fn spawn_member(
    inner: &Arc<Inner>,
    sid: &str,
    account: &str,
    online_id: &str,
    platform: &str,
    spec: VoiceSpec,
) {
    if let Err(e) = spec.validate() {
        inner.lock().rejections.push(format!(
            "voice member {account}: bad voice spec: {e}; no voice"
        ));
        return;
    }
    let tone = {
        let mut st = inner.lock();
        let tone = spec
            .tone_hz
            .unwrap_or(300.0 + 150.0 * f64::from(st.next_voice % 16));
        st.next_voice += 1;
        st.voice_status.insert(
            account.to_string(),
            VoiceStatus {
                session_id: sid.to_string(),
                account_id: account.to_string(),
                online_id: online_id.to_string(),
                tone_hz: tone,
                clock_rate: spec.clock_rate,
                offers: spec.offers,
                state: "waiting".into(),
                network: Network {
                    loss: spec.loss,
                    jitter_ms: spec.jitter_ms,
                    reorder: spec.reorder,
                    duplicate: spec.duplicate,
                },
                ..Default::default()
            },
        );
        tone
    };
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        inner.lock().rejections.push(format!(
            "voice member {account}: no tokio runtime, no voice"
        ));
        return;
    };
    // Whom the member's messages claim to come from (itself, unless it poses as another).
    let claimed = {
        let st = inner.lock();
        spec.pose_as
            .as_ref()
            .and_then(|online| {
                st.parties
                    .get(sid)?
                    .members
                    .iter()
                    .find(|m| &m.online_id == online)
            })
            .map(|m| (m.account_id.clone(), m.platform.clone()))
            .unwrap_or_else(|| (account.to_string(), platform.to_string()))
    };
    let m = MemberCtx {
        w: Arc::downgrade(inner),
        sid: sid.to_string(),
        account: account.to_string(),
        claimed,
        tone,
        spec,
    };
    rt.spawn(m.run());
}

struct MemberCtx {
    w: Weak<Inner>,
    sid: String,
    account: String,
    /// (account, platform) the member's messages name as their sender.
    claimed: (String, String),
    tone: f64,
    spec: VoiceSpec,
}

enum Presence {
    Gone,
    Waiting,
    /// The user's MOBILE_APP member is in the party.
    UserIn {
        account: String,
    },
}

/// One live connection of a member.
struct Peer {
    pc: Arc<dyn PeerConnection>,
    sender: tokio::task::JoinHandle<()>,
    /// The network this connection crosses (None when the member is not reachable p2p).
    relay: Option<Relay>,
}

impl Peer {
    async fn close(self) {
        self.sender.abort();
        let _ = self.pc.close().await;
    }
}

impl MemberCtx {
    fn presence(&self) -> Presence {
        let Some(inner) = self.w.upgrade() else {
            return Presence::Gone;
        };
        let st = inner.lock();
        let Some(p) = st.parties.get(&self.sid) else {
            return Presence::Gone;
        };
        let outsider = self.spec.outsider && st.outsiders.contains_key(&self.account);
        if !outsider && !p.members.iter().any(|m| m.account_id == self.account) {
            return Presence::Gone;
        }
        let user = st.cfg.account_id.clone();
        if p.members
            .iter()
            .any(|m| m.account_id == user && m.platform == MOBILE_APP)
        {
            Presence::UserIn { account: user }
        } else {
            Presence::Waiting
        }
    }

    fn send(&self, payload: String) -> bool {
        let Some(inner) = self.w.upgrade() else {
            return false;
        };
        crate::member_post(&inner, &self.sid, &self.account, cmsg::CHANNEL, &payload)
    }

    /// A message to the user's device on `to_platform` (MOBILE_APP: the plugin; PS5: the
    /// user's console, src/console.rs).
    fn signal(&self, user: &str, to_platform: &str, kind: &str, sdp: String, seq: u64) -> String {
        let me = cmsg::platform_code(&self.claimed.1);
        cmsg::encode(&Signal {
            from_account: self.claimed.0.clone(),
            from_platform: me,
            to_account: user.to_string(),
            to_platform: cmsg::platform_code(to_platform),
            media_account: self.claimed.0.clone(),
            media_platform: me,
            kind: kind.into(),
            sdp,
            global_seq_num: seq,
            sdp_sequence_number: "1".into(),
        })
    }

    async fn run(self) {
        // Bounded by the member's presence: the task ends when it leaves, the party ends or
        // the simulator is dropped.
        loop {
            let user = loop {
                match self.presence() {
                    Presence::Gone => return,
                    Presence::Waiting => tokio::time::sleep(Duration::from_millis(50)).await,
                    Presence::UserIn { account } => break account,
                }
            };
            if !self.session(&user).await {
                set_status(&self.w, &self.account, |v| v.state = "closed".into());
                return;
            }
            set_status(&self.w, &self.account, |v| v.state = "waiting".into());
        }
    }

    /// One stay of the user in the party. False when the member is gone for good.
    async fn session(&self, user: &str) -> bool {
        let (tx, mut inbox) = mpsc::unbounded_channel();
        match self.w.upgrade() {
            Some(inner) => {
                inner.lock().member_hooks.insert(self.account.clone(), tx);
            }
            None => return false,
        }
        let mut peer: Option<Peer> = None;
        let mut global_seq = 1u64;
        // (payload, attempts so far, next deadline)
        let mut pending_offer: Option<(String, u32, Instant)> = None;
        let mut applied_answer: Option<String> = None;
        // The member's link with the user's console (src/console.rs): offered first.
        let mut console_peer: Option<Peer> = None;
        if self.console_on() {
            tokio::time::sleep(OFFER_DELAY).await;
            match self.make_offer(user, CONSOLE_PLATFORM, global_seq).await {
                Ok((p, payload)) => {
                    global_seq += 1;
                    self.send(payload);
                    console_peer = Some(p);
                }
                Err(e) => reject(
                    &self.w,
                    format!("voice member {}: offer to the console: {e}", self.account),
                ),
            }
            // The console's answer comes first, and a client that mistakes the offer for its
            // own has time to answer it (which the answer branch below records).
            tokio::time::sleep(CONSOLE_HEAD_START).await;
        }
        if self.spec.offers {
            tokio::time::sleep(OFFER_DELAY).await;
            match self.make_offer(user, MOBILE_APP, global_seq).await {
                Ok((p, payload)) => {
                    global_seq += 1;
                    if self.send(payload.clone()) {
                        set_status(&self.w, &self.account, |v| {
                            v.offers_sent += 1;
                            v.state = "offering".into();
                        });
                    }
                    peer = Some(p);
                    pending_offer = Some((payload, 1, Instant::now() + REOFFER_AFTER));
                }
                Err(e) => reject(
                    &self.w,
                    format!("voice member {}: offer: {e}", self.account),
                ),
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let alive = loop {
            tokio::select! {
                m = inbox.recv() => {
                    let Some(m) = m else { break true };
                    if m.session_id != self.sid { continue; }
                    let s = match cmsg::decode(&m.payload) {
                        Ok(s) => s,
                        Err(e) => {
                            reject(&self.w, format!("voice member {}: customMessage: {e}", self.account));
                            continue;
                        }
                    };
                    if s.from_platform == cmsg::platform_code(CONSOLE_PLATFORM) {
                        // The console's answer to our offer to it.
                        if let (Some(p), "answer") = (console_peer.as_ref(), s.kind.as_str()) {
                            if let Err(e) = apply_answer(&p.pc, &self.remote(&s.sdp, p.relay.as_ref())).await {
                                reject(&self.w, format!("voice member {}: the console's answer: {e}", self.account));
                            }
                        }
                        continue;
                    }
                    match s.kind.as_str() {
                        "answer" => {
                            if applied_answer.as_deref() == Some(s.sdp.as_str()) {
                                continue; // the same answer again (e.g. to a repeated offer)
                            }
                            let Some(p) = peer.as_ref().filter(|_| pending_offer.is_some()) else {
                                if console_peer.is_some() {
                                    // No offer of ours to the MOBILE_APP device is open: this
                                    // answers the offer meant for the console.
                                    if let Some(inner) = self.w.upgrade() {
                                        crate::console::disturbed(&mut inner.lock(), format!(
                                            "the MOBILE_APP device answered member {}'s offer to the console", self.account));
                                    }
                                }
                                reject(&self.w, format!("voice member {}: answer without an offer", self.account));
                                continue;
                            };
                            match apply_answer(&p.pc, &self.remote(&s.sdp, p.relay.as_ref())).await {
                                Ok(()) => {
                                    pending_offer = None;
                                    applied_answer = Some(s.sdp.clone());
                                    set_status(&self.w, &self.account, |v| {
                                        v.answers_received += 1;
                                        if v.state != "connected" {
                                            v.state = "connecting".into();
                                        }
                                    });
                                }
                                Err(e) => reject(&self.w, format!("voice member {}: bad answer: {e}", self.account)),
                            }
                        }
                        "offer" => {
                            set_status(&self.w, &self.account, |v| v.offers_received += 1);
                            if pending_offer.is_some() {
                                // Glare: this member keeps its own offer (the member's offer
                                // wins, docs/voice.md); the user is expected to answer it.
                                set_status(&self.w, &self.account, |v| v.glare_ignored += 1);
                                continue;
                            }
                            match self.make_answer(&s.sdp).await {
                                Ok((p, sdp)) => {
                                    if let Some(old) = peer.replace(p) { old.close().await; }
                                    pending_offer = None;
                                    applied_answer = None;
                                    let payload = self.signal(user, MOBILE_APP, "answer", sdp, global_seq);
                                    global_seq += 1;
                                    if self.send(payload) {
                                        set_status(&self.w, &self.account, |v| {
                                            v.answers_sent += 1;
                                            if v.state != "connected" {
                                            v.state = "connecting".into();
                                        }
                                        });
                                    }
                                }
                                Err(e) => reject(&self.w, format!("voice member {}: bad offer: {e}", self.account)),
                            }
                        }
                        other => reject(&self.w, format!("voice member {}: unknown type {other:?}", self.account)),
                    }
                }
                _ = tick.tick() => {
                    match self.presence() {
                        Presence::Gone => break false,
                        Presence::Waiting => break true,
                        Presence::UserIn { .. } => {}
                    }
                    if self.drop_requested() {
                        // The connection dies under the member (their router restarted, say):
                        // closed, nothing said in signalling, no offer of its own after it.
                        if let Some(p) = peer.take() {
                            p.close().await;
                        }
                        pending_offer = None;
                        applied_answer = None;
                        set_status(&self.w, &self.account, |v| {
                            v.state = "dropped".into();
                            v.voice_drops += 1;
                        });
                    }
                    if let Some((payload, n, at)) = pending_offer.as_mut() {
                        if Instant::now() >= *at {
                            if *n >= MAX_OFFERS {
                                reject(&self.w, format!("voice member {}: no answer to {n} offers", self.account));
                                pending_offer = None;
                            } else {
                                *n += 1;
                                *at = Instant::now() + REOFFER_AFTER;
                                if self.send(payload.clone()) {
                                    set_status(&self.w, &self.account, |v| v.offers_sent += 1);
                                }
                            }
                        }
                    }
                }
            }
        };
        if let Some(p) = peer.take() {
            p.close().await;
        }
        if let Some(p) = console_peer.take() {
            p.close().await;
        }
        if let Some(inner) = self.w.upgrade() {
            inner.lock().member_hooks.remove(&self.account);
        }
        alive
    }

    fn console_on(&self) -> bool {
        self.w
            .upgrade()
            .is_some_and(|inner| crate::console::enabled(&inner.lock()))
    }

    /// Whether the test asked this member to drop its connection (the request is taken).
    fn drop_requested(&self) -> bool {
        self.w
            .upgrade()
            .is_some_and(|inner| inner.lock().voice_drop_requests.remove(&self.account))
    }

    /// The SDP as sent: with `p2p: false` every candidate names port 9 on 127.0.0.1, where
    /// nothing answers, so ICE never connects.
    /// Otherwise its candidate names the relay (src/relay.rs) the connection crosses.
    fn reachable(&self, sdp: String, relay: Option<&Relay>) -> String {
        if self.spec.p2p {
            return match relay {
                Some(relay) => member_sdp_via(relay, &sdp),
                None => sdp,
            };
        }
        let mut out = String::new();
        for line in sdp.lines() {
            if line.starts_with("a=candidate:") {
                let mut f: Vec<&str> = line.split(' ').collect();
                if f.len() > 5 {
                    f[5] = "9";
                }
                out.push_str(&f.join(" "));
            } else {
                out.push_str(line);
            }
            out.push_str("\r\n");
        }
        out
    }

    /// The user's SDP as this member's stack sees it: with `p2p: false` without the user's
    /// candidates (the member never reaches the user either).
    /// Otherwise the user's candidates name the relay.
    fn remote(&self, sdp: &str, relay: Option<&Relay>) -> String {
        if self.spec.p2p {
            return match relay {
                Some(relay) => user_sdp_via(relay, sdp),
                None => sdp.to_owned(),
            };
        }
        sdp.lines()
            .filter(|l| !l.starts_with("a=candidate:"))
            .map(|l| format!("{l}\r\n"))
            .collect()
    }

    /// The network a new p2p connection crosses.
    async fn relay(&self) -> Result<Option<Relay>, String> {
        // Off loopback (the NAT tests) the namespaces' routers are the network: no relay.
        if !self.spec.p2p || !crate::voice_net::get().members_on_loopback() {
            return Ok(None);
        }
        let inner = self.w.upgrade().ok_or("the simulator is gone")?;
        let network = inner.network_up.subscribe();
        drop(inner);
        Relay::bind(network).await.map(Some).map_err(e2s)
    }

    fn seed(&self) -> u64 {
        self.spec
            .seed
            .unwrap_or_else(|| self.account.parse::<u64>().unwrap_or(1))
    }

    async fn new_pc(&self) -> Result<(Arc<dyn PeerConnection>, Arc<Notify>, Arc<Notify>), String> {
        let red = RTCRtpCodec {
            mime_type: "audio/red".into(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: format!("{OPUS_PT}/{OPUS_PT}"),
            rtcp_feedback: vec![],
        };
        let codecs = vec![
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(self.spec.clock_rate),
                payload_type: OPUS_PT,
            },
            RTCRtpCodecParameters {
                rtp_codec: red,
                payload_type: RED_PT,
            },
        ];
        let connected = Arc::new(Notify::new());
        let (w, account, on_connected) = (self.w.clone(), self.account.clone(), connected.clone());
        let (pc, gathered) = stack_peer(Side::Member, codecs, move |state| {
            if state == RTCPeerConnectionState::Connected {
                on_connected.notify_one();
            }
            if let Some(name) = state_name(state) {
                set_status(&w, &account, |v| v.state = name.into());
            }
        })
        .await?;
        Ok((pc, gathered, connected))
    }

    fn track(&self, ssrc: u32, uuid: &str) -> Arc<TrackLocalStaticRTP> {
        opus_track(
            uuid.to_string(),
            uuid,
            "member-voice",
            ssrc,
            self.spec.clock_rate,
        )
    }

    fn start_sender(
        &self,
        track: Arc<TrackLocalStaticRTP>,
        connected: Arc<Notify>,
        ssrc: u32,
        pt: u8,
    ) -> tokio::task::JoinHandle<()> {
        let w = self.w.clone();
        let account = self.account.clone();
        let spec = self.spec.clone();
        let tone = self.tone;
        let seed = self.seed();
        tokio::spawn(async move {
            if tokio::time::timeout(Duration::from_secs(30), connected.notified())
                .await
                .is_err()
            {
                reject(&w, format!("voice member {account}: never connected"));
                return;
            }
            send_media(w, account, spec, vec![tone], seed, (ssrc, pt), track).await;
        })
    }

    /// A new connection and the recorded-shape offer for it.
    async fn make_offer(
        &self,
        user: &str,
        to_platform: &str,
        seq: u64,
    ) -> Result<(Peer, String), String> {
        let relay = self.relay().await?;
        let (pc, gathered, connected) = self.new_pc().await?;
        let ssrc = StdRng::seed_from_u64(self.seed() ^ 0x55).random::<u32>() | 1;
        let uuid = uuid::Uuid::new_v4().to_string();
        let track = self.track(ssrc, &uuid);
        pc.add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(e2s)?;
        let real = offer_with_datachannel(&pc, &gathered).await?;
        let sdp = self.reachable(
            recorded_offer(&real, self.spec.clock_rate, ssrc, &uuid)?,
            relay.as_ref(),
        );
        set_status(&self.w, &self.account, |v| v.ssrc = ssrc);
        let sender = self.start_sender(track, connected, ssrc, OPUS_PT);
        let peer = Peer { pc, sender, relay };
        Ok((peer, self.signal(user, to_platform, "offer", sdp, seq)))
    }

    /// A new connection answering the user's offer; returns the answer SDP.
    async fn make_answer(&self, offer: &str) -> Result<(Peer, String), String> {
        if !offer.contains("m=audio") {
            return Err("offer has no m=audio".into());
        }
        // The PS5 sends Opus at its own clock: the offer must carry it.
        let opus_pt = offered_pt(offer, &format!("opus/{}/2", self.spec.clock_rate))
            .ok_or_else(|| format!("offer has no opus/{}/2", self.spec.clock_rate))?;
        let relay = self.relay().await?;
        let (pc, gathered, connected) = self.new_pc().await?;
        let closing = |pc: Arc<dyn PeerConnection>, e: String| async move {
            let _ = pc.close().await;
            e
        };
        // This member's stack knows Opus at its own clock only (as a PS5 does at 16 kHz); the
        // stack would otherwise match any Opus of the offer, clock aside.
        let desc = match RTCSessionDescription::offer(
            self.remote(&without_other_opus(offer, opus_pt), relay.as_ref()),
        ) {
            Ok(d) => d,
            Err(e) => return Err(closing(pc, e2s(e)).await),
        };
        if let Err(e) = pc.set_remote_description(desc).await {
            return Err(closing(pc, e2s(e)).await);
        }
        let ssrc = StdRng::seed_from_u64(self.seed() ^ 0xaa).random::<u32>() | 1;
        let uuid = uuid::Uuid::new_v4().to_string();
        let track = self.track(ssrc, &uuid);
        if let Err(e) = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await {
            return Err(closing(pc, e2s(e)).await);
        }
        let answer = match pc.create_answer(None).await {
            Ok(a) => a,
            Err(e) => return Err(closing(pc, e2s(e)).await),
        };
        if let Err(e) = pc.set_local_description(answer).await {
            return Err(closing(pc, e2s(e)).await);
        }
        let Some(local) = gathered_local_sdp(&pc, &gathered).await else {
            return Err(closing(pc, "no local description".into()).await);
        };
        let sdp = match recorded_answer(&local, offer, opus_pt, ssrc, &uuid) {
            Ok(sdp) => self.reachable(sdp, relay.as_ref()),
            Err(e) => return Err(closing(pc, e).await),
        };
        set_status(&self.w, &self.account, |v| {
            v.ssrc = ssrc;
            if v.state != "connected" {
                v.state = "answering".into();
            }
        });
        let sender = self.start_sender(track, connected, ssrc, opus_pt);
        Ok((Peer { pc, sender, relay }, sdp))
    }
}

async fn apply_answer(pc: &Arc<dyn PeerConnection>, sdp: &str) -> Result<(), String> {
    if !sdp.contains("m=audio") {
        return Err("answer has no m=audio".into());
    }
    let d = RTCSessionDescription::answer(sdp.to_string()).map_err(e2s)?;
    pc.set_remote_description(d).await.map_err(e2s)
}

/// The recorded member offer (shared/fixtures/member-offer.sdp) with this connection's ICE
/// credentials, fingerprint, 127.0.0.1 host candidates, SSRC and msid.
pub fn recorded_offer(real: &str, clock: u32, ssrc: u32, uuid: &str) -> Result<String, String> {
    let keys = stack_keys(real, "offer", true)?;
    let mut sdp = session_lines("a=group:BUNDLE 0 1");
    sdp.extend(audio_head(
        "96 63 106 105 13 110 113",
        &keys,
        "a=setup:actpass",
    ));
    sdp.extend([
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level".into(),
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time".into(),
        "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01".into(),
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid".into(),
        "a=extmap:5 urn:uuid:84a86fab-a84f-4d61-b376-2ee79d2b67d2#sie:rtp-hdrext:rtp-payload-signature".into(),
        "a=sendrecv".into(),
        format!("a=msid:- {uuid}_1_CELT/40"),
        "a=rtcp-mux".into(),
        "a=rtcp-rsize".into(),
        format!("a=rtpmap:96 opus/{clock}/2"),
        "a=rtcp-fb:96 transport-cc".into(),
        "a=fmtp:96 minptime=10;stereo=0;useinbandfec=1".into(),
        "a=rtpmap:63 red/48000/2".into(),
        "a=fmtp:63 96/96".into(),
        "a=rtpmap:106 CN/32000".into(),
        "a=rtpmap:105 CN/16000".into(),
        "a=rtpmap:13 CN/8000".into(),
        "a=rtpmap:110 telephone-event/48000".into(),
        "a=rtpmap:113 telephone-event/16000".into(),
    ]);
    sdp.extend(audio_tail(ssrc, uuid));
    sdp.extend(datachannel_section(&keys, true, "a=setup:actpass"));
    Ok(sdp_text(&sdp))
}

/// An SDP's session lines (a fresh session id) with this BUNDLE group.
fn session_lines(bundle: &str) -> Vec<String> {
    let sess: u64 = rand::rng().random_range(1..i64::MAX as u64);
    vec![
        "v=0".to_string(),
        format!("o=- {sess} 2 IN IP4 127.0.0.1"),
        "s=-".into(),
        "t=0 0".into(),
        bundle.into(),
        "a=extmap-allow-mixed".into(),
        "a=msid-semantic: WMS".into(),
    ]
}

/// A media section's ICE and DTLS lines from the stack's keys (its candidates too when
/// `candidates`), then the DTLS role `setup`.
fn ice_and_dtls(keys: &StackKeys, candidates: bool, setup: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if candidates {
        lines.push(keys.candidates.clone());
    }
    lines.extend([
        keys.ufrag.clone(),
        keys.pwd.clone(),
        "a=ice-options:trickle".into(),
        keys.fingerprint.clone(),
        setup.into(),
    ]);
    lines
}

/// The first lines of the audio section (mid 0) with these payload types, candidates inline.
fn audio_head(pts: &str, keys: &StackKeys, setup: &str) -> Vec<String> {
    let mut lines = vec![
        format!("m=audio 9 UDP/TLS/RTP/SAVPF {pts}"),
        "c=IN IP4 0.0.0.0".into(),
        "a=rtcp:9 IN IP4 0.0.0.0".into(),
    ];
    lines.extend(ice_and_dtls(keys, true, setup));
    lines.push("a=mid:0".into());
    lines
}

/// The last lines of the member's audio section: ptime 40 and its SSRC (a fresh cname, the
/// msid PSN's peers use).
fn audio_tail(ssrc: u32, uuid: &str) -> [String; 3] {
    let cname = crate::state::random_token(16);
    [
        "a=ptime:40".to_string(),
        format!("a=ssrc:{ssrc} cname:{cname}"),
        format!("a=ssrc:{ssrc} msid:- {uuid}_1_CELT/40"),
    ]
}

/// The data channel's media section (BUNDLEd as mid 1).
fn datachannel_section(keys: &StackKeys, candidates: bool, setup: &str) -> Vec<String> {
    let mut lines = vec![
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel".to_string(),
        "c=IN IP4 0.0.0.0".into(),
    ];
    lines.extend(ice_and_dtls(keys, candidates, setup));
    lines.extend([
        "a=mid:1".to_string(),
        "a=sctp-port:5000".into(),
        "a=max-message-size:262144".into(),
    ]);
    lines
}

/// SDP lines as the text sent: CRLF after every line.
fn sdp_text(lines: &[String]) -> String {
    let mut out = lines.join("\r\n");
    out.push_str("\r\n");
    out
}

/// The payload type an SDP's `a=rtpmap` gives `encoding` (e.g. `opus/16000/2`), if any.
pub fn offered_pt(sdp: &str, encoding: &str) -> Option<u8> {
    sdp.lines().map(str::trim).find_map(|l| {
        let rest = l.strip_prefix("a=rtpmap:")?;
        let (pt, enc) = rest.split_once(' ')?;
        enc.eq_ignore_ascii_case(encoding)
            .then(|| pt.parse().ok())
            .flatten()
    })
}

/// `offer` without the Opus payload types other than `keep` (for the member's own stack).
fn without_other_opus(offer: &str, keep: u8) -> String {
    let drop: Vec<String> = offer
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            let (pt, enc) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
            (enc.to_ascii_lowercase().starts_with("opus/") && pt != keep.to_string())
                .then(|| pt.to_owned())
        })
        .collect();
    let mut out = String::new();
    for line in offer.lines().map(str::trim_end) {
        let names_dropped = drop.iter().any(|pt| {
            ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
                .iter()
                .any(|p| line.starts_with(&format!("{p}{pt} ")))
        });
        if names_dropped {
            continue;
        }
        if line.starts_with("m=audio ") {
            let kept: Vec<&str> = line
                .split(' ')
                .enumerate()
                .filter(|(i, f)| *i < 3 || !drop.iter().any(|d| d == f))
                .map(|(_, f)| f)
                .collect();
            out.push_str(&kept.join(" "));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

/// A member's answer to the user's offer in the recorded member shape (PROTOCOL.md section 6):
/// Opus at the member's clock on the payload type the offer gave it, `stereo=0;useinbandfec=1`,
/// `ptime:40`, RED when offered over that Opus, the BUNDLE with the data channel when offered,
/// `setup:active`, candidates inline; keys and candidates from the stack's real answer.
pub fn recorded_answer(
    real: &str,
    offer: &str,
    opus_pt: u8,
    ssrc: u32,
    uuid: &str,
) -> Result<String, String> {
    let keys = stack_keys(real, "answer", false)?;
    let rtpmap = offer
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("a=rtpmap:{opus_pt} ")))
        .ok_or("no opus rtpmap")?
        .to_owned();
    let red_pt = offer.lines().map(str::trim).find_map(|l| {
        let rest = l.strip_prefix("a=fmtp:")?;
        let (pt, params) = rest.split_once(' ')?;
        (params.trim() == format!("{opus_pt}/{opus_pt}")).then(|| pt.to_owned())
    });
    let has_datachannel = offer.contains("webrtc-datachannel");
    let direction = if offer.contains("a=recvonly") {
        "a=sendonly"
    } else {
        "a=sendrecv"
    };
    let extmaps: Vec<String> = offer
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("a=extmap:"))
        .map(str::to_owned)
        .collect();
    let mut pts = vec![opus_pt.to_string()];
    pts.extend(red_pt.clone());
    let mut sdp = session_lines(if has_datachannel {
        "a=group:BUNDLE 0 1"
    } else {
        "a=group:BUNDLE 0"
    });
    sdp.extend(audio_head(&pts.join(" "), &keys, "a=setup:active"));
    sdp.extend(extmaps);
    sdp.extend([
        direction.to_string(),
        format!("a=msid:- {uuid}_1_CELT/40"),
        "a=rtcp-mux".into(),
        "a=rtcp-rsize".into(),
        rtpmap,
        format!("a=rtcp-fb:{opus_pt} transport-cc"),
        format!("a=fmtp:{opus_pt} minptime=10;stereo=0;useinbandfec=1"),
    ]);
    if let Some(red) = &red_pt {
        sdp.push(format!("a=rtpmap:{red} red/48000/2"));
        sdp.push(format!("a=fmtp:{red} {opus_pt}/{opus_pt}"));
    }
    sdp.extend(audio_tail(ssrc, uuid));
    if has_datachannel {
        sdp.extend(datachannel_section(&keys, false, "a=setup:active"));
    }
    Ok(sdp_text(&sdp))
}

/// One sample of the member's voice: a "syllabic" tone. The fundamental at `tone` plus weak
/// harmonics 2..6 (at most 0.3/h, weights changing every syllable, none at or above 0.45 of the
/// sample rate) under a 200 ms syllable envelope (0.3..1.0, raised sine squared); the peak stays
/// at or below `amp`. A pure steady tone stops being classified as speech by libopus's VAD after
/// about a second, which turns in-band FEC off; this keeps FEC on about as often as speech does,
/// and the fundamental stays by far the strongest component (the harmonics are >= 16 dB down).
pub fn sample(tone: f64, amp: f64, k: u64, rate: u32) -> f32 {
    use std::f64::consts::{PI, TAU};
    let rate = f64::from(rate);
    let t = k as f64 / rate;
    let syl = (t / 0.2).floor();
    let u = t / 0.2 - syl;
    let env = 0.3 + 0.7 * (PI * u).sin().powi(2);
    let ph = TAU * tone * t;
    let mut s = ph.sin();
    for h in 2..=6u32 {
        let hf = f64::from(h);
        if hf * tone >= 0.45 * rate {
            break;
        }
        let w = 0.3 / hf * (0.5 + 0.5 * (hf * 0.7 + syl).sin());
        s += w * (hf * ph).sin();
    }
    (amp * env * s / 1.45) as f32
}

/// Talkspurt edges ramp over this long: a voice starts and stops, it does not step. (A hard
/// cut at a frame boundary left a step in the signal that the encoder turned into a click at
/// the end of every talkspurt: the demo's "spikes".)
pub const EDGE_MS: u64 = 5;

/// One frame (`pcm.len()` samples at `clock`) of the voice starting at sample `k`, `at_ms`
/// into the stream: `tones` summed while talking (per `cycle` = (talk ms, silence ms)),
/// silence otherwise, ramped in and out over [`EDGE_MS`] at talkspurt edges.
pub fn talk_frame(
    tones: &[f64],
    amp: f64,
    k: u64,
    clock: u32,
    cycle: Option<(u64, u64)>,
    at_ms: u64,
    pcm: &mut [f32],
) {
    let per_ms = u64::from(clock) / 1000;
    let edge = (EDGE_MS * per_ms) as f32;
    for (i, x) in pcm.iter_mut().enumerate() {
        // Where this sample is in its talk/silence cycle, in samples.
        let gain = match cycle {
            None => 1.0,
            Some((t, s)) => {
                let pos = (at_ms * per_ms + i as u64) % ((t + s) * per_ms);
                let talk = t * per_ms;
                if pos >= talk {
                    0.0
                } else {
                    let from_start = (pos as f32 + 1.0) / edge;
                    let to_end = (talk - pos) as f32 / edge;
                    from_start.min(to_end).min(1.0)
                }
            }
        };
        *x = if gain > 0.0 {
            let v: f32 = tones
                .iter()
                .map(|&tone| sample(tone, amp, k + i as u64, clock))
                .sum();
            v * gain
        } else {
            0.0
        };
    }
}

/// Sends `tones` (summed; one for a member, several for a bridge's mix) as Opus on `track`
/// until the member (`account`) is gone, with its network impairments and talkspurts.
pub(crate) async fn send_media(
    w: Weak<Inner>,
    account: String,
    spec: VoiceSpec,
    tones: Vec<f64>,
    seed: u64,
    (ssrc, pt): (u32, u8),
    track: Arc<TrackLocalStaticRTP>,
) {
    let clock = spec.clock_rate;
    let frame = (clock * spec.ptime_ms / 1000) as usize;
    let mut enc = match opus::Encoder::new(clock, opus::Channels::Mono, opus::Application::Voip) {
        Ok(e) => e,
        Err(e) => {
            reject(&w, format!("voice member {account}: opus: {e}"));
            return;
        }
    };
    let _ = enc.set_inband_fec(true);
    let _ = enc.set_packet_loss_perc(10);
    let _ = enc.set_dtx(true);
    let _ = enc.set_bitrate(opus::Bitrate::Bits(24_000));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seq: u16 = rng.random();
    let mut ts: u32 = rng.random();
    let mut pcm = vec![0f32; frame];
    let mut buf = vec![0u8; 1500];
    let mut held: Option<rtp::Packet> = None;
    let mut k: u64 = 0;
    let mut was_talking = false;
    let mut iv = tokio::time::interval(Duration::from_millis(u64::from(spec.ptime_ms)));
    // Absolute schedule: a late tick is caught up at once, no drift.
    iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let cycle = match (spec.talk_ms, spec.silence_ms) {
        (Some(t), Some(s)) if t > 0 => Some((t, s)),
        _ => None,
    };
    let mut frames: u64 = 0;
    let mut was_talking_frame = false;
    loop {
        iv.tick().await;
        let Some(net) = w
            .upgrade()
            .and_then(|i| i.lock().voice_status.get(&account).map(|v| v.network))
        else {
            return;
        };
        let at_ms = frames * u64::from(spec.ptime_ms) + spec.talk_offset_ms;
        frames += 1;
        let talking = cycle.is_none_or(|(t, s)| at_ms % (t + s) < t);
        // The first frame of a talkspurt (not DTX's occasional refresh frames in a pause).
        let talk_onset = talking && !was_talking_frame;
        if talk_onset {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            set_status(&w, &account, |v| {
                if v.talk_onsets_unix_ns.len() >= MAX_ONSETS {
                    v.talk_onsets_unix_ns.remove(0);
                }
                v.talk_onsets_unix_ns.push(now);
            });
        }
        was_talking_frame = talking;
        talk_frame(&tones, spec.amplitude, k, clock, cycle, at_ms, &mut pcm);
        k += frame as u64;
        let n = match enc.encode_float(&pcm, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                reject(&w, format!("voice member {account}: opus encode: {e}"));
                return;
            }
        };
        let this_ts = ts;
        ts = ts.wrapping_add(frame as u32);
        // DTX: libopus marks silence with 1-2 byte frames, which WebRTC does not send.
        if n <= 2 {
            was_talking = false;
            continue;
        }
        let onset_seq = talk_onset.then_some(seq);
        let pkt = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: !was_talking,
                payload_type: pt,
                sequence_number: seq,
                timestamp: this_ts,
                ssrc,
                ..Default::default()
            },
            payload: bytes::Bytes::copy_from_slice(&buf[..n]),
        };
        was_talking = true;
        seq = seq.wrapping_add(1);
        if rng.random::<f64>() < net.loss {
            set_status(&w, &account, |v| v.packets_dropped += 1);
            continue;
        }
        let mut out = Vec::with_capacity(3);
        if rng.random::<f64>() < net.reorder && held.is_none() {
            held = Some(pkt);
        } else {
            let dup = rng.random::<f64>() < net.duplicate;
            out.push(pkt.clone());
            if dup {
                out.push(pkt);
            }
            if let Some(h) = held.take() {
                out.push(h);
            }
        }
        for p in out {
            let delay = if net.jitter_ms > 0 {
                rng.random_range(0..=net.jitter_ms)
            } else {
                0
            };
            set_status(&w, &account, |v| v.packets_sent += 1);
            let onset = onset_seq == Some(p.header.sequence_number);
            if delay == 0 {
                if onset {
                    note_onset(&w, &account);
                }
                if track.write_rtp(p).await.is_err() {
                    return;
                }
            } else {
                let t = track.clone();
                let onset = onset.then(|| (w.clone(), account.clone()));
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    if let Some((w, account)) = onset {
                        note_onset(&w, &account);
                    }
                    let _ = t.write_rtp(p).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../tests/voice_fixtures/member-offer.sdp");

    /// The offer has the fixture's lines in the fixture's order; only the connection's own
    /// values (keys, candidates, SSRC, msid, cname, session id) differ.
    #[test]
    fn offer_has_the_recorded_shape() {
        let real = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijklmn\r\n\
            a=fingerprint:sha-256 AA:BB\r\n\
            a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n\
            a=candidate:2 1 udp 2130706431 10.0.0.1 40000 typ host\r\n";
        let sdp =
            recorded_offer(real, 16_000, 1234, "6b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d").unwrap();
        let norm = |l: &str| -> String {
            let l = l.trim_end();
            for p in [
                "o=-",
                "a=candidate:",
                "a=ice-ufrag:",
                "a=ice-pwd:",
                "a=fingerprint:",
                "a=ssrc:",
                "a=msid:",
            ] {
                if l.starts_with(p) {
                    return p.to_string();
                }
            }
            l.to_string()
        };
        let mut want: Vec<String> = FIXTURE.lines().map(norm).collect();
        want.dedup();
        let mut got: Vec<String> = sdp.lines().map(norm).collect();
        got.dedup();
        assert_eq!(got, want, "{sdp}");
        assert!(sdp.contains("127.0.0.1 40000 typ host") && !sdp.contains("10.0.0.1"));
        assert!(sdp.contains("a=ssrc:1234 msid:- 6b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d_1_CELT/40"));
        let at48 = recorded_offer(real, 48_000, 1, "u").unwrap();
        assert!(at48.contains("a=rtpmap:96 opus/48000/2"));
        assert!(recorded_offer("", 16_000, 1, "u").is_err());
    }

    /// Talkspurts end (and start) without a click: decoded, no sample near an edge is louder
    /// than the voice's own peak. (With a hard cut, the last frames before DTX decoded to
    /// peaks up to 1.8 times the voice's.)
    #[test]
    fn talkspurt_edges_do_not_click() {
        let clock = 16_000;
        let frame = 640;
        let mut enc =
            opus::Encoder::new(clock, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let _ = enc.set_inband_fec(true);
        let _ = enc.set_packet_loss_perc(10);
        let _ = enc.set_dtx(true);
        let _ = enc.set_bitrate(opus::Bitrate::Bits(24_000));
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let cycle = Some((1500, 700));
        let mut pcm = vec![0f32; frame];
        let mut buf = vec![0u8; 1500];
        let mut out = vec![0f32; 1920];
        let (mut steady, mut worst) = (0f32, 0f32);
        for f in 0..(3 * 2200 / 40) as u64 {
            let at_ms = f * 40;
            talk_frame(
                &[470.0],
                0.3,
                f * frame as u64,
                clock,
                cycle,
                at_ms,
                &mut pcm,
            );
            let n = enc.encode_float(&pcm, &mut buf).unwrap();
            if n <= 2 {
                continue; // DTX: not sent
            }
            dec.decode_float(&buf[..n], &mut out, false).unwrap();
            let peak = out.iter().fold(0f32, |m, v| m.max(v.abs()));
            let pos = at_ms % 2200;
            if (200..1300).contains(&pos) {
                steady = steady.max(peak);
            } else {
                worst = worst.max(peak);
            }
        }
        println!("steady peak {steady:.3}, near the edges {worst:.3}");
        assert!(
            worst <= 1.1 * steady,
            "a click: {worst:.3} against {steady:.3}"
        );
    }

    #[test]
    fn spec_json_and_validation() {
        let v: VoiceSpec =
            serde_json::from_str(r#"{"toneHz":440,"jitterMs":20,"offers":false}"#).unwrap();
        assert_eq!(v.tone_hz, Some(440.0));
        assert_eq!(v.clock_rate, 16_000);
        assert!(!v.offers);
        assert!(v.validate().is_ok());
        for bad in [
            r#"{"clockRate":8000}"#,
            r#"{"ptimeMs":30}"#,
            r#"{"loss":1.5}"#,
            r#"{"toneHz":1}"#,
            r#"{"jitterMs":5000}"#,
        ] {
            let v: VoiceSpec = serde_json::from_str(bad).unwrap();
            assert!(v.validate().is_err(), "{bad}");
        }
    }
}
