//! The party's playout clock: every 10 ms it pulls 10 ms from every member,
//! writes each member's block to the sources that show that member, and the
//! sum of the members (through a limiter) to the mix sources.
//!
//! One thread of its own runs it. The control side (the party hub, the OBS
//! sources) changes members and subscriptions through a command queue that
//! the clock drains between ticks, so a tick never waits on a lock and
//! allocates nothing (members and subscriptions are preallocated vectors that
//! only change when a command arrives).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::mix::Mixer;
use super::ring::{RingWriter, BLOCK_FRAMES};
use super::thread;

/// The playout period.
pub const TICK: Duration = Duration::from_millis(10);
/// If the clock falls this far behind (the machine stalled), it skips ahead
/// instead of producing a burst of catch-up blocks.
const MAX_CATCH_UP: Duration = Duration::from_millis(100);
/// A member silent for fewer ticks than this (100 ms) gets the silence written
/// to their sources when they resume, before their audio: a shorter gap in a
/// source's audio is not a pause to OBS or the pump (they smooth anything under
/// 70 ms, and the source's lead is 20 ms), and their audio would go on late by
/// the gap. Longer gaps start a new run of timestamps.
const SHORTEST_GAP_TICKS: u32 = 10;
/// What a short silence is filled with.
static SILENT_BLOCK: [f32; BLOCK_FRAMES] = [0.0; BLOCK_FRAMES];

/// One member's audio, pulled 10 ms at a time (jitter buffer + decoder in
/// the plugin, a synthetic signal in tests).
pub trait MemberAudio: Send + 'static {
    /// Fills `out` with the member's next 10 ms, at playout time `now_ns`, or
    /// says the member is silent without touching `out`.
    fn pull_10ms(&mut self, now_ns: u64, out: &mut [f32; BLOCK_FRAMES]) -> Pulled;
}

/// What one pull gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pulled {
    /// `out` holds the member's next 10 ms.
    Audio,
    /// The member is silent (nothing is arriving, nothing is left to play, or
    /// the consent gate is closed): `out` was not touched. The playout adds
    /// nothing to the mix and writes nothing to the member's sources, which
    /// OBS plays as silence: a party of silent members costs next to nothing.
    Silent,
}

/// Which member a `psn_party_member` source shows (its `member` setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberSelector {
    /// A PSN online id (case-insensitive, as PSN treats them).
    OnlineId(String),
    /// `slot:N`: the member holding slot N. A member keeps their slot while
    /// in the party; a newcomer takes the lowest free one. So a member
    /// leaving silences only their own source, and the next to join takes
    /// that source over.
    Slot(usize),
}

/// Where a subscription's blocks go from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Mix,
    Member(MemberSelector),
}

/// What the playout knows of a member.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    pub account_id: String,
    pub online_id: String,
    /// Whether the member is heard in the mix (the user's own console is not, by default).
    pub in_mix: bool,
    /// Whether the member holds a `slot:N` (everyone but the user's own console).
    pub takes_slot: bool,
}

pub type SubscriptionId = u64;

/// The slot of a member who holds none (slots count from 1).
const NO_SLOT: usize = 0;

/// A member in the roster whose voice has not connected yet: silence, in
/// their slot, so slots follow the order members joined in.
pub struct Silence;

impl MemberAudio for Silence {
    fn pull_10ms(&mut self, _now_ns: u64, _out: &mut [f32; BLOCK_FRAMES]) -> Pulled {
        Pulled::Silent
    }
}

enum Command {
    AddMember(MemberInfo, Box<dyn MemberAudio>),
    RemoveMember(String),
    SetInMix(String, bool),
    Subscribe(SubscriptionId, Target, RingWriter),
    Retarget(SubscriptionId, Target),
    Unsubscribe(SubscriptionId),
}

struct MemberEntry {
    info: MemberInfo,
    slot: usize,
    audio: Box<dyn MemberAudio>,
    block: [f32; BLOCK_FRAMES],
    /// What the last tick's pull gave (`block` is current only when `Audio`).
    pulled: Pulled,
    /// `Silent` pulls in a row before this one (saturating; `u32::MAX` before any audio).
    silent_run: u32,
}

struct Subscriber {
    id: SubscriptionId,
    target: Target,
    writer: RingWriter,
    /// Index into `members` this member subscription resolves to, kept
    /// current whenever the members change (never searched per tick).
    resolved: Option<usize>,
    /// Whether the ring has had a block (a short silence is filled only in a
    /// stream that is running).
    fed: bool,
}

