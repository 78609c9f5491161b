//! Push against psn-sim: typed events for everything that changes, reconnect after drops and
//! silent sockets without request storms, malformed frames survived, polling fallback.

mod support;

use std::time::Duration;

use obs_psn_party::psn::custom_message;
use obs_psn_party::psn::party_api::PartyApi;
use obs_psn_party::psn::push::{PushClient, PushEvent, PushOptions};
use obs_psn_party::psn::PsnError;
use psn_sim::Fault;
use support::psn::*;
use tokio::sync::mpsc::Receiver;

fn fast() -> PushOptions {
    PushOptions {
        ping_interval: Duration::from_millis(200),
        pong_timeout: Duration::from_millis(300),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(800),
        stable_after: Duration::from_secs(10),
        fallback_after: 2,
        poll_interval: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(2),
    }
}

/// The next event matching `pred`, skipping others (returned too, for assertions).
async fn wait_for(
    rx: &mut Receiver<PushEvent>,
    pred: impl Fn(&PushEvent) -> bool,
) -> (PushEvent, Vec<PushEvent>) {
    let mut skipped = vec![];
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no matching event within 5 s; saw {skipped:?}"))
            .expect("push channel open");
        if pred(&ev) {
            return (ev, skipped);
        }
        skipped.push(ev);
    }
}

/// A new environment signed in and joined to a party with `members`, its push client started
/// and connected.
async fn started(
    members: &[(&str, &str)],
) -> (
    Env,
    psn_sim::PartySetup,
    PartyApi,
    PushClient,
    Receiver<PushEvent>,
) {
    let env = Env::new().await;
    let (p, party) = env.joined_party(members).await;
    let (push, mut rx) = PushClient::start(party.clone(), Some(p.session_id.clone()), fast());
    wait_for(&mut rx, |e| *e == PushEvent::Connected).await;
    assert!(
        env.sim
            .wait_push_connections(1, Duration::from_secs(2))
            .await
    );
    (env, p, party, push, rx)
}

/// Stops the push client, then the checks every test ends with.
async fn stop_and_finish(push: PushClient, env: Env) {
    push.stop().await;
    env.finish();
}

