//! The hand-over of one member's RTP packets from the network (tokio tasks)
//! to the playout thread, where the member's jitter buffer and decoder live.
//!
//! A lock-free SPSC ring of fixed-size packet slots: the network side copies
//! each packet into a slot (no allocation, never waits; a full ring drops the
//! packet, which the jitter buffer then treats as lost), the playout side
//! drains the slots into `voice::MemberVoice` right before pulling 10 ms from it.
//!
//! The network side is the peer's track reader itself ([`TrackFeed`], a
//! `voice::peer::PacketSink`): packets go from the socket task into the ring with no hop
//! through the party follower's loop, which only routes a track (says which ring it feeds).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ringbuf::traits::{Consumer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::audio::playout::{MemberAudio, Pulled};
use crate::audio::ring::BLOCK_FRAMES;
use crate::voice::member::MemberVoice;
use crate::voice::peer::{PacketSink, RtpEvent, TrackSinks};
use crate::voice::rtp::RtpIn;

/// The largest RTP payload a feed slot carries (Opus voice packets are a few hundred bytes;
/// the jitter buffer keeps up to `voice::jitter::MAX_STORED_PAYLOAD`).
pub const SLOT_PAYLOAD: usize = 1200;
/// Packets in flight between the network and the playout: 2.5 s of 10 ms packets.
const SLOTS: usize = 256;

#[derive(Clone, Copy)]
struct PacketSlot {
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    marker: bool,
    arrival_ns: u64,
    len: u16,
    payload: [u8; SLOT_PAYLOAD],
}

impl Default for PacketSlot {
    fn default() -> Self {
        PacketSlot {
            payload_type: 0,
            seq: 0,
            timestamp: 0,
            marker: false,
            arrival_ns: 0,
            len: 0,
            payload: [0; SLOT_PAYLOAD],
        }
    }
}

/// Packets the feed could not carry (too large, or the ring was full).
#[derive(Debug, Default)]
pub struct FeedStats {
    pub dropped: AtomicU64,
    pub received: AtomicU64,
}

/// Creates the two ends for one member. `origin` is the playout clock's zero.
pub fn member_feed(member: MemberVoice, origin: Instant) -> (PacketSender, MemberStream) {
    let (prod, cons) = HeapRb::<PacketSlot>::new(SLOTS).split();
    let stats = Arc::new(FeedStats::default());
    (
        PacketSender {
            prod,
            origin,
            stats: stats.clone(),
        },
        MemberStream {
            cons,
            member,
            slot: Box::default(),
            stats,
        },
    )
}

/// The network's end: owned by the task that receives the member's peer events.
pub struct PacketSender {
    prod: HeapProd<PacketSlot>,
    origin: Instant,
    stats: Arc<FeedStats>,
}

impl PacketSender {
    /// Copies `packet` into the ring. Never waits, never allocates.
    pub fn send(&mut self, packet: &RtpEvent) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        if packet.payload.len() > SLOT_PAYLOAD {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let rtp = packet.as_rtp_in(self.origin);
        let mut slot = PacketSlot {
            payload_type: rtp.payload_type,
            seq: rtp.seq,
            timestamp: rtp.timestamp,
            marker: rtp.marker,
            arrival_ns: rtp.arrival_ns,
            len: rtp.payload.len() as u16,
            payload: [0; SLOT_PAYLOAD],
        };
        slot.payload[..rtp.payload.len()].copy_from_slice(rtp.payload);
        if self.prod.try_push(slot).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> &Arc<FeedStats> {
        &self.stats
    }
}

/// A member's ring as the network side shares it: whichever track feeds the member takes the
/// lock for one packet (several bridge streams may feed "party (bridge)"). Uncontended but for
/// those, and never held across anything but the copy into a slot.
pub type SharedSender = Arc<Mutex<PacketSender>>;

/// Where one track's packets go: the member's ring once the voice links routed the track
/// there, nowhere before (its packets then go through the follower's loop, which routes it).
/// Cloning gives the same route.
#[derive(Clone, Default)]
pub struct TrackFeed(Arc<Mutex<Option<SharedSender>>>);

impl TrackFeed {
    /// From now on the track feeds `to` (`None`: nobody; the link closed, or the member's
    /// voice comes another way).
    pub fn route(&self, to: Option<SharedSender>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }

    /// Whether the track feeds exactly `sender`.
    pub fn feeds(&self, sender: &SharedSender) -> bool {
        let route = self.0.lock().unwrap_or_else(|e| e.into_inner());
        route.as_ref().is_some_and(|s| Arc::ptr_eq(s, sender))
    }

