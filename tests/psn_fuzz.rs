//! Property tests and a deterministic fuzz loop for the two parsers that read what the network
//! sends: the customMessage codec and the push frame parser. `PSN_FUZZ_ITERS` makes the loop
//! longer (the cargo-fuzz targets in fuzz/ do the same with coverage guidance).

mod support;

use obs_psn_party::psn::custom_message::{self, Media, MediaRecord, Message, Signal, UserRef};
use obs_psn_party::psn::push::parse_frame;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use support::mutate::mutate;
use support::psn::offer_message;

fn user() -> impl Strategy<Value = UserRef> {
    ("[0-9]{1,20}", any::<u64>()).prop_map(|(account_id, platform)| UserRef {
        account_id,
        platform,
    })
}

fn message() -> impl Strategy<Value = Message> {
    (
        user(),
        user(),
        any::<u64>(),
        ".*",
        "[a-z]{0,8}",
        "[0-9]{1,3}",
        prop::collection::vec(user(), 0..4),
        any::<u64>(),
        any::<u64>(),
        "[0-9/]{1,8}",
        prop::collection::vec(("[a-z_]{0,10}", "[0-9]{1,2}"), 0..3),
    )
        .prop_map(
            |(from, to, seq, sdp, kind, sdp_seq, users, acct, plat, version_line, records)| {
                Message {
                    sender_account_id: acct,
                    sender_platform: plat,
                    version_line,
                    signal: Signal {
                        medias: vec![Media {
                            media_records: records
                                .into_iter()
                                .map(|(media_identifier, mid)| MediaRecord {
                                    media_identifier,
                                    mid,
                                })
                                .collect(),
                            msids: vec!["0".into()],
                            user: from.clone(),
                        }],
                        from,
                        global_seq_num: seq,
                        sdp,
                        sdp_sequence_number: sdp_seq,
                        to,
                        kind,
                        users,
                    },
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn custom_message_round_trips(m in message()) {
        let bytes = custom_message::encode(&m);
        prop_assert_eq!(bytes.len() - custom_message::HEADER_LEN, u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize);
        prop_assert_eq!(custom_message::decode(&bytes), Ok(m.clone()));
        prop_assert_eq!(custom_message::decode_payload(&custom_message::encode_payload(&m)), Ok(m));
    }

    #[test]
    fn custom_message_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = custom_message::decode(&bytes);
    }

    #[test]
    fn custom_message_decoder_survives_mutation(m in message(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut bytes = custom_message::encode(&m);
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let _ = custom_message::decode(&bytes);
        let _ = custom_message::decode(&bytes[..cut.index(bytes.len() + 1)]);
    }

    #[test]
    fn payload_decoder_never_panics(s in ".*") {
        let _ = custom_message::decode_payload(&s);
        let _ = custom_message::decode_payload(&format!("{}{s}", custom_message::PAYLOAD_PREFIX));
    }

    #[test]
    fn push_parser_never_panics(s in ".*") {
        let _ = parse_frame(&s);
    }

    #[test]
    fn push_parser_survives_json_of_any_shape(
        data_type in prop::sample::select(vec![
            "psn:sessionManager:sys:v2:ps:members:created", "psn:sessionManager:sys:v2:ps:members:deleted",
            "psn:sessionManager:sys:v2:ps:customMessage:noSeq:created", "psn:sessionManager:sys:v2:ps:m:customData4:updated",
            "psn:sessionManager:sys:outside:v2:partySession:deleted", "psn:sessionManager:sys:v2:ps:owner:updated", "x",
        ]),
        data in arb_json(),
    ) {
        let frame = serde_json::json!({"version":"3.0","method":3001,"dataType":data_type,"body":{"data":data}});
        let _ = parse_frame(&frame.to_string());
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-zA-Z0-9:]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "sessionId",
                    "members",
                    "customMessage",
                    "channel",
                    "payload",
                    "customProperties",
                    "from",
                    "accountId",
                    "customData4"
                ]),
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

/// A seeded mutation loop over valid inputs: `PSN_FUZZ_ITERS` (default 20000) executions each.
#[test]
fn mutation_loop() {
    let iters: u64 = std::env::var("PSN_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5053_4e00);
    let seed_msg = offer_message("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n");
    let seed_frame = br#"{"version":"3.0","method":3001,"dataType":"psn:sessionManager:sys:v2:ps:customMessage:noSeq:created","to":{"accountId":"1"},"body":{"data":{"sessionId":"s","customProperties":{"from":{"accountId":"2","onlineId":"b","platform":"PS5"}},"customMessage":{"channel":"miranda:12","payload":"ver=1.0, type=binary, body=AQ=="}}}}"#.to_vec();
    let seeds = [seed_msg, seed_frame];
    let mut execs = 0u64;
    for _ in 0..iters {
        for seed in &seeds {
            let mut b = seed.clone();
            for _ in 0..rng.random_range(1..6) {
                mutate(&mut rng, &mut b, &seeds);
            }
            let _ = custom_message::decode(&b);
            let _ = parse_frame(&String::from_utf8_lossy(&b));
            execs += 2;
        }
    }
    eprintln!("mutation_loop: {execs} executions");
}
