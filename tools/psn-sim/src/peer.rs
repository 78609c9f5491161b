//! What the simulator's two kinds of WebRTC peer share (voice members in [`crate::voice`], the
//! rtcBridge's media in [`crate::bridge_voice`]): a `webrtc` stack (on 127.0.0.1 unless
//! [`crate::voice_net`] places it elsewhere) with the given codecs, its event handler, an Opus send track, and the stack's own ICE keys and candidates,
//! read from its real SDP, for the recorded-shape SDPs both write.

use std::sync::Arc;
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::Notify;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, Registry,
};

/// Errors of the stack, as the simulator reports them (rejections, HTTP bodies).
pub(crate) fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Opus as PSN's peers describe it: mono in a stereo rtpmap, in-band FEC, at `clock` Hz.
pub(crate) fn opus_codec(clock: u32) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".into(),
        clock_rate: clock,
        channels: 2,
        sdp_fmtp_line: "minptime=10;stereo=0;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

/// A connection's state as the simulator's status shows it, `None` for the others (new).
pub(crate) fn state_name(state: RTCPeerConnectionState) -> Option<&'static str> {
    Some(match state {
        RTCPeerConnectionState::Connected => "connected",
        RTCPeerConnectionState::Connecting => "connecting",
        RTCPeerConnectionState::Failed => "failed",
        RTCPeerConnectionState::Disconnected => "disconnected",
        RTCPeerConnectionState::Closed => "closed",
        _ => return None,
    })
}

/// What a peer does with each track it receives.
type OnTrack = Box<dyn Fn(Arc<dyn TrackRemote>) + Send + Sync>;

/// The stack's events: ICE gathering done wakes `gathered` (the SDPs carry every candidate
/// inline, no trickle); each connection state goes to `on_state`; each received track to
/// `on_track` when there is one (the console counts its packets; members and bridge receive
/// nothing they look at).
pub(crate) struct Events<F> {
    gathered: Arc<Notify>,
    on_state: F,
    on_track: Option<OnTrack>,
}

impl<F> Events<F> {
    pub(crate) fn new(gathered: Arc<Notify>, on_state: F) -> Self {
        Events {
            gathered,
            on_state,
            on_track: None,
        }
    }

    pub(crate) fn with_track(self, on_track: OnTrack) -> Self {
        Events {
            on_track: Some(on_track),
            ..self
        }
    }
}

#[async_trait::async_trait]
impl<F: Fn(RTCPeerConnectionState) + Send + Sync + 'static> PeerConnectionEventHandler
    for Events<F>
{
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        (self.on_state)(state);
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(on_track) = &self.on_track {
            on_track(track);
        }
    }
}

/// Which of the simulator's peers: where it binds and whether it asks STUN
/// ([`crate::voice_net`]; both on 127.0.0.1 by default).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Member,
    Bridge,
}

/// A peer connection that knows `codecs` (audio) only, bound where `side` lives. Returns it
/// and the notification of its ICE gathering being complete.
pub(crate) async fn stack_peer(
    side: Side,
    codecs: Vec<RTCRtpCodecParameters>,
    on_state: impl Fn(RTCPeerConnectionState) + Send + Sync + 'static,
) -> Result<(Arc<dyn PeerConnection>, Arc<Notify>), String> {
    let mut me = MediaEngine::default();
    for codec in codecs {
        me.register_codec(codec, RtpCodecKind::Audio).map_err(e2s)?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut me).map_err(e2s)?;
    let gathered = Arc::new(Notify::new());
    let net = crate::voice_net::get();
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Events::new(gathered.clone(), on_state)))
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_ice_servers(match side {
                    Side::Member => net.ice_servers(),
                    Side::Bridge => vec![],
                })
                .build(),
        )
        .with_udp_addrs(match side {
            Side::Member => net.member_udp_addrs(),
            Side::Bridge => net.bridge_udp_addrs(),
        })
        .build()
        .await
        .map_err(e2s)?;
    Ok((Arc::new(pc), gathered))
}

/// Waits (up to 3 s) for ICE gathering, then the stack's local SDP with every candidate in it.
pub(crate) async fn gathered_local_sdp(
    pc: &Arc<dyn PeerConnection>,
    gathered: &Notify,
) -> Option<String> {
    let _ = tokio::time::timeout(Duration::from_secs(3), gathered.notified()).await;
    pc.local_description().await.map(|d| d.sdp)
}

/// Opens the "psn" data channel PSN's peers carry, offers and waits for ICE gathering: the
/// local offer SDP with every candidate in it.
pub(crate) async fn offer_with_datachannel(
    pc: &Arc<dyn PeerConnection>,
    gathered: &Notify,
) -> Result<String, String> {
    pc.create_data_channel("psn", None).await.map_err(e2s)?;
    let offer = pc.create_offer(None).await.map_err(e2s)?;
    pc.set_local_description(offer).await.map_err(e2s)?;
    gathered_local_sdp(pc, gathered)
        .await
        .ok_or_else(|| "no local description".into())
}

/// An Opus send track with a fixed SSRC, msid `<stream_id> <uuid>_1_CELT/40` as PSN's peers
/// name theirs.
pub(crate) fn opus_track(
    stream_id: String,
    uuid: &str,
    kind: &str,
    ssrc: u32,
    clock: u32,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream_id,
        format!("{uuid}_1_CELT/40"),
        kind.into(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: opus_codec(clock),
            ..Default::default()
        }],
    )))
}

/// What a recorded-shape SDP takes from the stack's real one: its ICE credentials, its DTLS
/// fingerprint and its 127.0.0.1 candidates (one `a=` line each, candidates joined by CRLF).
pub(crate) struct StackKeys {
    pub ufrag: String,
    pub pwd: String,
    pub fingerprint: String,
    pub candidates: String,
}

/// Reads [`StackKeys`] from `real` (the stack's `what`: "offer" or "answer"); `host_only`
/// keeps host candidates only (on loopback; off it, the members send every UDP candidate they
/// gathered, server-reflexive ones included: [`crate::voice_net::VoiceNet::keeps_candidate`]).
pub(crate) fn stack_keys(real: &str, what: &str, host_only: bool) -> Result<StackKeys, String> {
    let pick = |prefix: &str| -> Result<String, String> {
        real.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .ok_or_else(|| format!("no {prefix} in the stack's {what}"))
    };
    let mut candidates: Vec<String> = real
        .lines()
        .map(str::trim)
        .filter(|l| {
            let net = crate::voice_net::get();
            net.keeps_candidate(l)
                && (!host_only || l.contains("typ host") || !net.members_on_loopback())
        })
        .map(str::to_owned)
        .collect();
    candidates.dedup();
    if candidates.is_empty() {
        let kind = if host_only {
            "host candidate"
        } else {
            "candidate"
        };
        return Err(format!("no {kind} gathered on the members' address"));
    }
    Ok(StackKeys {
        ufrag: pick("a=ice-ufrag:")?,
        pwd: pick("a=ice-pwd:")?,
        fingerprint: pick("a=fingerprint:sha-256")?,
        candidates: candidates.join("\r\n"),
    })
}
