//! The fuzz targets of `fuzz/`, run briefly on stable in every `cargo test` (so in CI): each
//! target's body (`obs_psn_party::fuzz_bodies`) on valid inputs, then on random mutations of
//! them (byte flips, deletions, insertions, cuts, splices) from a fixed seed, for
//! `FUZZ_BRIEF_SECS` seconds per target (default 2). libFuzzer's coverage-guided runs are
//! `fuzz/run.sh SECONDS` (nightly); a panic here is a finding either way.

mod support;

use std::time::{Duration, Instant};

use obs_psn_party::fuzz_bodies as body;
use rand::{Rng, SeedableRng};
use support::mutate::mutate;
use support::psn::offer_message;

fn budget() -> Duration {
    let secs = std::env::var("FUZZ_BRIEF_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// Runs `target` on each seed, then on mutations of them until the budget is spent.
fn fuzz(name: &str, seeds: &[Vec<u8>], target: fn(&[u8])) {
    assert!(!seeds.is_empty());
    for seed in seeds {
        target(seed);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xf022 ^ name.len() as u64);
    let started = Instant::now();
    let mut execs = seeds.len() as u64;
    while started.elapsed() < budget() {
        for _ in 0..64 {
            let mut b = seeds[rng.random_range(0..seeds.len())].clone();
            for _ in 0..rng.random_range(1..8) {
                mutate(&mut rng, &mut b, seeds);
            }
            target(&b);
            execs += 1;
        }
    }
    println!(
        "{name}: {execs} inputs in {:.1} s, no panic",
        started.elapsed().as_secs_f64()
    );
}

fn texts(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn custom_message_decode() {
    let mut seeds = vec![offer_message(include_str!(
        "voice_fixtures/member-offer.sdp"
    ))];
    seeds.extend(body::custom_message_seeds());
    fuzz("custom_message_decode", &seeds, body::custom_message_decode);
}

#[test]
fn push_frame_parse() {
    fuzz(
        "push_frame_parse",
        &texts(&[
            r#"{"version":"3.0","method":3001,"dataType":"psn:sessionManager:sys:v2:ps:members:created","to":{"accountId":"1"},"body":{"data":{"sessionId":"s","customProperties":{"from":{"accountId":"2"}},"members":[{"accountId":"2","onlineId":"b","platform":"PS5"}]}}}"#,
            r#"{"version":"3.0","method":3001,"dataType":"psn:sessionManager:sys:v2:ps:customMessage:noSeq:created","to":{"accountId":"1"},"body":{"data":{"sessionId":"s","customProperties":{"from":{"accountId":"2","onlineId":"b","platform":"PS5"}},"customMessage":{"channel":"miranda:12","payload":"ver=1.0, type=binary, body=AQ=="}}}}"#,
        ]),
        body::push_frame_parse,
    );
}

#[test]
fn psn_json_answers() {
    fuzz(
        "psn_json_answers",
        &texts(&[
            r#"{"parties":[{"sessionId":"s","sessionName":"n","members":[{"accountId":"1","onlineId":"a","platform":"PS5"}],"maxMembers":16}]}"#,
            r#"{"partySessions":[{"sessionId":"s","members":[]}]}"#,
            r#"{"peer":{"peerId":"p","offer":{"sdp":"v=0"}},"bridge":{"bridgeId":"b","bridgeToken":"t","bridgeHostingType":"x"}}"#,
            r#"{"access_token":"a.b.c","expires_in":3600,"refresh_token":"r","refresh_token_expires_in":5184000}"#,
            r#"{"sessionName":"n","isJoinable":true,"members":[{"isHost":true,"onlineId":"a","accountId":"1"}],"sessionId":"s"}"#,
        ]),
        body::psn_json_answers,
    );
}

#[test]
fn psn_text_parsers() {
    fuzz(
        "psn_text_parsers",
        &texts(&[
            r#"{"error":{"referenceId":"r-1","code":2285581,"message":"Resource not found"}}"#,
            "com.scee.psxandroid.scecompcall://redirect/?code=v3.AbCdEf&cid=0b2c",
            "eyJhbGciOiJSUzI1NiJ9.eyJhY2NvdW50X2lkIjoiMTIzIn0.c2ln",
            "PSN_CLIENT_ID=abc\n# comment\nPSN_NPSSO=\"quoted value\"\n",
            r#"{"access_token":"secret","npsso":"x","nested":{"refresh_token":"y"}}"#,
        ]),
        body::psn_text_parsers,
    );
}

#[test]
fn sdp_offer() {
    fuzz(
        "sdp_offer",
        &texts(&[include_str!("voice_fixtures/member-offer.sdp")]),
        body::sdp_offer,
    );
}

#[test]
fn rtp_into_member() {
    // A talkspurt as a member sends it: 40 ms Opus packets of a tone on a 16 kHz clock, in
    // the target's packet layout (10 bytes of header, then the payload).
    let mut enc =
        opus::Encoder::new(16_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    let mut seed = vec![0u8];
    for k in 0..12u32 {
        let pcm: Vec<f32> = (0..640)
            .map(|i| {
                (f64::from(k * 640 + i) * 440.0 * std::f64::consts::TAU / 16_000.0).sin() as f32
                    * 0.3
            })
            .collect();
        let packet = enc.encode_vec_float(&pcm, 400).unwrap();
        let seq = (1000 + k) as u16;
        let ts = 5000 + k * 640;
        seed.push(0); // Opus
        seed.extend_from_slice(&seq.to_be_bytes());
        seed.extend_from_slice(&ts.to_be_bytes());
        seed.push(40); // 40 ms after the previous one
        seed.push(if k == 0 { 0b1000_0001 } else { 0b1000_0000 }); // marker, 2 pulls
        seed.push(packet.len().min(255) as u8);
        seed.extend_from_slice(&packet[..packet.len().min(255)]);
    }
    fuzz("rtp_into_member", &[seed], body::rtp_into_member);
}
