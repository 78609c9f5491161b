//! [`VoicePeer`] on the `webrtc` crate (0.21: async layer over the sans-IO `rtc` core).
//!
//! One `PeerConnection` per member offer. Its codec table is built from the offer itself: the
//! Opus payload type and clock rate the member uses, and the RED that wraps it. (`rtc` matches
//! codecs on MIME type and fmtp and answers with the offerer's parameters, so even its default
//! 48 kHz table answers `opus/16000/2`; but it would drop RED, and the clock rate the jitter
//! buffer needs should come from the same place as the answer.) The data-channel m-line in
//! the BUNDLE is answered by the stack's SCTP transport. An offer that gathered a transport per
//! m-line (aiortc, JSEP `balanced`) is first folded onto its first mid's transport
//! ([`unify_bundle_transport`]): `rtc` runs one transport per connection.

use std::sync::Arc;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{ReceiverReportBuilder, Slot};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, Mutex, Notify};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceGatheringState, RTCIceServer,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};

use super::candidates::{describe, filter_sdp, RemoteCandidates};
use super::sdp::{audio_params, unify_bundle_transport, AudioParams};
use super::{
    MemberId, PeerError, PeerEvent, PeerOptions, PeerState, RtpEvent, TrackSinks, VoicePeer,
};

/// How long a connection may stay "disconnected" (no answer to ICE consent checks for 5 s)
/// before it counts as failed and the member is reconnected (docs/reliability.md). The stack's
/// 25 s left a member whose connection died silent for half a minute; 8 s still rides out a
/// network blip of 10 s or so (disconnected after 5, back before 5 + 8).
pub const ICE_FAILED_AFTER_DISCONNECTED: std::time::Duration = std::time::Duration::from_secs(8);

fn err(e: impl std::fmt::Display) -> PeerError {
    PeerError(e.to_string())
}

/// Registers one audio codec (no RTCP feedback) in `me`.
fn register_audio(
    me: &mut MediaEngine,
    mime_type: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: String,
    payload_type: u8,
) -> Result<(), PeerError> {
    me.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime_type.to_owned(),
                clock_rate,
                channels,
                sdp_fmtp_line: fmtp,
                rtcp_feedback: vec![],
            },
            payload_type,
        },
        RtpCodecKind::Audio,
    )
    .map_err(err)
}

/// Registers RED (payload type `red_pt`) wrapping the Opus of payload type `opus_pt`.
fn register_red(me: &mut MediaEngine, opus_pt: u8, red_pt: u8) -> Result<(), PeerError> {
    let fmtp = format!("{opus_pt}/{opus_pt}");
    register_audio(me, "audio/red", 48_000, 2, fmtp, red_pt)
}

/// The codec table for answering `offer`: its Opus (same payload type, clock, channels,
/// fmtp) and the RED that wraps it.
pub fn media_engine_for(p: &AudioParams) -> Result<MediaEngine, PeerError> {
    let mut me = MediaEngine::default();
    let fmtp = if p.inband_fec {
        "minptime=10;useinbandfec=1"
    } else {
        "minptime=10"
    };
    let channels = u16::from(p.channels);
    register_audio(
        &mut me,
        "audio/opus",
        p.clock_rate,
        channels,
        fmtp.to_owned(),
        p.opus_pt,
    )?;
    if let Some(red) = p.red_pt {
        register_red(&mut me, p.opus_pt, red)?;
    }
    Ok(me)
}

struct Handler {
    member: MemberId,
    events: mpsc::Sender<PeerEvent>,
    gathered: Arc<Notify>,
    /// Name each track's packets `<member>:<msid stream id>` (a bridge carries several).
    tag_streams: bool,
    /// Where the tracks' packets go directly (the rest go to `events`).
    sinks: Option<Arc<dyn TrackSinks>>,
}

impl Handler {
    fn state(&self, state: PeerState) {
        let _ = self.events.try_send(PeerEvent::State {
            member: self.member.clone(),
            state,
        });
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let s = match state {
            RTCPeerConnectionState::Connecting => PeerState::Connecting,
            RTCPeerConnectionState::Connected => PeerState::Connected,
            RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
            RTCPeerConnectionState::Failed => PeerState::Failed,
            RTCPeerConnectionState::Closed => PeerState::Closed,
            _ => return,
        };
        self.state(s);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let member: MemberId = if self.tag_streams {
            format!("{}:{}", self.member, track.stream_id().await).into()
        } else {
            self.member.clone()
        };
        let events = self.events.clone();
        let sink = self.sinks.as_ref().map(|s| s.sink_for(&member));
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = ev {
                    let h = &p.header;
                    let e = RtpEvent {
                        member: member.clone(),
                        ssrc: h.ssrc,
                        payload_type: h.payload_type,
                        seq: h.sequence_number,
                        timestamp: h.timestamp,
                        marker: h.marker,
                        payload: p.payload.clone(),
                        arrival: crate::cadence::packet_arrival(std::time::Instant::now()),
                    };
                    // Straight into the member's packet ring when it is routed (one hop less,
                    // and the follower's loop is not woken per packet).
                    if sink.as_ref().is_some_and(|s| s.deliver(&e)) {
                        continue;
                    }
                    // The audio path must never wait on a slow consumer: drop when full.
                    if events.try_send(PeerEvent::Rtp(e)).is_err() && events.is_closed() {
                        break;
                    }
                }
            }
        });
    }
}

