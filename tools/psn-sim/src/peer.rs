//! What the simulator's two kinds of WebRTC peer share (voice members in [`crate::voice`], the
//! rtcBridge's media in [`crate::bridge_voice`]): a `webrtc` stack on 127.0.0.1 with the given
//! codecs, its event handler, an Opus send track, and the stack's own ICE keys and candidates,
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
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState, Registry,
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

/// The stack's events: ICE gathering done wakes `gathered` (the SDPs carry every candidate
/// inline, no trickle); each connection state goes to `on_state`.
struct Events<F> {
    gathered: Arc<Notify>,
    on_state: F,
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
}

/// A peer connection on 127.0.0.1 that knows `codecs` (audio) only. Returns it and the
/// notification of its ICE gathering being complete.
pub(crate) async fn loopback_peer(
    codecs: Vec<RTCRtpCodecParameters>,
    on_state: impl Fn(RTCPeerConnectionState) + Send + Sync + 'static,
) -> Result<(Arc<dyn PeerConnection>, Arc<Notify>), String> {
    let mut me = MediaEngine::default();
    for codec in codecs {
        me.register_codec(codec, RtpCodecKind::Audio).map_err(e2s)?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut me).map_err(e2s)?;
    let gathered = Arc::new(Notify::new());
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Events {
            gathered: gathered.clone(),
            on_state,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
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
/// keeps host candidates only.
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
            l.starts_with("a=candidate:")
                && l.contains(" 127.0.0.1 ")
                && (!host_only || l.contains("typ host"))
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
        return Err(format!("no 127.0.0.1 {kind} gathered"));
    }
    Ok(StackKeys {
        ufrag: pick("a=ice-ufrag:")?,
        pwd: pick("a=ice-pwd:")?,
        fingerprint: pick("a=fingerprint:sha-256")?,
        candidates: candidates.join("\r\n"),
    })
}
