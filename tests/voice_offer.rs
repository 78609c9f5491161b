//! The plugin offers first (PROTOCOL.md section 7): our offer has the members' shape where it
//! matters, and an answer to it connects and tells us the Opus clock the member will send.
//! (The full path, a psn-sim member answering in the recorded 16 kHz shape and its tone
//! reaching its own OBS source, is tests/libobs_offer.rs.)

use std::time::Duration;

use obs_psn_party::voice::peer::sdp::audio_params;
use obs_psn_party::voice::peer::webrtc_rs::WebrtcPeer;
use obs_psn_party::voice::peer::{PeerEvent, PeerOptions, PeerState, VoicePeer};
use tokio::sync::mpsc;

fn loopback() -> PeerOptions {
    PeerOptions {
        gather_timeout: Duration::from_secs(3),
        ..PeerOptions::loopback()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_offer_has_the_members_shape() {
    let (tx, _rx) = mpsc::channel(64);
    let peer = WebrtcPeer::new("m".into(), loopback(), tx);
    let offer = peer.offer().await.expect("offer");
    println!("{offer}");
    assert!(offer.contains("a=group:BUNDLE 0 1"), "{offer}");
    assert!(offer.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel"));
    assert!(offer.contains("a=recvonly"), "we send no audio: {offer}");
    assert!(offer.contains("a=rtpmap:111 opus/48000/2"));
    assert!(offer.contains("a=rtpmap:96 opus/16000/2"));
    assert!(
        offer.contains("a=fmtp:63 96/96"),
        "RED over the 16 kHz Opus"
    );
    assert!(offer.contains("useinbandfec=1"));
    assert!(
        offer.contains("a=candidate:") && offer.contains(" 127.0.0.1 "),
        "candidates gathered inline: {offer}"
    );
    assert!(offer.contains("a=setup:actpass"));
    peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_our_offer_connects_and_names_the_clock() {
    let (tx, mut events) = mpsc::channel(256);
    let ours = WebrtcPeer::new("member".into(), loopback(), tx);
    let offer = ours.offer().await.expect("offer");
    // Before any answer there is nothing negotiated.
    assert!(ours.negotiated().await.is_none());
    let (mtx, mut member_events) = mpsc::channel(256);
    let member = WebrtcPeer::new("us".into(), loopback(), mtx);
    let answer = member.answer(&offer).await.expect("the member answers");
    let want = audio_params(&answer).unwrap();
    let got = ours.accept_answer(&answer).await.expect("answer accepted");
    assert_eq!(got.clock_rate, want.clock_rate);
    assert_eq!(got.opus_pt, want.opus_pt);
    assert_eq!(ours.negotiated().await, Some(got));
    let connected = |rx: &mut mpsc::Receiver<PeerEvent>| {
        let mut seen = false;
        while let Ok(e) = rx.try_recv() {
            seen |= matches!(
                e,
                PeerEvent::State {
                    state: PeerState::Connected,
                    ..
                }
            );
        }
        seen
    };
    let mut both = (false, false);
    for _ in 0..100 {
        both.0 |= connected(&mut events);
        both.1 |= connected(&mut member_events);
        if both == (true, true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(both, (true, true), "both sides connected");
    // A second answer to the same offer is refused (the connection is no longer offering).
    assert!(ours.accept_answer(&answer).await.is_err());
    ours.close().await;
    member.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_our_offer_is_refused() {
    let (tx, _rx) = mpsc::channel(64);
    let ours = WebrtcPeer::new("m".into(), loopback(), tx);
    let (mtx, _mrx) = mpsc::channel(64);
    let other = WebrtcPeer::new("o".into(), loopback(), mtx);
    let offer = other.offer().await.unwrap();
    let answering = WebrtcPeer::new("a".into(), loopback(), mpsc::channel(64).0);
    let answer = answering.answer(&offer).await.unwrap();
    assert!(ours.accept_answer(&answer).await.is_err());
    for p in [ours, other, answering] {
        p.close().await;
    }
}