/// The RTP/RTCP interceptors of a receive-only voice connection: RTCP receiver reports (once a
/// second, as every WebRTC receiver sends them; the sender's loss and round-trip figures come
/// from them) and nothing else. Not the stack's defaults: no NACK generator or responder (voice
/// is never retransmitted: Opus FEC and concealment cover loss, and a resend would come after
/// its playout time), no TWCC receiver (per-packet transport feedback only serves a sender's
/// bandwidth estimate, which 24 kb/s voice does not need; the answer then lists no
/// `transport-cc`, so members do not send the extension), no sender reports (we send nothing),
/// and no simulcast header extensions (video only).
fn receive_only_interceptors() -> Registry {
    Registry::new().with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
}

/// A member's connection on the `webrtc` crate.
pub struct WebrtcPeer {
    member: MemberId,
    options: PeerOptions,
    events: mpsc::Sender<PeerEvent>,
    pc: Mutex<Option<Arc<dyn PeerConnection>>>,
    /// What the member's offer negotiated (clock rate for the jitter buffer).
    negotiated: Mutex<Option<AudioParams>>,
    tag_streams: bool,
    sinks: Option<Arc<dyn TrackSinks>>,
    /// The member's candidates used so far on the current connection (capped).
    remote: std::sync::Mutex<RemoteCandidates>,
}

impl WebrtcPeer {
    pub fn new(member: MemberId, options: PeerOptions, events: mpsc::Sender<PeerEvent>) -> Self {
        Self {
            member,
            options,
            events,
            pc: Mutex::new(None),
            negotiated: Mutex::new(None),
            tag_streams: false,
            sinks: None,
            remote: std::sync::Mutex::new(RemoteCandidates::default()),
        }
    }

    /// Received packets go to the sinks `sinks` gives each track, when they take them, and
    /// only otherwise to the events channel.
    pub fn with_sinks(mut self, sinks: Arc<dyn TrackSinks>) -> Self {
        self.sinks = Some(sinks);
        self
    }

    /// A connection that carries several streams (an rtcBridge): each track's packets are
    /// named `<member>:<its a=msid stream id>`, so the receiver can tell whose voice it is.
    pub fn tagging_streams(mut self) -> Self {
        self.tag_streams = true;
        self
    }

    /// The member's SDP with only the candidates we use (module `candidates`); what was
    /// dropped is logged once per SDP.
    fn usable_remote(&self, sdp: &str, fresh: bool) -> String {
        let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        if fresh {
            *remote = RemoteCandidates::default();
        }
        let (sdp, dropped) = filter_sdp(
            sdp,
            &mut remote,
            self.options.allow_loopback,
            self.options.max_remote_candidates,
        );
        if !dropped.is_empty() {
            log::info!(
                "voice: not using some of member …{}'s candidates: {}",
                self.member
                    .get(self.member.len().saturating_sub(4)..)
                    .unwrap_or(""),
                describe(&dropped)
            );
        }
        sdp
    }

    /// The audio parameters of the last answered offer.
    pub async fn negotiated(&self) -> Option<AudioParams> {
        self.negotiated.lock().await.clone()
    }
}

/// Our offer's Opus: the standard 48 kHz clock first, then the recorded members' 16 kHz clock
/// (payload type 96 as they use it), so a member can answer either. RED wraps the 16 kHz Opus as
/// in the recorded shape. What the answer picks is what the jitter buffer uses.
pub const OFFER_OPUS_48K_PT: u8 = 111;
pub const OFFER_OPUS_16K_PT: u8 = 96;
pub const OFFER_RED_PT: u8 = 63;

/// The codec table of our own offer (see [`OFFER_OPUS_48K_PT`]).
pub fn media_engine_for_offer() -> Result<MediaEngine, PeerError> {
    let mut me = MediaEngine::default();
    for (pt, clock) in [(OFFER_OPUS_48K_PT, 48_000), (OFFER_OPUS_16K_PT, 16_000)] {
        let fmtp = "minptime=10;stereo=0;useinbandfec=1".to_owned();
        register_audio(&mut me, "audio/opus", clock, 2, fmtp, pt)?;
    }
    register_red(&mut me, OFFER_OPUS_16K_PT, OFFER_RED_PT)?;
    Ok(me)
}

