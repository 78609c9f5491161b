//! The WebRTC prototype: the plugin's peer answers the recorded offer shape, and two peers on
//! 127.0.0.1 carry Opus at a 16 kHz RTP clock from a "member" to the plugin.

mod support;

use std::sync::Arc;
use std::time::Duration;

use obs_psn_party::voice::member::{MemberConfig, MemberVoice};
use obs_psn_party::voice::peer::sdp::audio_params;
use obs_psn_party::voice::peer::webrtc_rs::{media_engine_for, WebrtcPeer};
use obs_psn_party::voice::peer::{PeerEvent, PeerOptions, PeerState, VoicePeer};
use obs_psn_party::voice::BLOCK;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{mpsc, Notify};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription,
};

const FIXTURE: &str = include_str!("voice_fixtures/member-offer.sdp");
const MEMBER_SSRC: u32 = 0x2871_5493;

fn loopback() -> PeerOptions {
    PeerOptions {
        gather_timeout: Duration::from_secs(3),
        ..PeerOptions::loopback()
    }
}

fn check_answer(answer: &str) {
    let a = audio_params(answer).expect("answer has opus");
    assert_eq!(a.opus_pt, 96, "{answer}");
    assert_eq!(
        a.clock_rate, 16_000,
        "opus must stay at the offered clock:\n{answer}"
    );
    assert!(answer.contains("a=group:BUNDLE 0 1"), "{answer}");
    assert!(
        answer.contains("m=application"),
        "data channel m-line answered:\n{answer}"
    );
    assert!(answer.contains("webrtc-datachannel"), "{answer}");
    assert!(
        answer.contains("a=setup:active") || answer.contains("a=setup:passive"),
        "{answer}"
    );
    assert!(
        answer.contains("a=mid:0") && answer.contains("a=mid:1"),
        "{answer}"
    );
    assert!(
        answer.contains("a=candidate:") && answer.contains("127.0.0.1"),
        "loopback candidate:\n{answer}"
    );
    assert!(
        answer.contains("a=ice-ufrag:") && answer.contains("a=fingerprint:sha-256"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_offer_gets_a_valid_answer_at_16k() {
    let (tx, _rx) = mpsc::channel(64);
    let peer = WebrtcPeer::new("fixture-member".into(), loopback(), tx);
    let answer = peer.answer(FIXTURE).await.expect("answer");
    println!("--- answer to the fixture offer ---\n{answer}");
    check_answer(&answer);
    assert_eq!(peer.negotiated().await.unwrap().clock_rate, 16_000);
    peer.close().await;

    // The same shape at RFC 7587's 48 kHz stays at 48 kHz.
    let (tx, _rx) = mpsc::channel(64);
    let peer = WebrtcPeer::new("fixture-member-48k".into(), loopback(), tx);
    let answer = peer
        .answer(&FIXTURE.replace("opus/16000/2", "opus/48000/2"))
        .await
        .expect("answer");
    assert_eq!(
        audio_params(&answer).unwrap().clock_rate,
        48_000,
        "{answer}"
    );
    assert_eq!(peer.negotiated().await.unwrap().clock_rate, 48_000);
    peer.close().await;
}

// ---- the member side: a webrtc peer offering the recorded shape ------------------------------

struct MemberHandler {
    gathered: Arc<Notify>,
    connected: Arc<Notify>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for MemberHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            self.connected.notify_one();
        }
    }
}

/// The fixture's lines with the member's real ICE credentials, fingerprint, candidates and
/// SSRC: the recorded shape (RED, three CN, telephone-event, ptime 40, the Sony extmap,
/// trickle, BUNDLE with the data channel) carrying a live connection's keys.
fn fixture_shaped(real: &str) -> String {
    let pick = |prefix: &str| -> String {
        real.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} in\n{real}"))
            .to_owned()
    };
    let ufrag = pick("a=ice-ufrag:");
    let pwd = pick("a=ice-pwd:");
    let fp = pick("a=fingerprint:");
    let mut cands: Vec<String> = real
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("a=candidate:"))
        .map(str::to_owned)
        .collect();
    cands.dedup();
    let mut out = String::new();
    for line in FIXTURE.lines() {
        let l = line.trim_end();
        if l.starts_with("a=candidate:") {
            continue;
        }
        let l = if l.starts_with("a=ice-ufrag:") {
            ufrag.clone()
        } else if l.starts_with("a=ice-pwd:") {
            pwd.clone()
        } else if l.starts_with("a=fingerprint:") {
            fp.clone()
        } else {
            l.replace("2871549306", &MEMBER_SSRC.to_string())
        };
        out.push_str(&l);
        out.push_str("\r\n");
        if l.starts_with("a=rtcp:")
            || l == "c=IN IP4 0.0.0.0"
                && out.contains("m=application")
                && !out.contains("a=candidate:")
        {
            for c in &cands {
                out.push_str(c);
                out.push_str("\r\n");
            }
        }
    }
    // the data section had a candidate line in the fixture: put the member's after its c= line
    if !out
        .split("m=application")
        .nth(1)
        .unwrap_or("")
        .contains("a=candidate:")
    {
        let (head, tail) = out.split_once("m=application").unwrap();
        let (mline, rest) = tail.split_once("\r\n").unwrap();
        let mut s = format!("{head}m=application{mline}\r\n");
        for c in &cands {
            s.push_str(c);
            s.push_str("\r\n");
        }
        s.push_str(rest);
        out = s;
    }
    out
}

