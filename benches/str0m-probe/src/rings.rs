//! Where both receive sides put packets: the plugin's own hand-over (src/party/feed.rs), one
//! member ring per voice behind a routed `TrackFeed`, drained by a playout thread that pulls
//! 10 ms per member every 10 ms as the plugin's delivery thread does (decision 0009). Both
//! sides pay the same for it, and the ring's `received` counter is the packet count.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use obs_psn_party::audio::playout::MemberAudio;
use obs_psn_party::audio::ring::BLOCK_FRAMES;
use obs_psn_party::party::feed::{member_feed, shared, FeedStats, MemberStream, TrackFeed};
use obs_psn_party::voice::member::{MemberConfig, MemberVoice};
use obs_psn_party::voice::peer::{PacketSink, RtpEvent, TrackSinks};

/// The playout thread's name (not counted on either side).
pub const PLAYOUT_THREAD: &str = "probe-playout";

/// One member's way into its ring: the plugin's routed `TrackFeed`, and the first sequence
/// number that came through (to tell a packet lost at a connection's start from one lost later).
#[derive(Clone)]
pub struct MemberFeed {
    pub account: String,
    feed: TrackFeed,
    stats: Arc<FeedStats>,
    /// `NONE` until the first packet.
    first_seq: Arc<AtomicU32>,
}

const NONE: u32 = u32::MAX;

impl MemberFeed {
    pub fn received(&self) -> u64 {
        self.stats.received.load(Ordering::Relaxed)
    }

    pub fn first_seq(&self) -> Option<u16> {
        u16::try_from(self.first_seq.load(Ordering::Relaxed)).ok()
    }
}

impl PacketSink for MemberFeed {
    fn deliver(&self, packet: &RtpEvent) -> bool {
        if self.first_seq.load(Ordering::Relaxed) == NONE {
            self.first_seq
                .store(u32::from(packet.seq), Ordering::Relaxed);
        }
        self.feed.deliver(packet)
    }
}

impl TrackSinks for MemberFeed {
    fn sink_for(&self, _track: &str) -> Arc<dyn PacketSink> {
        Arc::new(self.clone())
    }
}

pub struct Rings {
    origin: Instant,
    add: mpsc::Sender<MemberStream>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub members: Vec<Arc<MemberFeed>>,
}

impl Rings {
    pub fn start() -> Self {
        let origin = Instant::now();
        let (add, added) = mpsc::channel::<MemberStream>();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(PLAYOUT_THREAD.into())
            .spawn(move || {
                let mut members: Vec<MemberStream> = vec![];
                let mut out = [0f32; BLOCK_FRAMES];
                let mut next = Instant::now();
                while !stop2.load(Ordering::Relaxed) {
                    members.extend(added.try_iter());
                    let now_ns = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    for m in &mut members {
                        m.pull_10ms(now_ns, &mut out);
                    }
                    next += Duration::from_millis(10);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
            .expect("playout thread");
        Self {
            origin,
            add,
            stop,
            thread: Some(thread),
            members: vec![],
        }
    }

    /// A ring for `account` (Opus at 16 kHz on payload type 96, as the offers say), and the
    /// routed feed into it.
    pub fn member(&mut self, account: &str) -> Arc<MemberFeed> {
        let voice = MemberVoice::new(MemberConfig::new(16_000, 96)).expect("opus decoder");
        let (sender, stream) = member_feed(voice, self.origin);
        let stats = sender.stats().clone();
        let _ = self.add.send(stream);
        let feed = TrackFeed::default();
        feed.route(Some(shared(sender)));
        let m = Arc::new(MemberFeed {
            account: account.to_owned(),
            feed,
            stats,
            first_seq: Arc::new(AtomicU32::new(NONE)),
        });
        self.members.push(m.clone());
        m
    }

    /// Packets the rings took (received) and dropped (full ring or oversized), all members.
    pub fn counts(&self) -> (u64, u64) {
        self.members.iter().fold((0, 0), |(r, d), m| {
            (
                r + m.stats.received.load(Ordering::Relaxed),
                d + m.stats.dropped.load(Ordering::Relaxed),
            )
        })
    }

    /// Members whose ring has taken at least one packet.
    pub fn members_fed(&self) -> usize {
        self.members.iter().filter(|m| m.received() > 0).count()
    }
}

impl Drop for Rings {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
