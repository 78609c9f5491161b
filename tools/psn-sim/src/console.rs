//! The user's own console as a voice peer. Every psn-sim party starts with the user's PS5
//! member; with [`crate::SimHandle::set_console_voice`] on, it is a real WebRTC peer too, and
//! every voice member offers to it first (addressed to the user's account on platform PS5),
//! as a member of a real party talks to the streamer's console. Those offers carry the same
//! account id as the plugin's MOBILE_APP member; only the platform tells them apart
//! (PROTOCOL.md section 7, "Addressing"), and psn-sim pushes them to every device of the
//! account, the plugin's push connection included.
//!
//! The console answers offers addressed to it and nothing else. Whatever the user's MOBILE_APP
//! device does to these links is recorded as a disturbance: an answer to an offer meant for the
//! console (seen by the member, src/voice.rs), or a customMessage sent to the user's own account
//! (src/http.rs). See docs/psn-sim.md "The user's console".

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use serde::Serialize;
use tokio::sync::{mpsc, Notify};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    RTCPeerConnectionState, RTCSessionDescription, Registry,
};

use crate::cmsg::{self, Signal};
use crate::peer::{e2s, gathered_local_sdp, opus_codec, state_name, Events};
use crate::state::{MemberInbound, State};
use crate::Inner;

/// The console's platform name and code (PROTOCOL.md sections 3, 5).
pub const CONSOLE_PLATFORM: &str = "PS5";

#[derive(Debug, Default)]
pub struct ConsoleState {
    pub enabled: bool,
    pub links: BTreeMap<String, ConsoleLink>,
    pub disturbances: Vec<String>,
    inbox: Option<mpsc::UnboundedSender<Inbound>>,
}

#[derive(Debug)]
struct Inbound {
    sid: String,
    payload: String,
}

/// The console's link with one member.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleLink {
    pub account_id: String,
    /// answering, connecting, connected, disconnected, failed, closed
    pub state: String,
    pub offers_received: u32,
    pub answers_sent: u32,
    /// RTP packets of the member's voice the console received.
    pub packets_received: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleStatus {
    pub enabled: bool,
    pub links: Vec<ConsoleLink>,
    /// Every time the user's MOBILE_APP device meddled with the console's links.
    pub disturbances: Vec<String>,
}

pub fn status(st: &State) -> ConsoleStatus {
    ConsoleStatus {
        enabled: st.console.enabled,
        links: st.console.links.values().cloned().collect(),
        disturbances: st.console.disturbances.clone(),
    }
}

pub(crate) fn enabled(st: &State) -> bool {
    st.console.enabled
}

/// Records that the user's MOBILE_APP device disturbed the console's links.
pub(crate) fn disturbed(st: &mut State, what: String) {
    st.console.disturbances.push(what);
}

/// Turns the console peer on (starting its task on the current tokio runtime) or off.
pub(crate) fn enable(inner: &Arc<Inner>, on: bool) {
    let mut st = inner.lock();
    st.console.enabled = on;
    if !on {
        st.console.inbox = None;
        return;
    }
    if st.console.inbox.is_some() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        st.rejections
            .push("console: no tokio runtime, no console voice".into());
        st.console.enabled = false;
        return;
    };
    let (tx, rx) = mpsc::unbounded_channel();
    st.console.inbox = Some(tx);
    rt.spawn(run(Arc::downgrade(inner), rx));
}

/// A customMessage posted in `sid` reaches the console as it reaches every device of the
/// user's account (the console ignores what is not addressed to it).
pub(crate) fn deliver(st: &State, sid: &str, from: &str, payload: &str) {
    if from == st.cfg.account_id {
        return; // the user's own devices' messages are not for the console
    }
    if let Some(tx) = &st.console.inbox {
        let _ = tx.send(Inbound {
            sid: sid.to_owned(),
            payload: payload.to_owned(),
        });
    }
}

fn with_link(w: &Weak<Inner>, account: &str, f: impl FnOnce(&mut ConsoleLink)) {
    if let Some(inner) = w.upgrade() {
        let mut st = inner.lock();
        let link = st
            .console
            .links
            .entry(account.to_owned())
            .or_insert_with(|| ConsoleLink {
                account_id: account.to_owned(),
                ..Default::default()
            });
        f(link);
    }
}