impl WebrtcPeer {
    /// A new connection with this codec table and our handler; gathering signals `gathered`.
    async fn build(
        &self,
        me: MediaEngine,
        gathered: Arc<Notify>,
    ) -> Result<Arc<dyn PeerConnection>, PeerError> {
        let registry = receive_only_interceptors();
        let handler = Arc::new(Handler {
            member: self.member.clone(),
            events: self.events.clone(),
            gathered,
            tag_streams: self.tag_streams,
            sinks: self.sinks.clone(),
        });
        let ice_servers = if self.options.stun_servers.is_empty() || self.options.allow_loopback {
            vec![]
        } else {
            vec![RTCIceServer {
                urls: self.options.stun_servers.clone(),
                ..Default::default()
            }]
        };
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(ice_servers)
            .build();
        let settings = SettingEngineBuilder::new()
            .with_ice_timeouts(None, Some(ICE_FAILED_AFTER_DISCONNECTED), None)
            // No mDNS at all: members' `.local` names are dropped before the stack sees them
            // (`candidates`), and no multicast socket is opened (it fails under Wine too).
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(self.options.allow_loopback)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(settings)
            .with_media_engine(me)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(self.options.udp_addrs.clone())
            .build()
            .await
            .map_err(err)?;
        Ok(Arc::new(pc))
    }

    /// Waits for gathering (PSN sends complete SDPs), keeps `pc` as this peer's connection and
    /// returns its local description.
    async fn finish_local(
        &self,
        pc: Arc<dyn PeerConnection>,
        gathered: Arc<Notify>,
    ) -> Result<String, PeerError> {
        let _ = tokio::time::timeout(self.options.gather_timeout, gathered.notified()).await;
        let local = pc
            .local_description()
            .await
            .ok_or_else(|| PeerError("no local description".into()))?;
        if !self.options.allow_loopback {
            crate::voice::net::note_gathering(&self.options.stun_servers, &local.sdp);
        }
        if let Some(old) = self.pc.lock().await.replace(pc) {
            let _ = old.close().await;
        }
        Ok(local.sdp)
    }

    /// The connection our last offer or answer made; `missing` is the error without one.
    async fn connection(&self, missing: &str) -> Result<Arc<dyn PeerConnection>, PeerError> {
        let pc = self.pc.lock().await.clone();
        pc.ok_or_else(|| PeerError(missing.into()))
    }
}

impl VoicePeer for WebrtcPeer {
    async fn negotiated(&self) -> Option<AudioParams> {
        WebrtcPeer::negotiated(self).await
    }

    async fn answer(&self, offer_sdp: &str) -> Result<String, PeerError> {
        let params =
            audio_params(offer_sdp).ok_or_else(|| PeerError("offer has no Opus audio".into()))?;
        let gathered = Arc::new(Notify::new());
        let pc = self
            .build(media_engine_for(&params)?, gathered.clone())
            .await?;
        // One transport for the whole BUNDLE, even if the offer gathered one per m-line.
        let offer_sdp = self.usable_remote(&unify_bundle_transport(offer_sdp), true);
        let offer = RTCSessionDescription::offer(offer_sdp).map_err(err)?;
        pc.set_remote_description(offer).await.map_err(err)?;
        let answer = pc.create_answer(None).await.map_err(err)?;
        pc.set_local_description(answer).await.map_err(err)?;
        let sdp = self.finish_local(pc, gathered).await?;
        *self.negotiated.lock().await = Some(params);
        Ok(sdp)
    }

    async fn offer(&self) -> Result<String, PeerError> {
        let gathered = Arc::new(Notify::new());
        let pc = self
            .build(media_engine_for_offer()?, gathered.clone())
            .await?;
        // Receive only: the plugin has no microphone to send (the streamer's own voice
        // reaches OBS from their mic); members answer sendonly or sendrecv.
        pc.add_transceiver_from_kind(
            RtpCodecKind::Audio,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await
        .map_err(err)?;
        // The data-channel m-line, BUNDLEd with the audio as in the members' offers.
        pc.create_data_channel("psn", None).await.map_err(err)?;
        let offer = pc.create_offer(None).await.map_err(err)?;
        pc.set_local_description(offer).await.map_err(err)?;
        *self.negotiated.lock().await = None;
        self.finish_local(pc, gathered).await
    }

    async fn accept_answer(&self, answer_sdp: &str) -> Result<AudioParams, PeerError> {
        let params =
            audio_params(answer_sdp).ok_or_else(|| PeerError("answer has no Opus audio".into()))?;
        let pc = self.connection("no offer of ours to answer").await?;
        let answer =
            RTCSessionDescription::answer(self.usable_remote(answer_sdp, true)).map_err(err)?;
        pc.set_remote_description(answer).await.map_err(err)?;
        *self.negotiated.lock().await = Some(params.clone());
        Ok(params)
    }

    async fn add_remote_candidate(&self, candidate: &str) -> Result<(), PeerError> {
        let pc = self.connection("no connection yet").await?;
        let c = candidate.trim().trim_start_matches("a=").to_owned();
        let admitted = self.remote.lock().unwrap_or_else(|e| e.into_inner()).admit(
            &c,
            self.options.allow_loopback,
            self.options.max_remote_candidates,
        );
        if let Err(why) = admitted {
            log::info!("voice: not using a trickled candidate ({})", why.as_str());
            return Ok(());
        }
        pc.add_ice_candidate(RTCIceCandidateInit {
            candidate: c,
            sdp_mid: Some("0".into()),
            ..Default::default()
        })
        .await
        .map_err(err)
    }

    async fn close(&self) {
        if let Some(pc) = self.pc.lock().await.take() {
            let _ = pc.close().await;
        }
    }
}
