//! Voice members end to end on 127.0.0.1: the sim's members offer (or answer) over
//! customMessage, a `webrtc` peer in the test plays the plugin user, and the Opus that arrives
//! carries each member's own tone at the configured RTP clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use psn_sim::cmsg::{self, Signal};
use psn_sim::{MemberSpec, SimConfig, SimHandle, VoiceSpec};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCSessionDescription,
};

/// (payload type, sequence number, timestamp, ssrc, payload)
type Rtp = (u8, u16, u32, u32, Vec<u8>);

struct UserHandler {
    gathered: Arc<tokio::sync::Notify>,
    rtp: mpsc::UnboundedSender<Rtp>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for UserHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let tx = self.rtp.clone();
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = ev {
                    let h = &p.header;
                    if tx
                        .send((
                            h.payload_type,
                            h.sequence_number,
                            h.timestamp,
                            h.ssrc,
                            p.payload.to_vec(),
                        ))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        });
    }
}

/// The plugin user's side of one member connection.
async fn user_pc(
    clock: u32,
) -> (
    Arc<dyn PeerConnection>,
    Arc<tokio::sync::Notify>,
    mpsc::UnboundedReceiver<Rtp>,
) {
    let mut me = MediaEngine::default();
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: "audio/opus".into(),
                clock_rate: clock,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
                rtcp_feedback: vec![],
            },
            payload_type: 96,
        },
        RtpCodecKind::Audio,
    )
    .unwrap();
    let gathered = Arc::new(tokio::sync::Notify::new());
    let (tx, rx) = mpsc::unbounded_channel();
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(me)
        .with_handler(Arc::new(UserHandler {
            gathered: gathered.clone(),
            rtp: tx,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .unwrap();
    (Arc::new(pc), gathered, rx)
}

fn user_signal(sim: &SimHandle, to: &str, to_platform: &str, kind: &str, sdp: String) -> String {
    let me = sim.config().account_id;
    cmsg::encode(&Signal {
        from_account: me.clone(),
        from_platform: cmsg::platform_code("MOBILE_APP"),
        to_account: to.into(),
        to_platform: cmsg::platform_code(to_platform),
        media_account: me,
        media_platform: cmsg::platform_code("MOBILE_APP"),
        kind: kind.into(),
        sdp,
        global_seq_num: 1,
        sdp_sequence_number: "1".into(),
    })
}

/// Answers `offer` on the user's connection; the answer SDP once ICE gathering is done
/// (candidates inline).
async fn answer_offer(
    pc: &Arc<dyn PeerConnection>,
    gathered: &tokio::sync::Notify,
    offer: String,
) -> String {
    pc.set_remote_description(RTCSessionDescription::offer(offer).unwrap())
        .await
        .unwrap();
    let a = pc.create_answer(None).await.unwrap();
    pc.set_local_description(a).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(3), gathered.notified()).await;
    pc.local_description().await.unwrap().sdp
}

/// The user's own offer (audio and the "psn" data channel, as the plugin offers); its SDP once
/// ICE gathering is done.
async fn user_offer(pc: &Arc<dyn PeerConnection>, gathered: &tokio::sync::Notify) -> String {
    pc.add_transceiver_from_kind(RtpCodecKind::Audio, None)
        .await
        .unwrap();
    pc.create_data_channel("psn", None).await.unwrap();
    let o = pc.create_offer(None).await.unwrap();
    pc.set_local_description(o).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(3), gathered.notified()).await;
    pc.local_description().await.unwrap().sdp
}

/// The user sends `member` (on `platform`) a signal of `kind` with `sdp` on the signalling
/// channel, as the plugin does over HTTP.
fn send_signal(sim: &SimHandle, sid: &str, member: &str, platform: &str, kind: &str, sdp: String) {
    let payload = user_signal(sim, member, platform, kind, sdp);
    sim.user_send_custom_message(sid, member, "miranda:12", &payload)
        .unwrap();
}

/// The user answers `member`'s offer at 16 kHz: the user's connection and the RTP it receives.
async fn answer_member(
    sim: &SimHandle,
    sid: &str,
    member: &str,
    platform: &str,
    offer: String,
) -> (Arc<dyn PeerConnection>, mpsc::UnboundedReceiver<Rtp>) {
    let (pc, gathered, rx) = user_pc(16_000).await;
    let answer = answer_offer(&pc, &gathered, offer).await;
    send_signal(sim, sid, member, platform, "answer", answer);
    (pc, rx)
}

