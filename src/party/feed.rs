//! The hand-over of one member's RTP packets from the network (tokio tasks)
//! to the playout thread, where the member's jitter buffer and decoder live.
//!
//! A lock-free SPSC byte ring of packet records (a small header, then the payload): the
//! network side copies each packet in as one record (no allocation, never waits; a full ring
//! drops the packet, which the jitter buffer then treats as lost), the playout side drains the
//! records into `voice::MemberVoice` right before pulling 10 ms from it. Records take the
//! payload's size, not the largest payload's: a member's ring is 64 KiB instead of the
//! 310 KiB that 256 fixed 1.2 kB slots took, for the same 2.5 s or more of voice packets.
//!
//! The network side is the peer's track reader itself ([`TrackFeed`], a
//! `voice::peer::PacketSink`): packets go from the socket task into the ring with no hop
//! through the party follower's loop, which only routes a track (says which ring it feeds).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::audio::playout::{MemberAudio, Pulled};
use crate::audio::ring::BLOCK_FRAMES;
use crate::voice::member::MemberVoice;
use crate::voice::peer::{PacketSink, RtpEvent, TrackSinks};
use crate::voice::rtp::RtpIn;

/// The largest RTP payload the feed carries (Opus voice packets are a few hundred bytes;
/// the jitter buffer keeps up to `voice::jitter::MAX_STORED_PAYLOAD`).
pub const SLOT_PAYLOAD: usize = 1200;
/// Bytes in flight between the network and the playout, which drains the ring every 10 ms:
/// about 160 records of a 24 kb/s voice with RED (some 200 bytes each), 1.6 s of 10 ms
/// packets; 26 of the largest. (It was 64 KiB: 14 members x 32 KiB resident for a ring that
/// never holds more than a few records.)
const RING_BYTES: usize = 32 * 1024;

/// A record's header: payload type, marker, payload length, sequence number, RTP timestamp,
/// arrival (ns since the playout clock's zero), little-endian.
const HEADER: usize = 1 + 1 + 2 + 2 + 4 + 8;

fn header(rtp: &RtpIn<'_>) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0] = rtp.payload_type;
    h[1] = u8::from(rtp.marker);
    h[2..4].copy_from_slice(&(rtp.payload.len() as u16).to_le_bytes());
    h[4..6].copy_from_slice(&rtp.seq.to_le_bytes());
    h[6..10].copy_from_slice(&rtp.timestamp.to_le_bytes());
    h[10..18].copy_from_slice(&rtp.arrival_ns.to_le_bytes());
    h
}

/// The header's fields: (payload type, marker, payload length, seq, timestamp, arrival).
fn parse_header(h: &[u8; HEADER]) -> (u8, bool, usize, u16, u32, u64) {
    let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    let mut ts = [0u8; 4];
    ts.copy_from_slice(&h[6..10]);
    let mut arrival = [0u8; 8];
    arrival.copy_from_slice(&h[10..18]);
    (
        h[0],
        h[1] != 0,
        usize::from(u16_at(2)),
        u16_at(4),
        u32::from_le_bytes(ts),
        u64::from_le_bytes(arrival),
    )
}

/// Packets the feed could not carry (too large, or the ring was full).
#[derive(Debug, Default)]
pub struct FeedStats {
    pub dropped: AtomicU64,
    pub received: AtomicU64,
}

/// Creates the two ends for one member. `origin` is the playout clock's zero.
pub fn member_feed(member: MemberVoice, origin: Instant) -> (PacketSender, MemberStream) {
    let (prod, cons) = HeapRb::<u8>::new(RING_BYTES).split();
    let stats = Arc::new(FeedStats::default());
    (
        PacketSender {
            prod,
            origin,
            record: Box::new([0; HEADER + SLOT_PAYLOAD]),
            stats: stats.clone(),
        },
        MemberStream {
            cons,
            member,
            payload: Box::new([0; SLOT_PAYLOAD]),
            stats,
        },
    )
}

/// The network's end: behind the member's [`SharedSender`], written by whichever track reader
/// (or, for a track's first packets, the follower's loop) holds its lock.
pub struct PacketSender {
    prod: HeapProd<u8>,
    origin: Instant,
    /// Where a record is put together, so it enters the ring in one step (the playout never
    /// sees half a record).
    record: Box<[u8; HEADER + SLOT_PAYLOAD]>,
    stats: Arc<FeedStats>,
}

