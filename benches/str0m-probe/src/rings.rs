//! Where both receive sides put packets: the plugin's own hand-over (src/party/feed.rs), one
//! member ring per voice behind a routed `TrackFeed`, drained by a playout thread that pulls
//! 10 ms per member every 10 ms as the plugin's delivery thread does (decision 0009). Both
//! sides pay the same for it, and the ring's `received` counter is the packet count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use obs_psn_party::audio::playout::MemberAudio;
use obs_psn_party::audio::ring::BLOCK_FRAMES;
use obs_psn_party::party::feed::{member_feed, shared, FeedStats, MemberStream, TrackFeed};
use obs_psn_party::voice::member::{MemberConfig, MemberVoice};

/// The playout thread's name (not counted on either side).
pub const PLAYOUT_THREAD: &str = "probe-playout";

pub struct Rings {
    origin: Instant,
    add: mpsc::Sender<MemberStream>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    stats: Vec<Arc<FeedStats>>,
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
            stats: vec![],
        }
    }

    /// A ring for one more member (Opus at 16 kHz on payload type 96, as the offers say), and
    /// the track feed routed to it.
    pub fn member(&mut self) -> TrackFeed {
        let voice = MemberVoice::new(MemberConfig::new(16_000, 96)).expect("opus decoder");
        let (sender, stream) = member_feed(voice, self.origin);
        self.stats.push(sender.stats().clone());
        let _ = self.add.send(stream);
        let feed = TrackFeed::default();
        feed.route(Some(shared(sender)));
        feed
    }

    /// Packets the rings took (received) and dropped (full ring or oversized), all members.
    pub fn counts(&self) -> (u64, u64) {
        self.stats.iter().fold((0, 0), |(r, d), s| {
            (
                r + s.received.load(Ordering::Relaxed),
                d + s.dropped.load(Ordering::Relaxed),
            )
        })
    }

    /// Members whose ring has taken at least one packet.
    pub fn members_fed(&self) -> usize {
        self.stats
            .iter()
            .filter(|s| s.received.load(Ordering::Relaxed) > 0)
            .count()
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