/// A simulator, the tap on what its members send the user, and a party with `members` (the
/// user not in it yet).
async fn party_with(
    name: &str,
    members: &[MemberSpec],
) -> (
    SimHandle,
    mpsc::UnboundedReceiver<psn_sim::UserInbound>,
    psn_sim::PartySetup,
) {
    let sim = psn_sim::start(SimConfig::default()).await.unwrap();
    let taps = sim.user_messages();
    let p = sim.start_party_with(name, members);
    (sim, taps, p)
}

/// The user joins the party and answers the first offer, from its one PS5 member: that
/// member, the user's connection and the RTP it receives.
async fn join_and_answer(
    sim: &SimHandle,
    taps: &mut mpsc::UnboundedReceiver<psn_sim::UserInbound>,
    sid: &str,
) -> (
    String,
    Arc<dyn PeerConnection>,
    mpsc::UnboundedReceiver<Rtp>,
) {
    assert!(sim.user_join(sid));
    let s = next_signal(taps, 5, "the member's offer").await;
    let (pc, rx) = answer_member(sim, sid, &s.from_account, "PS5", s.sdp).await;
    (s.from_account, pc, rx)
}

/// The next signal the user receives within `secs` (`what`: the one expected, for the failure).
async fn next_signal(
    taps: &mut mpsc::UnboundedReceiver<psn_sim::UserInbound>,
    secs: u64,
    what: &str,
) -> Signal {
    let m = tokio::time::timeout(Duration::from_secs(secs), taps.recv())
        .await
        .unwrap_or_else(|_| panic!("{what} within {secs} s"))
        .unwrap();
    cmsg::decode(&m.payload).unwrap()
}