/// The clock's state, stepped by `tick`: pure enough to test on virtual time.
pub struct PlayoutEngine {
    members: Vec<MemberEntry>,
    subscriptions: Vec<Subscriber>,
    mix: [f32; BLOCK_FRAMES],
    mixer: Mixer,
}

impl Default for PlayoutEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl PlayoutEngine {
    pub fn new() -> Self {
        PlayoutEngine {
            members: Vec::with_capacity(16),
            subscriptions: Vec::with_capacity(32),
            mix: [0.0; BLOCK_FRAMES],
            mixer: Mixer::default(),
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::AddMember(info, audio) => {
                // A member already known (say, in the roster before their voice
                // connected) keeps their slot; only the audio changes.
                let known = self
                    .members
                    .iter_mut()
                    .find(|m| m.info.account_id == info.account_id);
                if let Some(known) = known {
                    known.info = info;
                    known.audio = audio;
                    known.silent_run = u32::MAX;
                } else {
                    let slot = if info.takes_slot {
                        (1..)
                            .find(|n| self.members.iter().all(|m| m.slot != *n))
                            .unwrap_or(1)
                    } else {
                        NO_SLOT
                    };
                    self.members.push(MemberEntry {
                        info,
                        slot,
                        audio,
                        block: [0.0; BLOCK_FRAMES],
                        pulled: Pulled::Silent,
                        silent_run: u32::MAX,
                    });
                }
            }
            Command::RemoveMember(account_id) => {
                self.members.retain(|m| m.info.account_id != account_id);
            }
            Command::SetInMix(account_id, in_mix) => {
                if let Some(m) = self
                    .members
                    .iter_mut()
                    .find(|m| m.info.account_id == account_id)
                {
                    m.info.in_mix = in_mix;
                }
            }
            Command::Subscribe(id, target, writer) => self.subscriptions.push(Subscriber {
                id,
                target,
                writer,
                resolved: None,
                fed: false,
            }),
            Command::Retarget(id, target) => {
                if let Some(sub) = self.subscriptions.iter_mut().find(|s| s.id == id) {
                    sub.target = target;
                }
            }
            Command::Unsubscribe(id) => self.subscriptions.retain(|s| s.id != id),
        }
        self.resolve();
    }

    /// Points every member subscription at the member it selects now.
    fn resolve(&mut self) {
        for sub in &mut self.subscriptions {
            sub.resolved = match &sub.target {
                Target::Mix => None,
                Target::Member(MemberSelector::Slot(n)) => {
                    self.members.iter().position(|m| m.slot == *n)
                }
                Target::Member(MemberSelector::OnlineId(id)) => self
                    .members
                    .iter()
                    .position(|m| m.info.online_id.eq_ignore_ascii_case(id)),
            };
        }
    }

    /// Puts a member in the roster, as [`Playout::add_member`] does on the clock thread
    /// (the benchmarks drive the engine on virtual time).
    pub fn add_member(&mut self, info: MemberInfo, audio: Box<dyn MemberAudio>) {
        self.apply(Command::AddMember(info, audio));
    }

    /// Starts feeding `writer` from `target`, as [`Playout::subscribe`] does.
    pub fn subscribe(&mut self, id: SubscriptionId, target: Target, writer: RingWriter) {
        self.apply(Command::Subscribe(id, target, writer));
    }

    /// Produces one 10 ms block for every subscription.
    pub fn tick(&mut self, now_ns: u64) {
        self.mixer.begin();
        for member in &mut self.members {
            if member.pulled == Pulled::Silent {
                member.silent_run = member.silent_run.saturating_add(1);
            } else {
                member.silent_run = 0;
            }
            member.pulled = member.audio.pull_10ms(now_ns, &mut member.block);
            if member.pulled == Pulled::Audio && member.info.in_mix {
                self.mixer.add(&member.block);
            }
        }
        self.mixer.finish(&mut self.mix);
        let mut closed = false;
        for sub in &mut self.subscriptions {
            match (&sub.target, sub.resolved) {
                (Target::Mix, _) => {
                    sub.writer.write_deferred(&self.mix);
                }
                (Target::Member(_), Some(index)) => {
                    let member = &self.members[index];
                    // A silent member's source gets nothing (OBS plays that as silence).
                    if member.pulled == Pulled::Audio {
                        if sub.fed && member.silent_run < SHORTEST_GAP_TICKS {
                            for _ in 0..member.silent_run {
                                sub.writer.write_deferred(&SILENT_BLOCK);
                            }
                        }
                        sub.writer.write_deferred(&member.block);
                        sub.fed = true;
                    }
                }
                // The selected member is not in the party: the source is silent.
                (Target::Member(_), None) => {}
            }
            closed |= sub.writer.is_closed();
        }
        // One wake for every ring of this tick (they share the delivery thread).
        super::ring::wake_readers(self.subscriptions.iter().map(|s| &s.writer));
        if closed {
            // A source went away without unsubscribing (destroyed): forget it.
            self.subscriptions.retain(|s| !s.writer.is_closed());
        }
    }