#[tokio::test]
async fn typed_events_for_everything_that_changes() {
    let (env, p, party, push, mut rx) = started(&[("alice", "PS5")]).await;
    let alice = p.members[1].0.clone();
    let carol = env.sim.member_join(&p.session_id, "carol", "PS4").unwrap();
    let (ev, _) = wait_for(&mut rx, |e| matches!(e, PushEvent::MembersJoined { .. })).await;
    match ev {
        PushEvent::MembersJoined {
            session_id,
            members,
        } => {
            assert_eq!(session_id, p.session_id);
            assert_eq!(
                (
                    members[0].who.online_id.as_str(),
                    members[0].who.platform.as_str()
                ),
                ("carol", "PS4")
            );
            assert_eq!(members[0].who.account_id, carol);
        }
        _ => unreachable!(),
    }
    // A member's customMessage (through the member hook).
    let msg = custom_message::Message::from_signal(custom_message::Signal::new(
        "offer",
        custom_message::UserRef {
            account_id: alice.clone(),
            platform: 5,
        },
        custom_message::UserRef {
            account_id: env.sim.config().account_id,
            platform: 100001,
        },
        "v=0\r\n".into(),
        3,
    ));
    assert!(env.sim.member_send_custom_message(
        &p.session_id,
        &alice,
        "miranda:12",
        &custom_message::encode_payload(&msg)
    ));
    let (ev, _) = wait_for(&mut rx, |e| matches!(e, PushEvent::CustomMessage { .. })).await;
    match ev {
        PushEvent::CustomMessage {
            from,
            channel,
            payload,
            ..
        } => {
            assert_eq!(from.account_id, alice);
            assert_eq!(from.online_id, "alice");
            assert_eq!(channel, "miranda:12");
            assert_eq!(custom_message::decode_payload(&payload).unwrap(), msg);
        }
        _ => unreachable!(),
    }
    party
        .update_custom_data4(&p.session_id, &UPDATED_CUSTOM_DATA4)
        .await
        .unwrap();
    let (ev, _) = wait_for(&mut rx, |e| {
        matches!(e, PushEvent::CustomDataUpdated { .. })
    })
    .await;
    assert!(
        matches!(
            ev,
            PushEvent::CustomDataUpdated {
                field: 4,
                value: Some(_),
                ..
            }
        ),
        "{ev:?}"
    );
    assert!(env.sim.member_leave(&p.session_id, &carol));
    let (ev, _) = wait_for(&mut rx, |e| matches!(e, PushEvent::MembersLeft { .. })).await;
    assert!(
        matches!(ev, PushEvent::MembersLeft { ref members, .. } if members[0].account_id == carol)
    );
    assert!(env.sim.end_party(&p.session_id));
    let (ev, _) = wait_for(&mut rx, |e| matches!(e, PushEvent::PartyDeleted { .. })).await;
    assert_eq!(
        ev,
        PushEvent::PartyDeleted {
            session_id: p.session_id.clone(),
            cause: Some("LAST_MEMBER_LEFT".into())
        }
    );
    assert_eq!(
        (env.sim.count("serveraddr"), env.sim.count("pushConnect")),
        (1, 1)
    );
    // The trace has the frames both ways, redacted.
    let lines = env.trace_lines();
    let auth = lines
        .iter()
        .find(|l| l.starts_with("> push"))
        .expect("auth frame traced");
    assert!(
        auth.contains(r#""accessToken":"[redacted]""#)
            && auth.contains(r#""accountId":"[account]""#),
        "{auth}"
    );
    assert!(lines.iter().filter(|l| l.starts_with("< push")).count() >= 5);
    stop_and_finish(push, env).await;
}

#[tokio::test]
async fn socket_drop_reconnects_once() {
    let (env, p, _party, push, mut rx) = started(&[("alice", "PS5")]).await;
    env.sim.fault(Fault::DropPush);
    wait_for(&mut rx, |e| matches!(e, PushEvent::Disconnected { .. })).await;
    wait_for(&mut rx, |e| *e == PushEvent::Connected).await;
    assert!(
        env.sim
            .wait_push_connections(1, Duration::from_secs(2))
            .await
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        (env.sim.count("serveraddr"), env.sim.count("pushConnect")),
        (2, 2),
        "one reconnect, no storm"
    );
    // Events flow on the new socket.
    env.sim.member_join(&p.session_id, "dave", "PS5");
    wait_for(&mut rx, |e| matches!(e, PushEvent::MembersJoined { .. })).await;
    stop_and_finish(push, env).await;
}

#[tokio::test]
async fn malformed_and_unknown_frames_are_survived() {
    let (env, p, _party, push, mut rx) = started(&[("alice", "PS5")]).await;
    env.sim.fault(Fault::MalformedPush);
    let (ev, skipped) = wait_for(&mut rx, |e| matches!(e, PushEvent::Unknown { .. })).await;
    assert_eq!(
        ev,
        PushEvent::Unknown {
            data_type: "psn:sim:unknown:thing".into()
        }
    );
    assert!(
        skipped.is_empty(),
        "malformed frames make no events: {skipped:?}"
    );
    env.sim.member_join(&p.session_id, "erin", "PS5");
    let (_, skipped) = wait_for(&mut rx, |e| matches!(e, PushEvent::MembersJoined { .. })).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(env.sim.count("pushConnect"), 1, "the socket stayed up");
    stop_and_finish(push, env).await;
}

#[tokio::test]
async fn silent_socket_is_dropped_after_the_pong_timeout() {
    let (env, _p, _party, push, mut rx) = started(&[]).await;
    env.sim.fault(Fault::FreezePush);
    let (ev, _) = wait_for(&mut rx, |e| matches!(e, PushEvent::Disconnected { .. })).await;
    assert!(
        matches!(ev, PushEvent::Disconnected { ref reason } if reason.contains("pong")),
        "{ev:?}"
    );
    wait_for(&mut rx, |e| *e == PushEvent::Connected).await;
    assert_eq!(env.sim.count("serveraddr"), 2);
    stop_and_finish(push, env).await;
}

#[tokio::test]
async fn polling_stands_in_while_push_is_refused() {
    let env = Env::new().await;
    env.sim.fault(Fault::RefusePush { on: true });
    let (p, party) = env.joined_party(&[("alice", "PS5")]).await;
    env.sim.reset_counts();
    let t0 = tokio::time::Instant::now();
    let (push, mut rx) = PushClient::start(party.clone(), Some(p.session_id.clone()), fast());
    let (ev, _) = wait_for(&mut rx, |e| matches!(e, PushEvent::PollingFallback { .. })).await;
    assert_eq!(
        ev,
        PushEvent::PollingFallback {
            active: true,
            interval: Duration::from_millis(300)
        }
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let frank = env.sim.member_join(&p.session_id, "frank", "PS5").unwrap();
    let (ev, _) = wait_for(&mut rx, |e| matches!(e, PushEvent::MembersJoined { .. })).await;
    assert!(
        matches!(ev, PushEvent::MembersJoined { ref members, .. } if members[0].who.account_id == frank),
        "{ev:?}"
    );
    env.sim.member_leave(&p.session_id, &frank);
    wait_for(&mut rx, |e| matches!(e, PushEvent::MembersLeft { .. })).await;
    let polls = env.sim.count("bulkGet");
    let elapsed_ms = t0.elapsed().as_millis() as f64;
    let attempts = env.sim.count("serveraddr");
    env.sim.fault(Fault::RefusePush { on: false });
    wait_for(&mut rx, |e| *e == PushEvent::Connected).await;
    let (ev, _) = wait_for(&mut rx, |e| matches!(e, PushEvent::PollingFallback { .. })).await;
    assert!(matches!(
        ev,
        PushEvent::PollingFallback { active: false, .. }
    ));
    // Bounded: polls at most one per interval, attempts spaced by the backoff.
    eprintln!("fallback: {polls} polls and {attempts} push attempts in {elapsed_ms} ms");
    assert!(
        polls as f64 <= elapsed_ms / 300.0 + 1.0,
        "{polls} polls in {elapsed_ms} ms"
    );
    assert!(polls >= 2, "{polls} polls");
    assert!(attempts <= 10, "{attempts} connect attempts");
    let c = env.sim.counts();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        env.sim.count("bulkGet"),
        c["bulkGet"],
        "polling stops once push is back"
    );
    stop_and_finish(push, env).await;
}

#[tokio::test]
async fn server_errors_on_serveraddr_back_off() {
    let env = Env::signed_in().await;
    env.sim.fault(Fault::ServerError {
        count: 3,
        status: Some(503),
        endpoint: Some("serveraddr".into()),
    });
    let t0 = tokio::time::Instant::now();
    let (push, mut rx) = PushClient::start(env.party_api(), None, fast());
    wait_for(&mut rx, |e| *e == PushEvent::Connected).await;
    assert_eq!(
        env.sim.count("serveraddr"),
        4,
        "three failures, one success"
    );
    assert_eq!(env.sim.count("pushConnect"), 1);
    // Equal-jitter backoff: at least 50 + 100 + 200 ms between the four attempts.
    assert!(
        t0.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t0.elapsed()
    );
    stop_and_finish(push, env).await;
}

#[tokio::test]
async fn expired_token_at_connect_is_refreshed_once() {
    let env = Env::signed_in().await;
    env.sim.fault(Fault::ExpireAccessTokens);
    let (push, mut rx) = PushClient::start(env.party_api(), None, fast());
    wait_for(&mut rx, |e| *e == PushEvent::Connected).await;
    assert_eq!(
        (env.sim.count("serveraddr"), env.sim.count("token")),
        (2, 2)
    );
    stop_and_finish(push, env).await;
}

#[tokio::test]
async fn signed_out_push_fails_without_requests() {
    let env = Env::new().await;
    let (push, mut rx) = PushClient::start(env.party_api(), None, fast());
    let (ev, _) = wait_for(&mut rx, |e| matches!(e, PushEvent::Failed { .. })).await;
    env.seen(&ev);
    assert_eq!(
        ev,
        PushEvent::Failed {
            error: PsnError::NotSignedIn
        }
    );
    assert_eq!(env.sim.total_requests(), 0);
    stop_and_finish(push, env).await;
}

#[tokio::test]
async fn refused_push_without_party_backs_off() {
    let env = Env::signed_in().await;
    env.sim.fault(Fault::RefusePush { on: true });
    let (push, _rx) = PushClient::start(env.party_api(), None, fast());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = env.sim.count("pushConnect");
    eprintln!("refused push: {attempts} attempts in 3 s");
    // Delays of at least 50, 100, 200, 400, 400, ... ms: at most 10 attempts in 3 s.
    assert!((3..=10).contains(&attempts), "{attempts} attempts in 3 s");
    assert_eq!(env.sim.count("serveraddr"), attempts);
    stop_and_finish(push, env).await;
}