/// Decodes the packets' Opus at 48 kHz, in order.
fn decode(pkts: &[Rtp]) -> Vec<f32> {
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0f32; 5760];
    for p in pkts {
        let n = dec.decode_float(&p.4, &mut buf, false).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Goertzel power of `f` in `x` at `rate`.
fn goertzel(x: &[f32], f: f64, rate: f64) -> f64 {
    let w = std::f64::consts::TAU * f / rate;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// Checks clock step and payload type, decodes at 48 kHz, returns the decoded audio.
fn check_and_decode(pkts: &[Rtp], step: u32) -> Vec<f32> {
    assert!(pkts.len() >= 20, "only {} packets", pkts.len());
    let ssrc = pkts[0].3;
    for w in pkts.windows(2) {
        assert_eq!(w[1].0, 96, "payload type");
        assert_eq!(w[1].3, ssrc, "one SSRC");
        let dseq = w[1].1.wrapping_sub(w[0].1);
        if dseq == 1 {
            assert_eq!(w[1].2.wrapping_sub(w[0].2), step, "timestamp step");
        }
    }
    decode(pkts)
}

/// How many packets (after the first second) carry in-band FEC of the packet before: a fresh
/// decoder asked for FEC gives silence (PLC from nothing) unless LBRR data is there.
fn with_fec(pkts: &[Rtp], frame48: usize) -> (usize, usize) {
    let mut n = 0;
    let later = &pkts[pkts.len().min(25)..];
    for p in later {
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut buf = vec![0f32; frame48];
        if dec.decode_float(&p.4, &mut buf, true).is_ok()
            && buf.iter().map(|x| x * x).sum::<f32>() / frame48 as f32 > 1e-4
        {
            n += 1;
        }
    }
    (n, later.len())
}

fn strongest(audio: &[f32], candidates: &[f64]) -> f64 {
    // skip the first 0.4 s (encoder start-up)
    let x = &audio[audio.len().min(19_200)..];
    *candidates
        .iter()
        .max_by(|a, b| {
            goertzel(x, **a, 48_000.0)
                .partial_cmp(&goertzel(x, **b, 48_000.0))
                .unwrap()
        })
        .unwrap()
}

async fn collect(rx: &mut mpsc::UnboundedReceiver<Rtp>, n: usize, secs: u64) -> Vec<Rtp> {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while got.len() < n {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some(p)) => got.push(p),
            _ => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_offering_members_send_their_own_tones_at_16k() {
    let (sim, mut taps, p) = party_with(
        "voice",
        &[
            MemberSpec::voice("alice", "PS5"),
            MemberSpec::with_voice(
                "bob",
                "PS4",
                VoiceSpec {
                    tone_hz: Some(1000.0),
                    ..Default::default()
                },
            ),
            MemberSpec::roster("carol", "PS5"),
        ],
    )
    .await;
    let alice = p.members[1].0.clone();
    let bob = p.members[2].0.clone();
    let tones: HashMap<String, f64> = sim
        .voice_status()
        .into_iter()
        .map(|v| (v.account_id, v.tone_hz))
        .collect();
    assert_eq!(tones.len(), 2, "carol is roster-only");
    assert_eq!(tones[&bob], 1000.0);
    // Nothing is offered before the user joins.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(taps.try_recv().is_err());
    assert!(sim.user_join(&p.session_id));

    let mut rxs = HashMap::new();
    let mut pcs = vec![];
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    while rxs.len() < 2 {
        let m = tokio::time::timeout_at(end, taps.recv())
            .await
            .expect("offers within 5 s")
            .unwrap();
        assert_eq!(m.channel, "miranda:12");
        let s = cmsg::decode(&m.payload).expect("decodes");
        assert_eq!(s.kind, "offer");
        assert_eq!(s.from_account, m.from_account_id);
        assert_eq!(s.media_account, m.from_account_id);
        assert_eq!(s.to_account, sim.config().account_id);
        assert_eq!(s.to_platform, 100_001);
        let want_platform = if s.from_account == bob { 4 } else { 5 };
        assert_eq!(s.from_platform, want_platform);
        for line in [
            "a=rtpmap:96 opus/16000/2",
            "a=fmtp:96 minptime=10;stereo=0;useinbandfec=1",
            "a=rtpmap:63 red/48000/2",
            "a=fmtp:63 96/96",
            "a=rtpmap:106 CN/32000",
            "a=rtpmap:113 telephone-event/16000",
            "rtp-payload-signature",
            "a=ptime:40",
            "a=rtcp-rsize",
            "a=group:BUNDLE 0 1",
            "webrtc-datachannel",
            "_1_CELT/40",
            "a=setup:actpass",
            " 127.0.0.1 ",
        ] {
            assert!(s.sdp.contains(line), "{line} in\n{}", s.sdp);
        }
        if rxs.contains_key(&s.from_account) {
            continue; // a re-offer
        }
        let platform = if s.from_account == bob { "PS4" } else { "PS5" };
        let (pc, rx) = answer_member(&sim, &p.session_id, &s.from_account, platform, s.sdp).await;
        rxs.insert(s.from_account.clone(), rx);
        pcs.push(pc);
    }

    // 3 s of audio from each, both at once.
    let (ra, rb) = {
        let mut a = rxs.remove(&alice).unwrap();
        let mut b = rxs.remove(&bob).unwrap();
        tokio::join!(async move { collect(&mut a, 75, 8).await }, async move {
            collect(&mut b, 75, 8).await
        })
    };
    println!("alice {} packets, bob {} packets", ra.len(), rb.len());
    let cands = [tones[&alice], tones[&bob]];
    let audio_a = check_and_decode(&ra, 640);
    let audio_b = check_and_decode(&rb, 640);
    assert_eq!(strongest(&audio_a, &cands), tones[&alice]);
    assert_eq!(strongest(&audio_b, &cands), 1000.0);
    assert_ne!(ra[0].3, rb[0].3, "distinct SSRCs");
    let (fec, of) = with_fec(&ra, 1920);
    println!("alice: {fec} of {of} packets after the first second carry FEC");
    // Speech-like signals get FEC on 3 packets in 4 over long runs this way (gaps at syllable
    // troughs); a pure tone gets none after the first second.
    assert!(fec * 10 >= of * 4, "FEC stays on: {fec} of {of}");
    for v in sim.voice_status() {
        assert_eq!(v.answers_received, 1, "{v:?}");
        assert!(v.packets_sent >= 50, "{v:?}");
    }
    assert!(sim.rejections().is_empty(), "{:?}", sim.rejections());

    // A member leaves: its peer closes.
    assert!(sim.member_leave(&p.session_id, &alice));
    let end = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let st = sim
            .voice_status()
            .into_iter()
            .find(|v| v.account_id == alice)
            .unwrap();
        if st.state == "closed" {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "{st:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for pc in pcs {
        let _ = pc.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_does_not_offer_answers_the_users_offer_at_48k() {
    let sim = psn_sim::start(SimConfig::default()).await.unwrap();
    let mut taps = sim.user_messages();
    let p = sim.start_party("quiet", &[]);
    assert!(sim.user_join(&p.session_id));
    let dave = sim
        .member_join_with(
            &p.session_id,
            &MemberSpec::with_voice(
                "dave",
                "PS5",
                VoiceSpec {
                    offers: false,
                    clock_rate: 48_000,
                    tone_hz: Some(500.0),
                    loss: 0.1,
                    ..Default::default()
                },
            ),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(taps.try_recv().is_err(), "dave does not offer");

    // Garbage to dave is a rejection, not a crash.
    let before = sim.rejections().len();
    send_signal(&sim, &p.session_id, &dave, "PS5", "offer", "not sdp".into());

    let (pc, gathered, mut rx) = user_pc(48_000).await;
    let offer = user_offer(&pc, &gathered).await;
    send_signal(&sim, &p.session_id, &dave, "PS5", "offer", offer);
    let s = next_signal(&mut taps, 5, "an answer").await;
    assert_eq!(s.kind, "answer");
    assert_eq!(s.from_account, dave);
    // The recorded member shape: Opus at the member's clock only, its fmtp, ptime 40,
    // setup:active, the data channel BUNDLEd, candidates inline.
    for line in [
        "a=group:BUNDLE 0 1",
        "opus/48000/2",
        "a=fmtp:96 minptime=10;stereo=0;useinbandfec=1",
        "a=ptime:40",
        "a=setup:active",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "a=sctp-port:5000",
        " 127.0.0.1 ",
        "_1_CELT/40",
    ] {
        assert!(s.sdp.contains(line), "{line} missing:\n{}", s.sdp);
    }
    assert_eq!(s.sdp.matches("opus/").count(), 1, "{}", s.sdp);
    pc.set_remote_description(RTCSessionDescription::answer(s.sdp).unwrap())
        .await
        .unwrap();
    let got = collect(&mut rx, 40, 8).await;
    println!("dave: {} packets", got.len());
    let audio = check_and_decode(&got, 1920);
    assert_eq!(strongest(&audio, &[300.0, 500.0, 1000.0]), 500.0);
    let st = sim.voice_status();
    assert_eq!(st[0].answers_sent, 1);
    assert!(st[0].packets_dropped > 0, "{st:?}");
    assert!(
        sim.rejections().len() > before,
        "the junk offer was counted"
    );
    // The party ends: dave's peer closes.
    assert!(sim.end_party(&p.session_id));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sim.voice_status()[0].state, "closed");
    let _ = pc.close().await;
}

/// A raw HTTP/1.1 request on loopback (no client crate needed): (status, raw head, body).
async fn raw(
    sim: &SimHandle,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = sim.base_url().trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status: u16 = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

/// A control API call.
async fn http(sim: &SimHandle, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (st, _, body) = raw(
        sim,
        method,
        path,
        &[("content-type", "application/json".into())],
        body,
    )
    .await;
    (st, serde_json::from_str(&body).unwrap_or_default())
}

/// Signs the user in over HTTP as the plugin does; returns the m.np headers with its token.
async fn sign_in(sim: &SimHandle) -> Vec<(&'static str, String)> {
    use base64::Engine;
    let c = sim.config();
    let (st, head, _) = raw(
        sim,
        "GET",
        &format!("/api/authz/v3/oauth/authorize?duid=test-device-1&access_type=offline&client_id={}&redirect_uri=com.scee.psxandroid.scecompcall%3A%2F%2Fredirect&response_type=code&scope=psn%3Amobile.v2.core", c.client_id),
        &[("user-agent", "test".into()), ("cookie", format!("npsso={}", c.npsso))],
        "",
    )
    .await;
    assert_eq!(st, 302, "{head}");
    let code = head
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", c.client_id, c.client_secret));
    let (st, _, body) = raw(
        sim,
        "POST",
        "/api/authz/v3/oauth/token",
        &[
            ("user-agent", "test".into()),
            ("content-type", "application/x-www-form-urlencoded".into()),
            ("authorization", format!("Basic {basic}")),
        ],
        &format!("code={code}&grant_type=authorization_code&redirect_uri=com.scee.psxandroid.scecompcall%3A%2F%2Fredirect&token_format=jwt"),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = v["access_token"].as_str().unwrap().to_string();
    vec![
        ("user-agent", "test".into()),
        ("x-psn-app-ver", "PlayStationApp-Android/25.1.0".into()),
        ("authorization", format!("Bearer {token}")),
    ]
}

async fn api(
    sim: &SimHandle,
    hdrs: &[(&'static str, String)],
    path: &str,
    body: &str,
) -> (u16, String) {
    let mut h = hdrs.to_vec();
    h.push(("x-psn-request-id", uuid::Uuid::new_v4().to_string()));
    h.push(("content-type", "application/json; charset=utf-8".into()));
    let (st, _, body) = raw(sim, "POST", path, &h, body).await;
    (st, body)
}

/// The path of party `sid`'s `what` (members, customMessage, bridges).
fn party_path(sid: &str, what: &str) -> String {
    format!("/api/sessionManager/v2/partySessions/{sid}/{what}")
}

/// The user joins party `sid` over HTTP (`POST …/members`) as the plugin does.
async fn join_over_http(sim: &SimHandle, hdrs: &[(&'static str, String)], sid: &str) {
    let me = r#"{"members":[{"accountId":"me","platform":"me"}]}"#;
    let (st, body) = api(sim, hdrs, &party_path(sid, "members"), me).await;
    assert_eq!(st, 201, "{body}");
}

/// The plugin's own HTTP path: sign in, `POST …/members`, the offer, the answer by
/// `POST …/customMessage` (offers read through the tap instead of a push socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_joins_and_answers_over_http() {
    let (sim, mut taps, p) = party_with("http", &[MemberSpec::voice("hal", "PS5")]).await;
    let hal = p.members[1].0.clone();
    let hdrs = sign_in(&sim).await;
    let sid = &p.session_id;
    join_over_http(&sim, &hdrs, sid).await;
    let s = next_signal(&mut taps, 5, "an offer after the HTTP join").await;
    assert_eq!(
        (s.kind.as_str(), s.from_account.as_str()),
        ("offer", hal.as_str())
    );
    let (pc, gathered, mut rx) = user_pc(16_000).await;
    let answer = answer_offer(&pc, &gathered, s.sdp).await;
    let payload = user_signal(&sim, &hal, "PS5", "answer", answer);
    let msg = serde_json::json!({"channel": "miranda:12", "payload": payload,
        "to": [{"accountId": hal, "platform": "PS5"}], "withoutSequenceNumber": true})
    .to_string();
    let (st, body) = api(&sim, &hdrs, &party_path(sid, "customMessage"), &msg).await;
    assert_eq!(st, 204, "{body}");
    let got = collect(&mut rx, 10, 5).await;
    assert_eq!(got.len(), 10);
    assert!(sim.unexpected().is_empty(), "{:?}", sim.unexpected());
    assert!(sim.rejections().is_empty(), "{:?}", sim.rejections());
    let _ = pc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_sets_voices() {
    let sim = psn_sim::start(SimConfig::default()).await.unwrap();
    let (st, v) = http(
        &sim,
        "POST",
        "/_sim/parties",
        r#"{"name":"v","members":[{"onlineId":"a","platform":"PS5","voice":{"toneHz":440,"loss":0.05,"jitterMs":20,"reorder":0.02,"duplicate":0.01}},
            {"onlineId":"b","platform":"PS4","voice":true},{"onlineId":"c","platform":"PS5"}]}"#,
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let sid = v["sessionId"].as_str().unwrap().to_string();
    let (st, v) = http(
        &sim,
        "POST",
        &format!("/_sim/parties/{sid}/members"),
        r#"{"onlineId":"d","voice":{"offers":false,"clockRate":48000,"talkMs":600,"silenceMs":400}}"#,
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, _) = http(
        &sim,
        "POST",
        &format!("/_sim/parties/{sid}/members"),
        r#"{"onlineId":"e","voice":{"clockRate":8000}}"#,
    )
    .await;
    assert_eq!(st, 400, "8 kHz is refused");
    let (st, _) = http(&sim, "POST", "/_sim/voice/default", r#"{"toneHz":"x"}"#).await;
    assert_eq!(st, 400);
    let (st, v) = http(&sim, "GET", "/_sim/voice", "").await;
    assert_eq!(st, 200);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 3, "{v}");
    let a = list.iter().find(|x| x["onlineId"] == "a").unwrap();
    assert_eq!(a["toneHz"], 440.0);
    assert_eq!(a["state"], "waiting");
    let d = list.iter().find(|x| x["onlineId"] == "d").unwrap();
    assert_eq!(d["clockRate"], 48000);
    assert_eq!(d["offers"], false);
    // A sim-wide default voice makes later roster members voiced.
    let (st, _) = http(&sim, "POST", "/_sim/voice/default", r#"{"amplitude":0.5}"#).await;
    assert_eq!(st, 200);
    sim.member_join(&sid, "f", "PS5").unwrap();
    assert_eq!(sim.voice_status().len(), 4);
    let (st, _) = http(&sim, "POST", "/_sim/voice/default", "null").await;
    assert_eq!(st, 200);
    sim.member_join(&sid, "g", "PS5").unwrap();
    assert_eq!(sim.voice_status().len(), 4);
    // In-process specs are checked too: a bad one is a rejection and a roster-only member.
    let bad = VoiceSpec {
        ptime_ms: 0,
        ..Default::default()
    };
    sim.member_join_with(&sid, &MemberSpec::with_voice("h", "PS5", bad))
        .unwrap();
    assert_eq!(sim.voice_status().len(), 4);
    assert!(sim
        .rejections()
        .iter()
        .any(|r| r.contains("bad voice spec")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talkspurts_send_nothing_in_silence() {
    let (sim, mut taps, p) = party_with(
        "dtx",
        &[MemberSpec::with_voice(
            "erin",
            "PS5",
            VoiceSpec {
                talk_ms: Some(400),
                silence_ms: Some(800),
                ..Default::default()
            },
        )],
    )
    .await;
    let (erin, pc, mut rx) = join_and_answer(&sim, &mut taps, &p.session_id).await;
    assert_eq!(erin, p.members[1].0);
    // 2.4 s = two 1.2 s cycles: 60 frames, of which about 20 are talk (+ DTX updates).
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2400)).await;
    let mut got = vec![first];
    while let Ok(p) = rx.try_recv() {
        got.push(p);
    }
    let span = got.last().unwrap().2.wrapping_sub(got[0].2) / 640 + 1;
    println!("talkspurts: {} packets over {span} frames", got.len());
    assert!(span >= 50, "{span}");
    assert!((got.len() as u32) < span * 2 / 3, "{} of {span}", got.len());
    // Sequence numbers stay contiguous across the silences (DTX frames are not sent).
    for w in got.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1));
    }
    let _ = pc.close().await;
}

/// Glare: the user's offer reaches a member whose own offer is still out. The member keeps its
/// offer (the member's offer wins, as the plugin decides too) and answers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glare_the_member_keeps_its_own_offer() {
    let (sim, mut taps, p) = party_with("glare", &[MemberSpec::voice("gil", "PS5")]).await;
    sim.user_join(&p.session_id);
    let gil = p.members[1].0.clone();
    let theirs = next_signal(&mut taps, 3, "gil's offer").await;
    assert_eq!(theirs.kind, "offer");
    let (ours, gathered, _rx) = user_pc(16_000).await;
    let offer = user_offer(&ours, &gathered).await;
    send_signal(&sim, &p.session_id, &gil, "PS5", "offer", offer);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = sim.voice_status();
    assert_eq!(st[0].glare_ignored, 1, "{st:?}");
    assert_eq!(st[0].answers_sent, 0, "{st:?}");
    while let Ok(m) = taps.try_recv() {
        assert_ne!(cmsg::decode(&m.payload).unwrap().kind, "answer");
    }
    assert!(sim.end_party(&p.session_id));
    let _ = ours.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_offers_are_repeated_and_a_rejoin_gets_a_new_offer() {
    let (sim, mut taps, p) = party_with("re", &[MemberSpec::voice("fay", "PS5")]).await;
    sim.user_join(&p.session_id);
    let mut offers = vec![];
    let end = tokio::time::Instant::now() + Duration::from_millis(4_000);
    while let Ok(Some(m)) = tokio::time::timeout_at(end, taps.recv()).await {
        offers.push(cmsg::decode(&m.payload).unwrap());
    }
    assert_eq!(offers.len(), 2, "the first offer and one repeat after 3 s");
    assert_eq!(offers[0].sdp, offers[1].sdp, "the same offer again");
    assert_eq!(sim.voice_status()[0].offers_sent, 2);
    let fay = p.members[1].0.clone();
    // The user answers (late) and sends the same answer twice: applied once, no rejection.
    let (pc, gathered, _rx) = user_pc(16_000).await;
    let answer = answer_offer(&pc, &gathered, offers[1].sdp.clone()).await;
    for _ in 0..2 {
        send_signal(&sim, &p.session_id, &fay, "PS5", "answer", answer.clone());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sim.voice_status()[0].answers_received, 1);
    assert!(sim.rejections().is_empty(), "{:?}", sim.rejections());
    // Junk is a rejection, not a crash.
    let junk = "ver=1.0, type=binary, body=AQAAAAAAAAABAAAA";
    assert!(sim
        .user_send_custom_message(&p.session_id, &fay, "miranda:12", junk)
        .is_err());
    // The user leaves and comes back: a fresh offer (new ICE credentials).
    assert!(sim.user_leave(&p.session_id));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sim.user_join(&p.session_id));
    let s = next_signal(&mut taps, 3, "a new offer after the rejoin").await;
    assert_eq!(s.kind, "offer");
    let ufrag = |sdp: &str| {
        sdp.lines()
            .find(|l| l.starts_with("a=ice-ufrag:"))
            .unwrap()
            .to_string()
    };
    assert_ne!(ufrag(&s.sdp), ufrag(&offers[0].sdp));
    assert!(sim.end_party(&p.session_id));
    let _ = pc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impairments_reach_the_user() {
    let (sim, mut taps, p) = party_with(
        "bad net",
        &[MemberSpec::with_voice(
            "gus",
            "PS5",
            VoiceSpec {
                loss: 0.1,
                jitter_ms: 20,
                reorder: 0.3,
                duplicate: 0.1,
                seed: Some(7),
                ..Default::default()
            },
        )],
    )
    .await;
    let (gus, pc, mut rx) = join_and_answer(&sim, &mut taps, &p.session_id).await;
    assert_eq!(gus, p.members[1].0);
    let got = collect(&mut rx, 50, 8).await;
    let seqs: Vec<u16> = got.iter().map(|p| p.1).collect();
    let out_of_order = seqs
        .windows(2)
        .filter(|w| w[1].wrapping_sub(w[0]) > 0x8000)
        .count();
    let mut uniq = seqs.clone();
    uniq.sort_unstable();
    uniq.dedup();
    let span = seqs.iter().max().unwrap() - seqs.iter().min().unwrap() + 1;
    let st = sim.voice_status()[0].clone();
    println!(
        "impaired: {} received, {} distinct over a span of {span}, {out_of_order} out of order; sender {st:?}",
        got.len(),
        uniq.len()
    );
    assert!(out_of_order > 0, "{seqs:?}");
    assert!(uniq.len() < span as usize, "gaps from loss: {seqs:?}");
    assert!(st.packets_dropped > 0);
    // A clean network from now on (control API): no more gaps or reordering.
    let (code, _) = http(
        &sim,
        "POST",
        &format!("/_sim/voice/{gus}/network"),
        r#"{"loss":0,"jitterMs":0}"#,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = http(&sim, "POST", "/_sim/voice/nobody/network", "{}").await;
    assert_eq!(code, 404);
    let (code, _) = http(
        &sim,
        "POST",
        &format!("/_sim/voice/{gus}/network"),
        r#"{"loss":2}"#,
    )
    .await;
    assert_eq!(code, 400);
    tokio::time::sleep(Duration::from_millis(200)).await;
    while rx.try_recv().is_ok() {}
    let clean = collect(&mut rx, 20, 5).await;
    assert_eq!(clean.len(), 20);
    for w in clean.windows(2) {
        assert_eq!(
            w[1].1,
            w[0].1.wrapping_add(1),
            "clean: {:?}",
            clean.iter().map(|p| p.1).collect::<Vec<_>>()
        );
    }
    assert_eq!(sim.voice_status()[0].network, psn_sim::Network::default());
    let _ = pc.close().await;
}

/// A bridge linked to a party sends each voice member's audio down, one stream per member
/// named by account id in `a=msid`; every call about the bridge needs its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_bridge_sends_each_members_voice_down() {
    let sim = psn_sim::start(SimConfig::default()).await.unwrap();
    let voice = VoiceSpec {
        tone_hz: Some(470.0),
        offers: false,
        ..Default::default()
    };
    let p = sim.start_party_with("bridged", &[MemberSpec::with_voice("ivy", "PS5", voice)]);
    let ivy = p.members[1].0.clone();
    let sid = &p.session_id;
    let mut hdrs = sign_in(&sim).await;
    join_over_http(&sim, &hdrs, sid).await;
    hdrs.push(("x-psn-rtc-title-id", "METROPOL_AND".into()));
    let (st, body) = api(&sim, &hdrs, "/api/rtcBridge/v1/bridges", "{}").await;
    assert_eq!(st, 201, "{body}");
    let b: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (bid, token) = (
        b["bridge"]["bridgeId"].as_str().unwrap().to_owned(),
        b["bridge"]["bridgeToken"].as_str().unwrap().to_owned(),
    );
    let mut link = hdrs.clone();
    link.push(("x-psn-session-manager-ignore-conflict", "true".into()));
    let body = serde_json::json!({"bridges": [{"bridgeId": bid, "bridgeToken": token}]});
    let (st, _) = api(&sim, &link, &party_path(sid, "bridges"), &body.to_string()).await;
    assert_eq!(st, 201);
    let media = r#"{"mediaTypes":{"application":{"isRequired":true},"audio":{"isRequired":true,"opus":[{"bitrate":40,"channels":1,"codec":"CELT","ptime":40,"samplingRates":[16000]}]}}}"#;
    let peers = format!("/api/rtcBridge/v1/bridges/{bid}/peers?allow_duid_duplication=false&g=2");
    let (st, _) = api(&sim, &hdrs, &peers, media).await;
    assert_eq!(st, 403, "add-peer without the bridge token");
    let mut with_token = hdrs.clone();
    with_token.push(("x-psn-bridge-token", token.clone()));
    let (st, body) = api(&sim, &with_token, &peers, media).await;
    assert_eq!(st, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let peer_id = v["peer"]["peerId"].as_str().unwrap().to_owned();
    let offer = v["peer"]["offer"]["sdp"].as_str().unwrap().to_owned();
    assert!(offer.contains(&format!("a=msid:{ivy} ")), "{offer}");
    assert!(
        offer.contains("opus/16000/2") && offer.contains("a=sendrecv"),
        "{offer}"
    );

    let (pc, gathered, mut rx) = user_pc(16_000).await;
    let answer = answer_offer(&pc, &gathered, offer).await;
    let body = serde_json::json!({"answer": {"sdp": answer}}).to_string();
    let answer_path = format!("/api/rtcBridge/v1/bridges/{bid}/peers/{peer_id}/answer");
    let (st, _) = api(&sim, &hdrs, &answer_path, &body).await;
    assert_eq!(st, 403, "answer without the bridge token");
    let (st, body) = api(&sim, &with_token, &answer_path, &body).await;
    assert_eq!(st, 204, "{body}");
    let got = collect(&mut rx, 40, 8).await;
    assert!(got.iter().all(|p| p.0 == 111), "the bridge's payload type");
    let audio = decode(&got);
    assert_eq!(strongest(&audio, &[300.0, 470.0, 730.0]), 470.0);
    let st = sim.bridge_status();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].state, "connected", "{st:?}");
    assert_eq!(st[0].streams, vec![ivy.clone()]);
    assert!(sim.rejections().is_empty(), "{:?}", sim.rejections());
    let _ = pc.close().await;
}

/// With the network down a request is held, not answered, and goes through when the network
/// comes back (as TCP would retransmit it); the control API keeps working throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_down_holds_requests_until_it_returns() {
    let sim = psn_sim::start(SimConfig::default()).await.unwrap();
    let (st, _) = http(&sim, "POST", "/_sim/network", r#"{"up":"no"}"#).await;
    assert_eq!(st, 400);
    let (st, _) = http(&sim, "POST", "/_sim/network", r#"{"up":false}"#).await;
    assert_eq!(st, 200);
    let held = raw(&sim, "GET", "/api/not/a/psn/endpoint", &[], "");
    tokio::pin!(held);
    assert!(
        tokio::time::timeout(Duration::from_millis(600), &mut held)
            .await
            .is_err(),
        "answered while the network was down"
    );
    let (st, _) = http(&sim, "GET", "/_sim/counts", "").await;
    assert_eq!(st, 200, "the control API is not behind the network");
    sim.set_network(true);
    let (st, _, _) = tokio::time::timeout(Duration::from_secs(2), held)
        .await
        .expect("answered once the network was back");
    assert_eq!(st, 404);
}
