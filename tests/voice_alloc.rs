//! The audio path allocates nothing per packet or per pull in steady state: a counting
//! global allocator watches `MemberVoice::push`, `MemberVoice::pull_10ms` and the mixer, and
//! the same through the packet feed (`PacketSender::send` as the peer's track reader calls it,
//! through a routed `TrackFeed`, and the playout's `MemberStream::pull_10ms`).
//! (This file is the only test in its binary, so no other test allocates meanwhile.)

mod support;

use obs_psn_party::audio::mix::Mixer;
use obs_psn_party::audio::playout::{MemberAudio, Pulled};
use obs_psn_party::party::feed::{member_feed, shared, TrackFeed};
use obs_psn_party::voice::member::MemberVoice;
use obs_psn_party::voice::peer::{PacketSink, RtpEvent};
use obs_psn_party::voice::BLOCK;
use support::counting_alloc::{thread_allocations, CountingAllocator};
use support::voice::*;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn steady_state_push_pull_and_mix_do_not_allocate() {
    let sc = Scenario {
        duration_ms: 20_000,
        loss: 0.1,
        jitter_ms: 40,
        duplicate: 0.05,
        red: true,
        pauses: Pauses::Silent {
            talk_ms: 3_000,
            pause_ms: 700,
        },
        ..Default::default()
    };
    let stream = make_stream(&sc);
    let mut members: Vec<MemberVoice> = (0..4).map(|_| scenario_member(&sc)).collect();
    // A fifth member behind the feed, as the plugin runs it. Its packets are made before the
    // count starts (the peer's reader gets them from the stack, payloads and all).
    let origin = std::time::Instant::now();
    let (sender, mut fed) = member_feed(scenario_member(&sc), origin);
    let track = TrackFeed::default();
    track.route(Some(shared(sender)));
    let events: Vec<RtpEvent> = stream
        .packets
        .iter()
        .map(|p| RtpEvent {
            member: "fed".into(),
            ssrc: 1,
            payload_type: p.pt,
            seq: p.seq,
            timestamp: p.ts,
            marker: p.marker,
            payload: bytes::Bytes::from(p.payload.clone()),
            arrival: origin + std::time::Duration::from_nanos(p.arrival_ns),
        })
        .collect();
    let mut fed_block = [0f32; BLOCK];
    let mut mixer = Mixer::default();
    let mut blocks = [[0f32; BLOCK]; 4];
    let mut out = [0f32; BLOCK];
    let mut next = 0;
    let mut now = 0u64;
    let mut armed_pulls = 0;
    // Counted from 2 s on (steady state), on this thread, where all the work runs.
    let mut armed_at: Option<u64> = None;
    while now < sc.duration_ms * MS {
        if now == 2_000 * MS {
            armed_at = Some(thread_allocations());
        }
        while next < stream.packets.len() && stream.packets[next].arrival_ns <= now {
            let p = stream.packets[next].rtp_in();
            for m in &mut members {
                m.push(&p);
            }
            assert!(track.deliver(&events[next]));
            next += 1;
        }
        mixer.begin();
        for (m, b) in members.iter_mut().zip(blocks.iter_mut()) {
            m.pull_10ms(now, b);
            mixer.add(b);
        }
        if fed.pull_10ms(now, &mut fed_block) == Pulled::Audio {
            mixer.add(&fed_block);
        }
        mixer.finish(&mut out);
        if armed_at.is_some() {
            armed_pulls += 1;
        }
        now += 10 * MS;
    }
    let n = thread_allocations() - armed_at.expect("the run passes 2 s");
    println!("allocations in {armed_pulls} steady-state rounds of 5 members: {n}");
    assert_eq!(
        fed.stats()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(armed_pulls > 1000);
    assert_eq!(n, 0);
}