async fn run(w: Weak<Inner>, mut rx: mpsc::UnboundedReceiver<Inbound>) {
    // One connection per member; a new offer replaces it.
    let mut pcs: BTreeMap<String, Arc<dyn PeerConnection>> = BTreeMap::new();
    let mut global_seq = 1u64;
    while let Some(m) = rx.recv().await {
        let Some(user) = w.upgrade().map(|i| i.lock().cfg.account_id.clone()) else {
            break;
        };
        let Ok(s) = cmsg::decode(&m.payload) else {
            continue;
        };
        if s.to_account != user || s.to_platform != cmsg::platform_code(CONSOLE_PLATFORM) {
            continue; // for another device (the plugin's MOBILE_APP member) or another member
        }
        if s.kind != "offer" {
            continue; // the console offers nothing, so expects no answer
        }
        with_link(&w, &s.from_account, |l| l.offers_received += 1);
        match answer(&w, &s).await {
            Ok((pc, sdp)) => {
                if let Some(old) = pcs.insert(s.from_account.clone(), pc) {
                    let _ = old.close().await;
                }
                let reply = cmsg::encode(&Signal {
                    from_account: user.clone(),
                    from_platform: cmsg::platform_code(CONSOLE_PLATFORM),
                    to_account: s.from_account.clone(),
                    to_platform: s.from_platform,
                    media_account: user.clone(),
                    media_platform: cmsg::platform_code(CONSOLE_PLATFORM),
                    kind: "answer".into(),
                    sdp,
                    global_seq_num: global_seq,
                    sdp_sequence_number: s.sdp_sequence_number.clone(),
                });
                global_seq += 1;
                let Some(inner) = w.upgrade() else { break };
                // Posted to the party like any member's message (every push connection of
                // the party sees it), and handed to the member it answers.
                crate::member_post_from(
                    &inner,
                    &m.sid,
                    (&user, Some(CONSOLE_PLATFORM)),
                    cmsg::CHANNEL,
                    &reply,
                );
                let st = inner.lock();
                if let Some(hook) = st.member_hooks.get(&s.from_account) {
                    let _ = hook.send(MemberInbound {
                        session_id: m.sid.clone(),
                        to_account_id: s.from_account.clone(),
                        channel: cmsg::CHANNEL.into(),
                        payload: reply,
                    });
                }
                drop(st);
                with_link(&w, &s.from_account, |l| l.answers_sent += 1);
            }
            Err(e) => {
                if let Some(inner) = w.upgrade() {
                    inner
                        .lock()
                        .rejections
                        .push(format!("console: offer from {}: {e}", s.from_account));
                }
            }
        }
    }
    for pc in pcs.into_values() {
        let _ = pc.close().await;
    }
}

/// The console's events for its link with `member`: connection states and received packets
/// go to the link's status.
fn link_events(
    w: &Weak<Inner>,
    member: &str,
    gathered: Arc<Notify>,
) -> Events<impl Fn(RTCPeerConnectionState) + Send + Sync + 'static> {
    let on_state = {
        let (w, member) = (w.clone(), member.to_owned());
        move |state| {
            if let Some(s) = state_name(state) {
                with_link(&w, &member, |l| l.state = s.into());
            }
        }
    };
    let (w, member) = (w.clone(), member.to_owned());
    Events::new(gathered, on_state).with_track(Box::new(move |track: Arc<dyn TrackRemote>| {
        let (w, member) = (w.clone(), member.clone());
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(_) = ev {
                    with_link(&w, &member, |l| l.packets_received += 1);
                }
            }
        });
    }))
}

/// A receiving connection answering the member's offer; its answer SDP (candidates inline).
async fn answer(w: &Weak<Inner>, s: &Signal) -> Result<(Arc<dyn PeerConnection>, String), String> {
    let clock = if crate::voice::offered_pt(&s.sdp, "opus/16000/2").is_some() {
        16_000
    } else {
        48_000
    };
    let pt = crate::voice::offered_pt(&s.sdp, &format!("opus/{clock}/2"))
        .ok_or("the offer has no Opus")?;
    let mut me = MediaEngine::default();
    let opus = RTCRtpCodecParameters {
        rtp_codec: opus_codec(clock),
        payload_type: pt,
    };
    me.register_codec(opus, RtpCodecKind::Audio).map_err(e2s)?;
    let registry = register_default_interceptors(Registry::new(), &mut me).map_err(e2s)?;
    let gathered = Arc::new(Notify::new());
    with_link(w, &s.from_account, |l| l.state = "answering".into());
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(link_events(w, &s.from_account, gathered.clone())))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .map_err(e2s)?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    let result = async {
        let offer = RTCSessionDescription::offer(s.sdp.clone()).map_err(e2s)?;
        pc.set_remote_description(offer).await.map_err(e2s)?;
        let answer = pc.create_answer(None).await.map_err(e2s)?;
        pc.set_local_description(answer).await.map_err(e2s)?;
        gathered_local_sdp(&pc, &gathered)
            .await
            .ok_or_else(|| "no local description".to_string())
    }
    .await;
    match result {
        Ok(sdp) => Ok((pc, sdp)),
        Err(e) => {
            let _ = pc.close().await;
            Err(e)
        }
    }
}
