//! One device identity (issue 15): the device id (`duid`) sent on authorize, kept with the
//! sign-in and the same on every sign-in of an install; the push context id named in every
//! join; a membership left behind by a crash replaced on rejoining; the JSON bodies' key order as
//! recorded; psn-sim's rules for the signalling the user's device sends.

mod support;

use obs_psn_party::psn::custom_message::{
    self, Message, Recipient, Signal, UserRef, PLATFORM_MOBILE_APP, PLATFORM_PS5,
};
use obs_psn_party::psn::party_api::PartyApi;
use obs_psn_party::psn::{PsnError, Secret};
use support::psn::*;

#[tokio::test]
async fn one_device_id_sent_on_authorize_and_kept_with_the_sign_in() {
    let env = Env::signed_in().await;
    let duid = env.client.device_id().to_owned();
    assert_eq!(env.sim.device_ids(), vec![duid.clone()]);
    let stored = std::fs::read_to_string(env.dir.join("psn-tokens.json")).unwrap();
    assert!(
        stored.contains(&format!(r#""duid":"{duid}""#)),
        "the token store keeps the duid"
    );
    // A restart of OBS: the same device, from the token store, even if the install's own
    // device-id file is gone (the tokens belong to the device they were issued to).
    std::fs::remove_file(env.dir.join("device_id")).unwrap();
    let again = env.second_client(fast_http());
    assert_eq!(again.device_id(), duid);
    // Signing in again (a new NPSSO) keeps the device.
    again
        .sign_in_with_npsso(Secret::new(env.sim.config().npsso))
        .await
        .unwrap();
    assert_eq!(env.sim.device_ids(), vec![duid.clone()]);
    // The membership PSN makes carries that device.
    let p = env.sim.start_party("", &[("alice", "PS5")]);
    let party = PartyApi::new(again.clone());
    party.join(&p.session_id).await.unwrap();
    assert_eq!(env.sim.user_app_memberships(&p.session_id), vec![duid]);
    env.finish();
}

#[tokio::test]
async fn every_join_names_one_push_context_in_the_recorded_key_order() {
    let env = Env::new().await;
    let (p, party) = env.joined_party(&[("alice", "PS5")]).await;
    party.leave(&p.session_id).await.unwrap();
    party.join(&p.session_id).await.unwrap();
    let bodies = env.sim.request_bodies("join");
    assert_eq!(bodies.len(), 2);
    let context = party.push_context_id();
    for b in &bodies {
        let text = String::from_utf8_lossy(b);
        // Byte for byte the recorded order, whichever build this is (serde_json's
        // `preserve_order` is the plugin's own feature).
        let want = format!(
            r#"{{"members":[{{"accountId":"me","platform":"me","customData4":"{}","pushContexts":[{{"contextId":"{context}"}}],"voiceChatActivated":true}}]}}"#,
            obs_psn_party::psn::party_api::encode_custom_data4(
                &obs_psn_party::psn::party_api::DEFAULT_CUSTOM_DATA4
            )
        );
        assert_eq!(text, want);
    }
    env.finish();
}

#[tokio::test]
async fn a_membership_left_by_a_crash_is_left_before_joining_again() {
    let env = Env::new().await;
    let me = env.sign_in().await;
    let p = env.sim.start_party("", &[("alice", "PS5")]);
    // The first run joins, then "crashes": nothing leaves, PSN keeps the membership.
    PartyApi::new(env.client.clone())
        .join(&p.session_id)
        .await
        .unwrap();
    let before_crash = PartyApi::new(env.client.clone())
        .list_parties()
        .await
        .unwrap();
    // The next run: a plain join from the same device is refused ...
    let next = env.second_client(fast_http());
    let party = PartyApi::new(next.clone());
    let err = party.join(&p.session_id).await.unwrap_err();
    assert!(matches!(err, PsnError::Api { status: 409, .. }), "{err:?}");
    // ... and the join that replaces a stale membership leaves it first (found in the roster).
    let roster = party.list_parties().await.unwrap().remove(0);
    party.join_replacing_stale(&roster, &me).await.unwrap();
    assert_eq!(env.sim.count("leave"), 1);
    assert_eq!(env.sim.user_app_memberships(&p.session_id).len(), 1);
    // A roster read before the stale membership existed: the 409 leads to the same.
    env.sim.place_stale_membership(&p.session_id);
    assert_eq!(env.sim.user_app_memberships(&p.session_id).len(), 2);
    let stale_party = before_crash
        .into_iter()
        .find(|x| x.session_id == p.session_id)
        .map(|mut x| {
            x.members.retain(|m| m.platform != "MOBILE_APP");
            x
        })
        .unwrap();
    env.sim.user_leave(&p.session_id);
    party.join_replacing_stale(&stale_party, &me).await.unwrap();
    assert_eq!(env.sim.user_app_memberships(&p.session_id).len(), 1);
    env.finish();
}

fn signal(me: &str, to: &str, kind: &str, global: u64, sdp_seq: &str, to_platform: u64) -> String {
    let mut s = Signal::new(
        kind,
        UserRef {
            account_id: me.into(),
            platform: PLATFORM_MOBILE_APP,
        },
        UserRef {
            account_id: to.into(),
            platform: to_platform,
        },
        "v=0\r\n".into(),
        global,
    );
    s.sdp_sequence_number = sdp_seq.into();
    custom_message::encode_payload(&Message::from_signal(s))
}

#[tokio::test]
async fn psn_sim_holds_back_signalling_that_breaks_the_rules() {
    let env = Env::new().await;
    let (p, party) = env
        .joined_party(&[("alice", "PS5"), ("phil", "MOBILE_APP")])
        .await;
    let me = env.sim.config().account_id;
    let alice = p.members[1].0.clone();
    let phil = p.members[2].0.clone();
    // A signal from the user to `to`, sent to it on `platform`; `to_code` is the platform the
    // signal itself names.
    let send = |to: &str, platform: &str, kind: &str, global: u64, sdp_seq: &str, to_code: u64| {
        let payload = signal(&me, to, kind, global, sdp_seq, to_code);
        let recipient = [Recipient {
            account_id: to.into(),
            platform: platform.into(),
        }];
        let (party, sid) = (&party, &p.session_id);
        async move {
            let channel = custom_message::DEFAULT_CHANNEL;
            let sent = party.send_custom_message(sid, channel, &payload, &recipient);
            sent.await.unwrap()
        }
    };
    send(&alice, "PS5", "offer", 1, "1", PLATFORM_PS5).await;
    send(&alice, "PS5", "offer", 2, "2", PLATFORM_PS5).await;
    assert!(
        env.sim.signal_violations().is_empty(),
        "{:?}",
        env.sim.signal_violations()
    );
    // A re-offer that does not count up, a repeated global_seq_num, a phone member relabelled.
    send(&alice, "PS5", "offer", 3, "2", PLATFORM_PS5).await;
    send(&alice, "PS5", "answer", 2, "2", PLATFORM_PS5).await;
    send(&phil, "MOBILE_APP", "offer", 1, "1", PLATFORM_PS5).await;
    let v = env.sim.signal_violations();
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v[0].contains("sdp_sequence_number 2 after 2"), "{v:?}");
    assert!(v[1].contains("global_seq_num 2 repeated"), "{v:?}");
    assert!(
        v[2].contains("`to.platform` 5 for a MOBILE_APP member"),
        "{v:?}"
    );
    send(&phil, "MOBILE_APP", "offer", 2, "1", PLATFORM_MOBILE_APP).await;
    assert_eq!(env.sim.signal_violations().len(), 3);
    env.finish();
}
