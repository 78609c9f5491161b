//! Side (b): a receive-only str0m 0.14 peer per member, all of them on ONE UDP socket driven by
//! ONE thread (`str0m-rx`): sans-IO, so the thread itself waits (poll(2) on the socket and a
//! wake-up socket for commands), reads every datagram that is there in batches (recvmmsg(2),
//! up to 32 a call), hands each to the peer that `accepts` it, and sends what the peers want
//! sent. RTP mode: str0m hands over RTP packets (after SRTP) as they come, like the plugin's
//! track reader, and the packet goes into the member's ring through the same `TrackFeed`.
//!
//! Ticked (`Str0mSide::start(Some(tick))`): the thread does not wait on the socket at all but
//! sleeps to its next tick and then reads whatever came meanwhile in one batch, so it wakes
//! once per tick however many voices there are (packets wait up to a tick in the socket's
//! buffer; the playout takes them only every 10 ms anyway). Peer timers run on ticks too.

use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrIn};
use obs_psn_party::voice::peer::{MemberId, PacketSink, RtpEvent};
use str0m::change::SdpOffer;
use str0m::format::{Codec, CodecConfig, CodecSpec, FormatParams, PayloadParams};
use str0m::media::{Frequency, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::rings::MemberFeed;
use crate::senders::Offer;

/// The thread of this side.
pub const THREAD: &str = "str0m-rx";

/// Datagrams one recvmmsg(2) call may return.
const BATCH: usize = 32;
/// Larger than any datagram on this path (RTP voice, DTLS, STUN, SCTP under 1200 bytes).
const DATAGRAM: usize = 2048;

enum Cmd {
    Offer {
        member: MemberId,
        sdp: String,
        feed: Arc<MemberFeed>,
        reply: mpsc::Sender<Result<String, String>>,
    },
    Stop,
}

/// What the thread saw, for the report.
#[derive(Debug, Default, Clone)]
pub struct LoopStats {
    pub wakeups: u64,
    pub datagrams: u64,
    pub recv_calls: u64,
    pub not_accepted: u64,
    pub rtc_errors: u64,
    pub disconnects: u64,
}

pub struct Str0mSide {
    cmds: mpsc::Sender<Cmd>,
    wake: UnixDatagram,
    thread: Option<JoinHandle<Result<LoopStats, String>>>,
}

impl Str0mSide {
    /// `tick`: wake once per this much time (None: wake on every datagram and timer).
    pub fn start(tick: Option<Duration>) -> Result<Self, String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let (wake, woken) = UnixDatagram::pair().map_err(|e| e.to_string())?;
        woken.set_nonblocking(true).map_err(|e| e.to_string())?;
        let (cmds, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || run(socket, woken, rx, tick))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            cmds,
            wake,
            thread: Some(thread),
        })
    }

    fn command(&self, cmd: Cmd) -> Result<(), String> {
        self.cmds.send(cmd).map_err(|_| "str0m thread gone")?;
        self.wake.send(&[1]).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Answers a member's offer with a new str0m peer on the shared socket.
    pub fn answer(&mut self, offer: &Offer, feed: Arc<MemberFeed>) -> Result<String, String> {
        let (reply, answered) = mpsc::channel();
        self.command(Cmd::Offer {
            member: offer.account.as_str().into(),
            sdp: offer.sdp.clone(),
            feed,
            reply,
        })?;
        answered
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| format!("str0m thread: {e}"))?
    }

    /// Stops the thread (every peer goes with it) and returns what it counted.
    pub fn close(mut self) -> Result<LoopStats, String> {
        let _ = self.command(Cmd::Stop);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err("str0m thread panicked".into()),
        }
    }
}

impl Drop for Str0mSide {
    fn drop(&mut self) {
        // Not closed (a run that failed half-way): stop the thread all the same.
        if let Some(t) = self.thread.take() {
            let _ = self.command(Cmd::Stop);
            let _ = t.join();
        }
    }
}

/// A receive-only Opus peer: only the offer's Opus at 16 kHz (payload type 96) in the codec
/// table, no transport-wide CC (as the plugin's answer: no `transport-cc`, so no per-packet
/// feedback), RTCP receiver reports as str0m always sends them.
fn new_rtc() -> Rtc {
    let mut opus = PayloadParams::new(
        Pt::from(96),
        None,
        CodecSpec {
            codec: Codec::Opus,
            clock_rate: Frequency::new(16_000).expect("non-zero"),
            channels: Some(2),
            format: FormatParams {
                min_p_time: Some(10),
                use_inband_fec: Some(true),
                ..FormatParams::default()
            },
        },
    );
    opus.set_fb_transport_cc(false);
    let mut exts = ExtensionMap::empty();
    exts.set(1, Extension::AudioLevel);
    exts.set(4, Extension::RtpMid);
    let mut cfg = Rtc::builder()
        .set_rtp_mode(true)
        .set_extension_map(exts)
        // Statistics events are off: the plugin's peer makes none either.
        .set_stats_interval(None);
    *cfg.codec_config() = CodecConfig::new_from_payload_params(vec![opus]);
    cfg.build()
}

struct Peer {
    rtc: Rtc,
    member: MemberId,
    feed: Arc<MemberFeed>,
    /// When this peer wants `Input::Timeout` next.
    next: Instant,
}

