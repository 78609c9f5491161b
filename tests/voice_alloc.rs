//! The audio path allocates nothing per packet or per pull in steady state: a counting
//! global allocator watches `Member::push`, `Member::pull_10ms` and the mixer.
//! (This file is the only test in its binary, so no other test allocates meanwhile.)

mod voice_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use obs_psn_party::audio::mix::Mixer;
use obs_psn_party::voice::member::{Member, MemberConfig};
use obs_psn_party::voice::rtp::RtpIn;
use obs_psn_party::voice::BLOCK;
use voice_support::*;

struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let mut cfg = MemberConfig::new(sc.clock_rate, OPUS_PT);
    cfg.red_pt = Some(RED_PT);
    let mut members: Vec<Member> = (0..4).map(|_| Member::new(cfg.clone()).unwrap()).collect();
    let mut mixer = Mixer::default();
    let mut blocks = [[0f32; BLOCK]; 4];
    let mut out = [0f32; BLOCK];
    let mut next = 0;
    let mut now = 0u64;
    let mut armed_pulls = 0;
    while now < sc.duration_ms * MS {
        if now == 2_000 * MS {
            ARMED.store(true, Ordering::SeqCst);
        }
        while next < stream.packets.len() && stream.packets[next].arrival_ns <= now {
            let p = &stream.packets[next];
            for m in &mut members {
                m.push(&RtpIn {
                    payload_type: p.pt,
                    seq: p.seq,
                    timestamp: p.ts,
                    marker: p.marker,
                    payload: &p.payload,
                    arrival_ns: p.arrival_ns,
                });
            }
            next += 1;
        }
        mixer.begin();
        for (m, b) in members.iter_mut().zip(blocks.iter_mut()) {
            m.pull_10ms(now, b);
            mixer.add(b);
        }
        mixer.finish(&mut out);
        if ARMED.load(Ordering::Relaxed) {
            armed_pulls += 1;
        }
        now += 10 * MS;
    }
    ARMED.store(false, Ordering::SeqCst);
    let n = ALLOCS.load(Ordering::SeqCst);
    println!("allocations in {armed_pulls} steady-state rounds of 4 members: {n}");
    assert!(armed_pulls > 1000);
    assert_eq!(n, 0);
}