impl PacketSender {
    /// Copies `packet` into the ring. Never waits, never allocates.
    pub fn send(&mut self, packet: &RtpEvent) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        let len = packet.payload.len();
        if len > SLOT_PAYLOAD || self.prod.vacant_len() < HEADER + len {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let rtp = packet.as_rtp_in(self.origin);
        self.record[..HEADER].copy_from_slice(&header(&rtp));
        self.record[HEADER..HEADER + len].copy_from_slice(rtp.payload);
        // One write, one commit: the record appears whole or not at all.
        self.prod.push_slice(&self.record[..HEADER + len]);
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
    cons: HeapCons<u8>,
    member: MemberVoice,
    /// Where a record's payload is popped to (boxed: the playout's stack is small).
    payload: Box<[u8; SLOT_PAYLOAD]>,
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

impl MemberStream {
    /// Hands every record in the ring to `take`, oldest first.
    fn drain(&mut self, mut take: impl FnMut(&mut MemberVoice, &RtpIn<'_>)) {
        let mut h = [0u8; HEADER];
        // Records are committed whole, so a header in the ring has its payload behind it.
        while self.cons.occupied_len() >= HEADER && self.cons.pop_slice(&mut h) == HEADER {
            let (payload_type, marker, len, seq, timestamp, arrival_ns) = parse_header(&h);
            let len = len.min(SLOT_PAYLOAD);
            let got = self.cons.pop_slice(&mut self.payload[..len]);
            let rtp = RtpIn {
                payload_type,
                seq,
                timestamp,
                marker,
                payload: &self.payload[..got],
                arrival_ns,
            };
            take(&mut self.member, &rtp);
        }
    }
}

impl MemberAudio for MemberStream {
    fn pull_10ms(&mut self, now_ns: u64, out: &mut [f32; BLOCK_FRAMES]) -> Pulled {
        self.drain(|member, rtp| member.push(rtp));
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
        let fits = RING_BYTES / (HEADER + 4);
        for seq in 0..(fits as u16 + 5) {
            tx.send(&packet(seq, origin));
        }
        assert_eq!(tx.stats().dropped.load(Ordering::Relaxed), 5);
    }

    /// What goes in comes out, field for field, records of every size and across the ring's
    /// wrap, and a record is never split.
    #[test]
    fn records_cross_whole_and_in_order_across_the_wrap() {
        let origin = Instant::now();
        let member = MemberVoice::new(MemberConfig::new(16_000, 96)).unwrap();
        let (mut tx, mut rx) = member_feed(member, origin);
        let mut expected = std::collections::VecDeque::new();
        let mut taken = 0;
        for round in 0..40u16 {
            for k in 0..30u16 {
                let seq = round * 30 + k;
                let at = origin + std::time::Duration::from_millis(u64::from(seq));
                let mut p = packet(seq, at);
                let len = 1 + (usize::from(seq) * 37) % SLOT_PAYLOAD;
                p.payload = bytes::Bytes::from(vec![(seq % 251) as u8; len]);
                p.marker = seq % 3 == 0;
                tx.send(&p);
                expected.push_back(p);
            }
            // Drained between bursts, so the ring wraps many times.
            rx.drain(|_, got| {
                let want = expected.pop_front().expect("no more was sent");
                let want = want.as_rtp_in(origin);
                assert_eq!(
                    (
                        got.payload_type,
                        got.marker,
                        got.seq,
                        got.timestamp,
                        got.arrival_ns
                    ),
                    (
                        want.payload_type,
                        want.marker,
                        want.seq,
                        want.timestamp,
                        want.arrival_ns
                    )
                );
                assert_eq!(got.payload, want.payload, "payload of seq {}", got.seq);
                taken += 1;
            });
            assert!(expected.is_empty(), "{} records not read", expected.len());
            assert_eq!(rx.cons.occupied_len(), 0, "a record was left half-read");
        }
        assert_eq!(taken, 1200);
        assert_eq!(tx.stats().dropped.load(Ordering::Relaxed), 0);
    }
}