    /// The slot each member holds, by account id (for the properties view).
    pub fn slots(&self) -> Vec<(String, usize)> {
        self.members
            .iter()
            .map(|m| (m.info.account_id.clone(), m.slot))
            .collect()
    }
}

/// The running playout clock. Dropping it stops and joins the thread.
pub struct Playout {
    commands: SyncSender<Command>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    next_subscription: AtomicU64,
    ticks: Arc<AtomicU64>,
    epoch: Instant,
}

impl Playout {
    pub fn start() -> std::io::Result<Playout> {
        let (commands, inbox) = sync_channel(256);
        let epoch = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = stop.clone();
            let ticks = ticks.clone();
            thread::spawn("psn-playout", "party playout", move || {
                run_clock(inbox, &stop, &ticks, epoch)
            })?
        };
        Ok(Playout {
            commands,
            stop,
            thread: Some(thread),
            next_subscription: AtomicU64::new(1),
            ticks,
            epoch,
        })
    }

    /// The instant the clock's `now_ns` counts from: packet arrival times
    /// must be measured from it too.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    fn send(&self, command: Command) {
        thread::send(&self.commands, command);
    }

    pub fn add_member(&self, info: MemberInfo, audio: Box<dyn MemberAudio>) {
        self.send(Command::AddMember(info, audio));
    }

    pub fn remove_member(&self, account_id: &str) {
        self.send(Command::RemoveMember(account_id.to_owned()));
    }

    pub fn set_in_mix(&self, account_id: &str, in_mix: bool) {
        self.send(Command::SetInMix(account_id.to_owned(), in_mix));
    }

    /// Starts feeding `writer` from `target`; the returned id unsubscribes.
    pub fn subscribe(&self, target: Target, writer: RingWriter) -> SubscriptionId {
        let id = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Subscribe(id, target, writer));
        id
    }

    /// Points subscription `id` at another target.
    pub fn retarget(&self, id: SubscriptionId, target: Target) {
        self.send(Command::Retarget(id, target));
    }

    pub fn unsubscribe(&self, id: SubscriptionId) {
        self.send(Command::Unsubscribe(id));
    }

    /// Ticks so far (for status and tests).
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Playout {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_clock(inbox: Receiver<Command>, stop: &AtomicBool, ticks: &AtomicU64, epoch: Instant) {
    let mut engine = PlayoutEngine::new();
    let mut next = epoch;
    while !stop.load(Ordering::Acquire) {
        while let Ok(command) = inbox.try_recv() {
            engine.apply(command);
        }
        let now = Instant::now();
        if now < next {
            std::thread::park_timeout(next - now);
            continue;
        }
        if now - next > MAX_CATCH_UP {
            next = now;
        }
        engine.tick(next.duration_since(epoch).as_nanos() as u64);
        ticks.fetch_add(1, Ordering::Relaxed);
        next += TICK;
        crate::cadence::playout_ticks_at(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::ring::{audio_ring, RingReader};

    /// A member whose every sample is one constant value.
    struct Constant(f32);
    impl MemberAudio for Constant {
        fn pull_10ms(&mut self, _now: u64, out: &mut [f32; BLOCK_FRAMES]) -> Pulled {
            out.fill(self.0);
            Pulled::Audio
        }
    }

    fn member(account: &str, online: &str, in_mix: bool) -> MemberInfo {
        MemberInfo {
            account_id: account.into(),
            online_id: online.into(),
            in_mix,
            takes_slot: online != "me",
        }
    }

    /// The source that shows the member in `n`'s slot.
    fn slot(n: usize) -> Target {
        Target::Member(MemberSelector::Slot(n))
    }

    /// The source that shows the member with this online id (any case).
    fn online_id(id: &str) -> Target {
        Target::Member(MemberSelector::OnlineId(id.into()))
    }

    /// A source's ring, subscribed to `target` as subscription `id`: what the source reads.
    fn source(engine: &mut PlayoutEngine, id: SubscriptionId, target: Target) -> RingReader {
        let (writer, reader) = audio_ring(48_000);
        engine.subscribe(id, target, writer);
        reader
    }

    fn next_block(reader: &mut RingReader) -> Option<f32> {
        let mut block = [0.0; BLOCK_FRAMES];
        reader.pop_block(&mut block).then_some(block[0])
    }

    #[test]
    fn members_go_to_their_sources_and_the_mix_sums_them() {
        let mut engine = PlayoutEngine::new();
        engine.add_member(member("1", "alice", true), Box::new(Constant(0.1)));
        engine.add_member(member("2", "bob", true), Box::new(Constant(0.2)));
        engine.add_member(member("3", "me", false), Box::new(Constant(0.4)));
        let mut r_mix = source(&mut engine, 1, Target::Mix);
        let mut r_a = source(&mut engine, 2, slot(1));
        let mut r_b = source(&mut engine, 3, online_id("BOB"));
        let mut r_me = source(&mut engine, 4, online_id("me"));
        engine.tick(0);
        assert_eq!(next_block(&mut r_a), Some(0.1));
        assert_eq!(next_block(&mut r_b), Some(0.2));
        assert_eq!(next_block(&mut r_me), Some(0.4));
        let mixed = next_block(&mut r_mix).unwrap();
        assert!((mixed - 0.3).abs() < 1e-6, "mix {mixed}");
    }

    #[test]
    fn slots_are_sticky_and_a_newcomer_takes_the_free_one() {
        let mut engine = PlayoutEngine::new();
        let mut r1 = source(&mut engine, 1, slot(1));
        let mut r2 = source(&mut engine, 2, slot(2));
        engine.add_member(member("a", "a", true), Box::new(Constant(0.1)));
        engine.add_member(member("b", "b", true), Box::new(Constant(0.2)));
        engine.tick(0);
        assert_eq!(
            (next_block(&mut r1), next_block(&mut r2)),
            (Some(0.1), Some(0.2))
        );
        // The first member leaves: only slot 1 goes silent.
        engine.apply(Command::RemoveMember("a".into()));
        engine.tick(10_000_000);
        assert_eq!(
            (next_block(&mut r1), next_block(&mut r2)),
            (None, Some(0.2))
        );
        // A newcomer takes slot 1.
        engine.add_member(member("c", "c", true), Box::new(Constant(0.3)));
        engine.tick(20_000_000);
        assert_eq!(
            (next_block(&mut r1), next_block(&mut r2)),
            (Some(0.3), Some(0.2))
        );
    }

    #[test]
    fn a_member_known_before_their_voice_keeps_their_slot() {
        let mut engine = PlayoutEngine::new();
        let mut r = source(&mut engine, 1, slot(1));
        // The roster is known first (join order a, b); b's voice connects first.
        engine.add_member(member("a", "a", true), Box::new(Silence));
        engine.add_member(member("b", "b", true), Box::new(Silence));
        engine.add_member(member("b", "b", true), Box::new(Constant(0.2)));
        engine.add_member(member("a", "a", true), Box::new(Constant(0.1)));
        engine.tick(0);
        assert_eq!(next_block(&mut r), Some(0.1));
        // The user's own console takes no slot.
        engine.add_member(member("me", "me", false), Box::new(Constant(0.4)));
        let slots = engine.slots();
        assert_eq!(
            slots.iter().find(|(a, _)| a == "me").map(|s| s.1),
            Some(NO_SLOT)
        );
    }

    /// Sound (0.1) on the ticks `talks` says, silent otherwise.
    struct Talkspurts(Vec<bool>, usize);
    impl MemberAudio for Talkspurts {
        fn pull_10ms(&mut self, _now: u64, out: &mut [f32; BLOCK_FRAMES]) -> Pulled {
            let talking = self.0.get(self.1).copied().unwrap_or(false);
            self.1 += 1;
            if !talking {
                return Pulled::Silent;
            }
            out.fill(0.1);
            Pulled::Audio
        }
    }

    #[test]
    fn a_silent_member_writes_nothing_and_the_mix_stays_continuous() {
        let mut engine = PlayoutEngine::new();
        // a talks on ticks 2..5, b never (a roster member whose voice has not connected).
        let talks = (0..10).map(|t| (2..5).contains(&t)).collect();
        engine.add_member(member("1", "a", true), Box::new(Talkspurts(talks, 0)));
        engine.add_member(member("2", "b", true), Box::new(Silence));
        let mut r_mix = source(&mut engine, 1, Target::Mix);
        let mut r_a = source(&mut engine, 2, slot(1));
        let mut r_b = source(&mut engine, 3, slot(2));
        let mut mix = Vec::new();
        let mut a = Vec::new();
        for t in 0..10u64 {
            engine.tick(t * 10_000_000);
            mix.push(next_block(&mut r_mix));
            a.push(next_block(&mut r_a));
            assert_eq!(next_block(&mut r_mix), None, "one mix block per tick");
        }
        let heard = |v: f32| Some(v);
        assert_eq!(
            mix,
            [0.0, 0.0, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0].map(heard),
            "the mix: a block every tick, silence while nobody talks"
        );
        let talked: Vec<Option<f32>> = (0..10)
            .map(|t| (2..5).contains(&t).then_some(0.1))
            .collect();
        assert_eq!(a, talked, "a's source gets a's talkspurt, nothing else");
        assert_eq!(next_block(&mut r_b), None, "b's source gets nothing");
    }

    /// A silence under 100 ms is written (late, at the next audio) so the source's audio goes
    /// on without a gap its pump would smooth over; a longer one leaves a gap.
    #[test]
    fn a_short_silence_is_filled_when_the_member_resumes() {
        let mut engine = PlayoutEngine::new();
        // Talks 3 ticks, silent 3, talks 2, silent 12, talks 2.
        let talks = [(3, true), (3, false), (2, true), (12, false), (2, true)]
            .iter()
            .flat_map(|&(n, talking)| std::iter::repeat_n(talking, n))
            .collect();
        engine.add_member(member("1", "a", true), Box::new(Talkspurts(talks, 0)));
        let mut r = source(&mut engine, 1, slot(1));
        let mut written = Vec::new();
        for t in 0..22u64 {
            engine.tick(t * 10_000_000);
            while let Some(v) = next_block(&mut r) {
                written.push((t, v));
            }
        }
        let expected = [
            (0, 0.1),
            (1, 0.1),
            (2, 0.1),
            // The 30 ms silence, then the audio.
            (6, 0.0),
            (6, 0.0),
            (6, 0.0),
            (6, 0.1),
            (7, 0.1),
            // After 120 ms of silence: no fill.
            (20, 0.1),
            (21, 0.1),
        ];
        assert_eq!(written, expected);
    }

    #[test]
    fn a_loud_party_never_clips() {
        let mut engine = PlayoutEngine::new();
        let mut r = source(&mut engine, 1, Target::Mix);
        for i in 0..8 {
            engine.apply(Command::AddMember(
                member(&i.to_string(), "x", true),
                Box::new(Constant(0.9)),
            ));
        }
        let mut block = [0.0; BLOCK_FRAMES];
        for t in 0..50 {
            engine.tick(t * 10_000_000);
            assert!(r.pop_block(&mut block));
            assert!(block.iter().all(|s| s.abs() <= 1.0), "clipped at tick {t}");
        }
    }

    #[test]
    fn a_destroyed_source_is_forgotten() {
        let mut engine = PlayoutEngine::new();
        drop(source(&mut engine, 1, Target::Mix));
        engine.tick(0);
        assert!(engine.subscriptions.is_empty());
    }

    #[test]
    fn the_clock_thread_ticks_every_10ms_and_stops_promptly() {
        // What must hold on a busy machine too: paced by the clock (never more ticks than
        // 10 ms periods went by), ticking, and stopping without waiting on anything. How
        // regular the ticks are is a timing figure, for the benchmarks.
        let mut playout = Playout::start().unwrap();
        let (w, mut r) = audio_ring(48_000);
        let begun = Instant::now();
        playout.add_member(member("1", "a", true), Box::new(Constant(0.5)));
        playout.subscribe(slot(1), w);
        std::thread::sleep(Duration::from_millis(500));
        let ticks = playout.ticks();
        let periods = begun.elapsed().as_millis() as u64 / 10;
        let started = Instant::now();
        playout.stop();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "stop took {:?}",
            started.elapsed()
        );
        assert!(
            (1..=periods + 1).contains(&ticks),
            "{ticks} ticks in {periods} periods"
        );
        let mut blocks = 0;
        let mut block = [0.0; BLOCK_FRAMES];
        while r.pop_block(&mut block) {
            assert_eq!(block[0], 0.5);
            blocks += 1;
        }
        assert!(blocks >= 1);
    }
}