impl Peer {
    /// Runs the peer's output until it only waits: sends what it has to send, delivers its RTP
    /// packets, notes its next timeout.
    fn drain(&mut self, socket: &UdpSocket, stats: &mut LoopStats) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next = t;
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(Event::RtpPacket(p))) => {
                    let h = &p.header;
                    let e = RtpEvent {
                        member: self.member.clone(),
                        ssrc: *h.ssrc,
                        payload_type: *h.payload_type,
                        seq: h.sequence_number,
                        timestamp: h.timestamp,
                        marker: h.marker,
                        payload: bytes::Bytes::from(p.payload),
                        arrival: Instant::now(),
                    };
                    self.feed.deliver(&e);
                }
                Ok(Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                ))) => stats.disconnects += 1,
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    eprintln!("str0m peer {}: {e}", self.member);
                    stats.rtc_errors += 1;
                    // A broken peer is not driven again (it would fail the count check).
                    self.next = Instant::now() + Duration::from_secs(3600);
                    return;
                }
            }
        }
    }
}

fn answer(
    socket: &UdpSocket,
    local: SocketAddr,
    member: MemberId,
    sdp: &str,
    feed: Arc<MemberFeed>,
    stats: &mut LoopStats,
) -> Result<(Peer, String), String> {
    let mut rtc = new_rtc();
    let host = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
    rtc.add_local_candidate(host);
    let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| format!("offer: {e}"))?;
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| format!("accept_offer: {e}"))?;
    let mut peer = Peer {
        rtc,
        member,
        feed,
        next: Instant::now(),
    };
    peer.drain(socket, stats);
    Ok((peer, answer.to_sdp_string()))
}

/// Reads what is waiting on `socket`, a batch at a time, into `got` (length, source).
fn read_batch(
    socket: &UdpSocket,
    bufs: &mut [[u8; DATAGRAM]; BATCH],
    headers: &mut MultiHeaders<SockaddrIn>,
    got: &mut Vec<(usize, SocketAddr)>,
) -> Result<(), nix::Error> {
    got.clear();
    let mut slices = bufs.each_mut().map(|b| [IoSliceMut::new(&mut b[..])]);
    let msgs = recvmmsg(
        socket.as_raw_fd(),
        headers,
        slices.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )?;
    for m in msgs {
        if let Some(a) = m.address {
            got.push((m.bytes, SocketAddr::V4(SocketAddrV4::from(a))));
        }
    }
    Ok(())
}

/// Sleeps until a datagram, a command or `until`.
fn wait(socket: &UdpSocket, woken: &UnixDatagram, until: Instant) -> Result<(), String> {
    let wait = until.saturating_duration_since(Instant::now());
    if wait.is_zero() {
        return Ok(());
    }
    // poll(2) counts whole milliseconds: round up, never spin.
    let ms = wait.as_micros().div_ceil(1000).min(60_000) as u16;
    let mut fds = [
        PollFd::new(socket.as_fd(), PollFlags::POLLIN),
        PollFd::new(woken.as_fd(), PollFlags::POLLIN),
    ];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(_) | Err(nix::Error::EINTR) => Ok(()),
        Err(e) => Err(format!("poll: {e}")),
    }
}

fn run(
    socket: UdpSocket,
    woken: UnixDatagram,
    cmds: mpsc::Receiver<Cmd>,
    tick: Option<Duration>,
) -> Result<LoopStats, String> {
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut peers: Vec<Peer> = vec![];
    let mut stats = LoopStats::default();
    let mut bufs = Box::new([[0u8; DATAGRAM]; BATCH]);
    let mut headers = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut got: Vec<(usize, SocketAddr)> = Vec::with_capacity(BATCH);
    let mut wake_buf = [0u8; 64];
    let mut next_tick = Instant::now();
    loop {
        // Commands first (the wake-up socket only says there are some).
        while woken.recv(&mut wake_buf).is_ok() {}
        for cmd in cmds.try_iter() {
            match cmd {
                Cmd::Stop => return Ok(stats),
                Cmd::Offer {
                    member,
                    sdp,
                    feed,
                    reply,
                } => {
                    let made = answer(&socket, local, member, &sdp, feed, &mut stats);
                    let _ = reply.send(match made {
                        Ok((peer, answer)) => {
                            peers.push(peer);
                            Ok(answer)
                        }
                        Err(e) => Err(e),
                    });
                }
            }
        }
        // Sleep: to the next tick, or until a datagram, a command or the earliest peer timeout.
        let next = peers
            .iter()
            .map(|p| p.next)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        if let Some(tick) = tick {
            next_tick = (next_tick + tick).max(Instant::now());
            std::thread::sleep(next_tick.saturating_duration_since(Instant::now()));
            stats.wakeups += 1;
        } else {
            wait(&socket, &woken, next)?;
            stats.wakeups += 1;
        }
        // Every datagram that is there, a batch per call.
        loop {
            match read_batch(&socket, &mut bufs, &mut headers, &mut got) {
                Ok(()) => {}
                Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => break,
                Err(e) => return Err(format!("recvmmsg: {e}")),
            }
            stats.recv_calls += 1;
            let now = Instant::now();
            for (i, &(len, source)) in got.iter().enumerate() {
                stats.datagrams += 1;
                let Ok(r) = Receive::new(Protocol::Udp, source, local, &bufs[i][..len]) else {
                    stats.not_accepted += 1;
                    continue;
                };
                let input = Input::Receive(now, r);
                match peers.iter_mut().find(|p| p.rtc.accepts(&input)) {
                    Some(p) => {
                        if let Err(e) = p.rtc.handle_input(input) {
                            eprintln!("str0m peer {}: {e}", p.member);
                            stats.rtc_errors += 1;
                        }
                        p.drain(&socket, &mut stats);
                    }
                    None => stats.not_accepted += 1,
                }
            }
            if got.len() < BATCH {
                break;
            }
        }
        // Timers that are due.
        let now = Instant::now();
        for p in peers.iter_mut().filter(|p| p.next <= now) {
            if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                eprintln!("str0m peer {}: {e}", p.member);
                stats.rtc_errors += 1;
            }
            p.drain(&socket, &mut stats);
        }
    }
}