/// What the member sent: sequence number, timestamp, payload.
type Sent = Vec<(u16, u32, Vec<u8>)>;

/// A member (opus/16000/2 on PT 96 and RED 63, a sendrecv audio track, a data channel) offers
/// to `plugin`, both connect, and the member sends 50 Opus packets of 40 ms (RTP clock 16 kHz)
/// 20 ms apart. Returns what it sent and its connection.
async fn member_sends_to(
    plugin: &WebrtcPeer,
    rx: &mut mpsc::Receiver<PeerEvent>,
) -> (Sent, Arc<dyn PeerConnection>) {
    let params = audio_params(FIXTURE).unwrap();
    let me = media_engine_for(&params).unwrap();
    let gathered = Arc::new(Notify::new());
    let connected = Arc::new(Notify::new());
    let member_pc = PeerConnectionBuilder::new()
        .with_media_engine(me)
        .with_handler(Arc::new(MemberHandler {
            gathered: gathered.clone(),
            connected: connected.clone(),
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .expect("member pc");
    let codec = rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
        mime_type: "audio/opus".into(),
        clock_rate: 16_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    };
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "6b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
        "6b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d_1_CELT/40".into(),
        "member-voice".into(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(MEMBER_SSRC),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )));
    member_pc
        .add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .expect("add track");
    let _dc = member_pc
        .create_data_channel("psn", None)
        .await
        .expect("data channel");
    let offer = member_pc.create_offer(None).await.expect("offer");
    member_pc
        .set_local_description(offer)
        .await
        .expect("set local");
    let _ = tokio::time::timeout(Duration::from_secs(3), gathered.notified()).await;
    let real_offer = member_pc.local_description().await.unwrap().sdp;
    let offer = fixture_shaped(&real_offer);
    println!("--- member offer (fixture shape, live keys) ---\n{offer}");
    assert!(offer.contains("a=rtpmap:96 opus/16000/2") && offer.contains("rtp-payload-signature"));

    // The plugin answers.
    let answer = plugin.answer(&offer).await.expect("plugin answer");
    println!("--- plugin answer ---\n{answer}");
    check_answer(&answer);
    member_pc
        .set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .expect("member accepts the answer");

    tokio::time::timeout(Duration::from_secs(10), connected.notified())
        .await
        .expect("member connected");
    // wait for the plugin side too
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut early = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(PeerEvent::State {
                state: PeerState::Connected,
                ..
            })) => break,
            Ok(Some(e)) => early.push(e),
            _ => panic!("plugin never connected; events {early:?}"),
        }
    }

    // The member sends 2 s of Opus, 40 ms packets, RTP clock 16 kHz (+640 per packet).
    let mut enc =
        opus::Encoder::new(16_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    enc.set_inband_fec(true).unwrap();
    enc.set_bitrate(opus::Bitrate::Bits(32_000)).unwrap();
    let mut buf = [0u8; 1500];
    let seq0: u16 = 65_500; // wraps during the run
    let ts0: u32 = 4_294_960_000; // wraps too
    let n_packets = 50u16;
    let mut sent = Vec::new();
    for i in 0..n_packets {
        let pcm: Vec<f32> = (0..640)
            .map(|k| support::voice::speech_like(u64::from(i) * 640 + k as u64, 0.3))
            .collect();
        let n = enc.encode_float(&pcm, &mut buf).unwrap();
        let seq = seq0.wrapping_add(i);
        let ts = ts0.wrapping_add(640 * u32::from(i));
        let pkt = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: i == 0,
                payload_type: 96,
                sequence_number: seq,
                timestamp: ts,
                ssrc: MEMBER_SSRC,
                ..Default::default()
            },
            payload: bytes::Bytes::copy_from_slice(&buf[..n]),
        };
        sent.push((seq, ts, buf[..n].to_vec()));
        track.write_rtp(pkt).await.expect("write rtp");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (sent, Arc::new(member_pc))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_member_sends_opus_at_16k_and_the_plugin_receives_it() {
    let (tx, mut rx) = mpsc::channel(1024);
    let plugin = WebrtcPeer::new("member-1".into(), loopback(), tx);
    let (sent, member_pc) = member_sends_to(&plugin, &mut rx).await;

    // The plugin's events: every packet, right numbers, into the voice pipeline.
    let mut got = Vec::new();
    let t_end = tokio::time::Instant::now() + Duration::from_secs(5);
    while got.len() < sent.len() {
        match tokio::time::timeout_at(t_end, rx.recv()).await {
            Ok(Some(PeerEvent::Rtp(e))) => got.push(e),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    println!("received {} of {} RTP packets", got.len(), sent.len());
    assert!(
        got.len() >= sent.len() - 2,
        "received {} of {}",
        got.len(),
        sent.len()
    );
    let origin = got[0].arrival;
    let ns = |e: &obs_psn_party::voice::peer::RtpEvent| {
        e.arrival.duration_since(origin).as_nanos() as u64
    };
    for e in &got {
        assert_eq!(&*e.member, "member-1");
        assert_eq!(e.payload_type, 96);
        let (seq, ts, payload) = sent.iter().find(|s| s.0 == e.seq).expect("a sent seq");
        assert_eq!(e.timestamp, *ts, "timestamp of seq {seq}");
        assert_eq!(&e.payload[..], &payload[..]);
    }
    // Received in order, timestamps 640 apart per sequence number, across both wraps.
    for w in got.windows(2) {
        let dseq = w[1].seq.wrapping_sub(w[0].seq);
        assert_eq!(
            w[1].timestamp.wrapping_sub(w[0].timestamp),
            640 * u32::from(dseq)
        );
    }
    // Replayed into the voice pipeline at their arrival times: the member's voice comes out.
    let mut member = MemberVoice::new(MemberConfig::new(16_000, 96)).unwrap();
    let mut block = [0f32; BLOCK];
    let mut loud = 0;
    let last = ns(got.last().unwrap());
    let mut now = 0;
    let mut next = 0;
    while now < last + 3_000_000_000 {
        while next < got.len() && ns(&got[next]) <= now {
            member.push(&got[next].as_rtp_in(origin));
            next += 1;
        }
        member.pull_10ms(now, &mut block);
        if block.iter().map(|s| s * s).sum::<f32>() / BLOCK as f32 > 1e-4 {
            loud += 1;
        }
        now += 10_000_000;
    }
    println!("decoded {loud} audible 10 ms blocks");
    assert!(loud >= 150, "{loud} of 200");
    plugin.close().await;
    let _ = member_pc.close().await;
}

/// The plugin's path: the track is routed to the member's packet ring, so its packets go from
/// the peer's reader straight into the ring (none through the events channel, which carries
/// only state changes), and the playout's end of the ring makes the member's voice of them.
/// (Un-routing is `party::feed`'s unit test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_track_feeds_the_members_ring_directly() {
    use obs_psn_party::audio::playout::{MemberAudio, Pulled};
    use obs_psn_party::party::feed::{member_feed, shared, TrackFeed};
    use std::sync::atomic::Ordering;

    let (tx, mut rx) = mpsc::channel(1024);
    let track = TrackFeed::default();
    let plugin =
        WebrtcPeer::new("member-1".into(), loopback(), tx).with_sinks(Arc::new(track.clone()));
    let origin = std::time::Instant::now();
    let voice = MemberVoice::new(MemberConfig::new(16_000, 96)).unwrap();
    let (feed, mut stream) = member_feed(voice, origin);
    track.route(Some(shared(feed)));
    let (sent, member_pc) = member_sends_to(&plugin, &mut rx).await;

    let received = || stream.stats().received.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while received() < sent.len() as u64 - 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("the ring received {} of {} packets", received(), sent.len());
    assert!(received() >= sent.len() as u64 - 2, "{}", received());
    let mut through_loop = 0;
    while let Ok(event) = rx.try_recv() {
        through_loop += usize::from(matches!(event, PeerEvent::Rtp(_)));
    }
    assert_eq!(
        through_loop, 0,
        "routed packets went through the events channel"
    );

    // The playout's end decodes them (all drained at once here, so the jitter buffer sees them
    // late and plays some; the voice itself is checked in the test above).
    let mut block = [0f32; BLOCK];
    let now0 = u64::try_from(origin.elapsed().as_nanos()).unwrap();
    let mut loud = 0;
    for i in 0..200u64 {
        let pulled = stream.pull_10ms(now0 + i * 10_000_000, &mut block);
        if pulled == Pulled::Audio && block.iter().map(|s| s * s).sum::<f32>() / BLOCK as f32 > 1e-4
        {
            loud += 1;
        }
    }
    println!("decoded {loud} audible 10 ms blocks from the ring");
    assert!(loud > 0, "nothing audible came out of the ring");

    plugin.close().await;
    let _ = member_pc.close().await;
}

/// With the stack's default table (opus/48000/2 on PT 111, no RED) `rtc` still answers the
/// recorded offer with the offer's own Opus line (PT 96, 16 kHz): codecs match on MIME type and
/// fmtp, and the answer takes the offerer's parameters. RED is left out, though, which is why
/// the plugin builds its table from the offer. Recorded in docs/decisions/0003-webrtc-stack.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_codec_table_against_the_16k_offer() {
    let mut me = webrtc::peer_connection::MediaEngine::default();
    me.register_default_codecs().unwrap();
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(me)
        .with_handler(Arc::new(MemberHandler {
            gathered: Arc::new(Notify::new()),
            connected: Arc::new(Notify::new()),
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .unwrap();
    pc.set_remote_description(RTCSessionDescription::offer(FIXTURE.to_owned()).unwrap())
        .await
        .unwrap();
    let answer = pc.create_answer(None).await.unwrap();
    let audio: Vec<&str> = answer
        .sdp
        .lines()
        .filter(|l| {
            l.starts_with("m=audio") || l.starts_with("a=rtpmap") || l.starts_with("a=fmtp")
        })
        .collect();
    println!("default table answers the 16 kHz offer with: {audio:?}");
    assert!(audio.contains(&"a=rtpmap:96 opus/16000/2"), "{audio:?}");
    assert!(!answer.sdp.contains("red/48000"), "{audio:?}");
    let _ = pc.close().await;
}

/// Trickle: a candidate arriving after the offer is accepted; garbage offers are errors, not panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_candidates_and_garbage_offers() {
    let (tx, _rx) = mpsc::channel(64);
    let peer = WebrtcPeer::new("m".into(), loopback(), tx);
    assert!(
        peer.add_remote_candidate("candidate:1 1 udp 1 127.0.0.1 9 typ host")
            .await
            .is_err(),
        "no connection yet"
    );
    peer.answer(FIXTURE).await.expect("answer");
    peer.add_remote_candidate(
        "a=candidate:3 1 udp 2122260223 127.0.0.1 50163 typ host generation 0",
    )
    .await
    .expect("late candidate");
    for bad in [
        "",
        "v=0\r\n",
        "m=audio 9 RTP/AVP 0\r\n",
        "\u{0}\u{ff}garbage",
        &FIXTURE.replace("opus/16000/2", "opus/x/2"),
    ] {
        let (tx, _rx) = mpsc::channel(4);
        let p = WebrtcPeer::new("bad".into(), loopback(), tx);
        assert!(p.answer(bad).await.is_err(), "accepted: {bad:?}");
        p.close().await;
    }
    peer.close().await;
}

/// The recorded offer, mutated the ways a buggy or hostile peer might send it (lines dropped,
/// repeated, swapped or garbled, values replaced, the text cut short), into the whole answer
/// path (our SDP handling, then the WebRTC stack's parser and negotiation): each one is
/// answered or refused, none panics, and the peer still closes. The SDP fuzz target
/// (fuzz/fuzz_targets/sdp_offer.rs) covers our own SDP code at libFuzzer speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_offers_are_refused_not_panicked() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = [
        "0",
        "-1",
        "4294967296",
        "",
        "opus",
        "16000",
        "\u{0}",
        "é",
        "a=",
        ":",
        "/",
    ];
    let (mut answered, mut refused) = (0, 0);
    for _ in 0..1000 {
        let mut lines: Vec<String> = FIXTURE.lines().map(str::to_owned).collect();
        for _ in 0..1 + next() % 3 {
            let n = lines.len().max(1) as u64;
            let i = (next() % n) as usize % lines.len().max(1);
            match next() % 6 {
                0 if !lines.is_empty() => {
                    lines.remove(i);
                }
                1 if !lines.is_empty() => {
                    let copy = lines[i].clone();
                    lines.insert(i, copy);
                }
                2 if !lines.is_empty() => {
                    // One field of the line replaced by a hostile word.
                    let mut fields: Vec<String> = lines[i].split(' ').map(str::to_owned).collect();
                    let f = (next() % fields.len() as u64) as usize;
                    fields[f] = words[(next() % words.len() as u64) as usize].to_owned();
                    lines[i] = fields.join(" ");
                }
                3 if lines.len() > 1 => {
                    let j = (next() % lines.len() as u64) as usize;
                    lines.swap(i, j);
                }
                4 if !lines.is_empty() => {
                    let cut = (next() % (lines[i].len() as u64 + 1)) as usize;
                    lines[i].truncate(cut);
                }
                _ => lines.truncate(i),
            }
        }
        let offer = lines.join("\r\n") + "\r\n";
        let (tx, _rx) = mpsc::channel(64);
        let peer = WebrtcPeer::new("mutant".into(), loopback(), tx);
        match peer.answer(&offer).await {
            Ok(_) => answered += 1,
            Err(_) => refused += 1,
        }
        peer.close().await;
    }
    println!("mutated offers: {answered} answered, {refused} refused, no panic");
    assert!(
        refused > 0,
        "no mutation was refused: the mutations are too weak to test anything"
    );
}