    /// Whether the track feeds any ring.
    pub fn is_routed(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

impl PacketSink for TrackFeed {
    fn deliver(&self, packet: &RtpEvent) -> bool {
        let route = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = route.as_ref() else {
            return false;
        };
        sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(packet);
        true
    }
}

/// A connection with one member's voice: every track it has feeds that member.
impl TrackSinks for TrackFeed {
    fn sink_for(&self, _track: &str) -> Arc<dyn PacketSink> {
        Arc::new(self.clone())
    }
}

/// Makes the shared end of a member's ring.
pub fn shared(sender: PacketSender) -> SharedSender {
    Arc::new(Mutex::new(sender))
}

/// The playout's end: a member's packets in, 10 ms of audio out.
pub struct MemberStream {
    cons: HeapCons<PacketSlot>,
    member: MemberVoice,
    /// Where a slot is popped to (boxed: 1.2 kB is too much for the playout's stack per member).
    slot: Box<PacketSlot>,
    stats: Arc<FeedStats>,
}

impl MemberStream {
    pub fn member(&self) -> &MemberVoice {
        &self.member
    }

    pub fn stats(&self) -> &Arc<FeedStats> {
        &self.stats
    }
}

impl MemberAudio for MemberStream {
    fn pull_10ms(&mut self, now_ns: u64, out: &mut [f32; BLOCK_FRAMES]) -> Pulled {
        while self.cons.pop_slice(std::slice::from_mut(&mut *self.slot)) == 1 {
            let slot = &*self.slot;
            self.member.push(&RtpIn {
                payload_type: slot.payload_type,
                seq: slot.seq,
                timestamp: slot.timestamp,
                marker: slot.marker,
                payload: &slot.payload[..usize::from(slot.len)],
                arrival_ns: slot.arrival_ns,
            });
        }
        if self.member.pull_10ms_if_sound(now_ns, out) {
            Pulled::Audio
        } else {
            Pulled::Silent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::member::MemberConfig;

    fn packet(seq: u16, arrival: Instant) -> RtpEvent {
        RtpEvent {
            member: "1".into(),
            ssrc: 1,
            payload_type: 96,
            seq,
            timestamp: u32::from(seq) * 640,
            marker: false,
            // An Opus TOC for a 20 ms SILK frame followed by junk: decodes or conceals.
            payload: bytes::Bytes::from_static(&[0x08, 1, 2, 3]),
            arrival,
        }
    }

    #[test]
    fn packets_cross_and_oversized_ones_are_dropped() {
        let origin = Instant::now();
        let member = MemberVoice::new(MemberConfig::new(16_000, 96)).unwrap();
        let (mut tx, mut rx) = member_feed(member, origin);
        for seq in 0..10 {
            tx.send(&packet(seq, origin));
        }
        let mut huge = packet(10, origin);
        huge.payload = bytes::Bytes::from(vec![0u8; SLOT_PAYLOAD + 1]);
        tx.send(&huge);
        let mut out = [1.0f32; BLOCK_FRAMES];
        rx.pull_10ms(0, &mut out);
        assert!(out.iter().all(|s| s.is_finite()));
        assert_eq!(rx.stats().received.load(Ordering::Relaxed), 11);
        assert_eq!(rx.stats().dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_track_feeds_the_ring_only_while_routed() {
        let origin = Instant::now();
        let member = MemberVoice::new(MemberConfig::new(16_000, 96)).unwrap();
        let (tx, rx) = member_feed(member, origin);
        let track = TrackFeed::default();
        let sink = track.sink_for("1");
        assert!(
            !sink.deliver(&packet(0, origin)),
            "not routed: the loop decides"
        );
        let ring = shared(tx);
        track.route(Some(ring.clone()));
        assert!(track.feeds(&ring));
        assert!(sink.deliver(&packet(1, origin)));
        assert!(sink.deliver(&packet(2, origin)));
        track.route(None);
        assert!(!sink.deliver(&packet(3, origin)));
        assert!(!track.is_routed());
        assert_eq!(rx.stats().received.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_ring_drops_instead_of_waiting() {
        let origin = Instant::now();
        let member = MemberVoice::new(MemberConfig::new(16_000, 96)).unwrap();
        let (mut tx, _rx) = member_feed(member, origin);
        for seq in 0..(SLOTS as u16 + 5) {
            tx.send(&packet(seq, origin));
        }
        assert_eq!(tx.stats().dropped.load(Ordering::Relaxed), 5);
    }
}
