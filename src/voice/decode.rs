//! libopus decode of what the jitter buffer says to play: mono f32 at 48 kHz.
//!
//! A packet libopus rejects is concealed instead (malformed input is loss), so every call
//! fills exactly the samples the [`Frame`] asks for.

use crate::voice::jitter::Frame;
use crate::voice::{rms, samples_48k, OUTPUT_RATE};

/// Largest frame libopus produces (120 ms at 48 kHz).
pub const MAX_FRAME: usize = samples_48k(120);

/// Why a decoder could not be made.
#[derive(Debug)]
pub struct DecoderError(pub String);

impl std::fmt::Display for DecoderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "opus decoder: {}", self.0)
    }
}

impl std::error::Error for DecoderError {}

/// Counters of what the decoder did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames asked for ([`OpusDecoder::decode`] calls, silence included).
    pub calls: u64,
    pub packets: u64,
    pub fec: u64,
    pub plc: u64,
    /// Packets (or FEC sources) libopus refused; concealed instead.
    pub errors: u64,
    /// FEC frames much quieter than the concealment would be; the repetition was added.
    pub weak_fec: u64,
    /// Packets the FEC decoder decoded to stay in step (only while packets are being lost).
    pub fec_follow: u64,
}

/// Output kept for concealment (60 ms).
const HISTORY: usize = samples_48k(60);
/// The pitch is searched over the last 20 ms, lags 2.5 to 20 ms (400 down to 50 Hz).
const PITCH_WINDOW: usize = samples_48k(20);
const MIN_LAG: usize = samples_48k(5) / 2;
const MAX_LAG: usize = samples_48k(20);
/// Decimation for the pitch search (48 kHz -> 12 kHz is plenty for voice pitch).
const DECIMATE: usize = 4;
/// Below this normalised correlation the last audio is not periodic (noise, unvoiced): libopus
/// conceals alone.
const MIN_PERIODICITY: f32 = 0.5;
/// Concealment timeline, in samples since the loss began: libopus's concealment crossfades
/// into pitch repetition over the first 10 ms; the repetition holds full level until 60 ms,
/// then fades linearly (still above half level at 100 ms, when the jitter buffer turns to
/// silence; zero at 150 ms if an FEC frame extends it).
const LIBOPUS_PART: usize = samples_48k(10);
const HOLD: usize = samples_48k(60);
const FADE_END: usize = samples_48k(150);
/// A 10 ms window of the first frame after a loss under this share of the frame's level at
/// its end counts as starved (see [`PitchRepeat::resume`]).
const STARVED: f32 = 0.4;
/// Crossfade from the concealment back into decoded audio (2.5 ms).
const SEAM: usize = samples_48k(5) / 2;
/// An FEC frame under this share of the level the concealment would play (the RMS of the
/// 10 ms before the loss, times the concealment's fade) is a poor LBRR: the repetition is
/// added for the missing part ([`OpusDecoder::fill_weak_fec`]).
const WEAK_FEC: f32 = 0.6;

/// Waveform substitution for losses longer than libopus conceals well.
///
/// libopus's concealment fades within a few tens of ms, and worse, the frames decoded after a
/// long concealment are faded in from the concealment's low energy (SILK's "glue frames"): a
/// run of two or three lost 40 ms packets left 25-60 ms under -34 dBFS in the middle of a word,
/// most of it *after* the loss, in the FEC frame and the packet after it. So libopus conceals
/// only the first 10 ms, crossfading into a repetition of the last pitch period of what was
/// played (the ITU-T G.711 Appendix I idea), held at full level to 60 ms and faded out by
/// 150 ms; the decoder is not asked to conceal more, and we crossfade from the repetition into
/// the decoded audio (see [`PitchRepeat::resume`]). Audio that is not periodic (noise,
/// unvoiced sounds) is concealed by libopus alone, as before.
struct PitchRepeat {
    history: Box<[f32; HISTORY]>,
    /// How many of the history's last samples are known to be silence (at most `HISTORY`):
    /// more silence does not move a history that is all silence.
    silent_tail: usize,
    /// Samples concealed in the current loss (0: not in a loss).
    lost: usize,
    /// The repeated period (0: the audio before the loss was not periodic).
    lag: usize,
    /// Position within the repeated period.
    phase: usize,
    /// A concealment is playing: the history keeps the audio from before the loss.
    frozen: bool,
    /// Scratch for the decimated pitch search.
    scratch: Box<[f32; PITCH_WINDOW / DECIMATE + MAX_LAG / DECIMATE]>,
}

impl PitchRepeat {
    fn new() -> Self {
        Self {
            history: Box::new([0.0; HISTORY]),
            silent_tail: HISTORY,
            lost: 0,
            lag: 0,
            phase: 0,
            frozen: false,
            scratch: Box::new([0.0; PITCH_WINDOW / DECIMATE + MAX_LAG / DECIMATE]),
        }
    }

    fn remember(&mut self, out: &[f32]) {
        if self.frozen {
            return;
        }
        let n = out.len().min(HISTORY);
        self.history.copy_within(n.., 0);
        self.history[HISTORY - n..].copy_from_slice(&out[out.len() - n..]);
        self.silent_tail = 0;
    }

    /// As [`Self::remember`] for `n` samples of silence.
    fn remember_silence(&mut self, n: usize) {
        if self.frozen || self.silent_tail == HISTORY {
            return;
        }
        let n = n.min(HISTORY);
        self.history.copy_within(n.., 0);
        self.history[HISTORY - n..].fill(0.0);
        self.silent_tail = (self.silent_tail + n).min(HISTORY);
    }

    /// The lag (a multiple of 4 samples) whose repetition best continues the last 20 ms, or 0.
    fn find_lag(&mut self) -> usize {
        let span = PITCH_WINDOW + MAX_LAG;
        let src = &self.history[HISTORY - span..];
        for (i, d) in self.scratch.iter_mut().enumerate() {
            *d = src[i * DECIMATE..(i + 1) * DECIMATE].iter().sum::<f32>();
        }
        let x = &self.scratch[..];
        let w = PITCH_WINDOW / DECIMATE;
        let tail = &x[x.len() - w..];
        let energy: f32 = tail.iter().map(|v| v * v).sum();
        if energy <= 1e-9 {
            return 0;
        }
        let mut best = (0.0f32, 0usize);
        for lag in MIN_LAG / DECIMATE..=MAX_LAG / DECIMATE {
            let past = &x[x.len() - w - lag..x.len() - lag];
            let (mut xy, mut yy) = (0.0f32, 0.0f32);
            for (a, b) in tail.iter().zip(past) {
                xy += a * b;
                yy += b * b;
            }
            if yy > 1e-9 {
                let r = xy / (energy * yy).sqrt();
                if r > best.0 + 0.02 {
                    best = (r, lag);
                }
            }
        }
        if best.0 >= MIN_PERIODICITY {
            best.1 * DECIMATE
        } else {
            0
        }
    }

    fn gain(t: usize) -> f32 {
        if t < HOLD {
            1.0
        } else if t < FADE_END {
            (FADE_END - t) as f32 / (FADE_END - HOLD) as f32
        } else {
            0.0
        }
    }

    /// RMS of the last 10 ms before the loss (or of the last 10 ms played).
    fn recent_rms(&self) -> f32 {
        rms(&self.history[HISTORY - samples_48k(10)..])
    }

    /// The next sample of the repeated period, at full level.
    fn next_repeated(&mut self) -> f32 {
        let v = self.history[HISTORY - self.lag + self.phase];
        self.phase = (self.phase + 1) % self.lag;
        v
    }

    /// At the start of a loss: whether the last audio is periodic enough to repeat.
    fn begin(&mut self) -> bool {
        if self.lost == 0 {
            self.lag = self.find_lag();
            self.phase = 0;
        }
        self.lag > 0
    }

    /// How many of the next `n` concealed samples libopus should still produce.
    fn libopus_part(&self, n: usize) -> usize {
        LIBOPUS_PART.saturating_sub(self.lost).min(n)
    }

    /// `out` holds libopus's concealment (or zeros past [`LIBOPUS_PART`]): blend in the
    /// repetition.
    fn conceal(&mut self, out: &mut [f32]) {
        self.frozen = true;
        for x in out.iter_mut() {
            let t = self.lost;
            let w = (t as f32 / LIBOPUS_PART as f32).min(1.0);
            let rep = self.next_repeated() * Self::gain(t);
            *x = *x * (1.0 - w) + rep * w;
            self.lost += 1;
        }
    }

    /// An FEC frame was played (`out`) instead of the main decoder's output: remember it as
    /// the end of a loss, so that the next real packet is crossfaded in from a repetition of
    /// its last period.
    fn after_fec(&mut self, out: &[f32]) {
        self.lost = out.len().max(1);
        // The repetition continues from the FEC frame's end, which `remember` puts at the end
        // of the history before the next decode.
        self.phase = 0;
    }

    /// `out` is an FEC frame that follows audio from the main decoder: the two decoders'
    /// states differ (the FEC decoder also decoded earlier FEC frames), so their outputs do not
    /// meet. Crossfade over [`SEAM`] from the repetition of what was just played, which does.
    /// Leaves the repetition's phase alone (the weak-FEC fill counts from it).
    fn seam_into(&self, out: &mut [f32]) {
        if self.lag == 0 || self.lost > 0 {
            return;
        }
        let n = SEAM.min(out.len());
        for (i, x) in out[..n].iter_mut().enumerate() {
            let w = (i + 1) as f32 / (n + 1) as f32;
            let rep = self.history[HISTORY - self.lag + i % self.lag];
            *x = *x * w + rep * (1.0 - w);
        }
    }

    /// `out` starts with decoded audio: if a repetition was playing, crossfade out of it.
    ///
    /// After a loss a periodic voice's first frame often comes out far too quiet in places (the
    /// decoder's long-term predictor has no recent history) and takes 10-30 ms to reach its
    /// level. When any 10 ms of it is under 0.4 of the level it reaches at its end (or the level
    /// before the loss, if lower), the crossfade runs over the whole frame from a repetition at
    /// that level; otherwise over 2.5 ms from the repetition as it was fading.
    fn resume(&mut self, out: &mut [f32]) {
        if self.lost > 0 && self.lag > 0 {
            let n = out.len();
            let before = self.recent_rms();
            let target = if n >= 4 * 480 {
                rms(&out[n - 480..]).min(before)
            } else {
                0.0
            };
            let starved = n >= 4 * 480
                && target > 0.005
                && out[..n - 480]
                    .chunks(480)
                    .any(|w| rms(w) < STARVED * target);
            if starved {
                let level = target / before.max(1e-6);
                // The repetition starts at the level it was playing and eases to the frame's
                // over 10 ms (a jump to the new level at the seam was a click).
                let from = Self::gain(self.lost).max(level);
                for (i, x) in out.iter_mut().enumerate() {
                    let w = (i + 1) as f32 / (n + 1) as f32;
                    let ease = (i as f32 / 480.0).min(1.0);
                    let rep = self.next_repeated() * (from + (level - from) * ease);
                    *x = *x * w + rep * (1.0 - w);
                }
            } else {
                let n = SEAM.min(n);
                for (i, x) in out[..n].iter_mut().enumerate() {
                    let w = (i + 1) as f32 / (n + 1) as f32;
                    let t = self.lost + i;
                    let rep = self.next_repeated() * Self::gain(t);
                    *x = *x * w + rep * (1.0 - w);
                }
            }
        }
        self.lost = 0;
        self.frozen = false;
    }
}

/// One member's Opus decoder (mono, 48 kHz; a stereo packet is downmixed by libopus).
///
/// In-band FEC is decoded by a second libopus decoder that follows the same packets. Decoding
/// a lost frame from the next packet's LBRR leaves a decoder's state (its long-term predictor
/// history above all) with the weaker LBRR signal, and the next one or two packets of a
/// periodic voice then decode 3-10 dB too quiet: most of the gap after a recovered loss. So the
/// main decoder never decodes FEC: it goes on from the last real packet, and the seam between
/// the FEC frame and its output is crossfaded like the end of a concealment.
///
/// The second decoder costs as much as the first, so it follows the packets only while the
/// network is losing them: from the first loss until [`FOLLOW_PACKETS`] real packets have come
/// without one. At a loss after a clean stretch it is first reset and brought in step with the
/// last [`RECENT`] packets (kept for that), which gives SILK its predictor history back. On a
/// clean stream the receive path decodes each packet once (see docs/performance.md).
pub struct OpusDecoder {
    dec: opus::Decoder,
    fec_dec: opus::Decoder,
    /// Where `fec_dec`'s decodes of real packets go (unheard; they keep its state in step).
    scratch: Box<[f32; MAX_FRAME]>,
    /// Real packets `fec_dec` still follows (0: it is idle and out of step).
    follow_left: u32,
    /// The last [`RECENT`] real packets, to bring an idle `fec_dec` in step at a loss.
    recent: RecentPackets,
    stats: DecodeStats,
    repeat: PitchRepeat,
}

/// After a loss, the FEC decoder follows this many real packets (20 s of 40 ms packets).
const FOLLOW_PACKETS: u32 = 500;
/// Packets replayed into an idle FEC decoder at a loss (120 ms of 40 ms packets).
const RECENT: usize = 6;
/// The largest packet kept for that (libopus's largest is 1275 bytes per frame; a packet of
/// several frames may be longer, and is then not kept: the replay starts after it).
const RECENT_BYTES: usize = 1500;

/// A fixed ring of the last few packets' bytes (copied: no allocation per packet).
struct RecentPackets {
    bytes: Box<[[u8; RECENT_BYTES]; RECENT]>,
    len: [usize; RECENT],
    samples: [usize; RECENT],
    /// Where the next packet goes.
    next: usize,
}

impl RecentPackets {
    fn new() -> Self {
        Self {
            bytes: Box::new([[0; RECENT_BYTES]; RECENT]),
            len: [0; RECENT],
            samples: [0; RECENT],
            next: 0,
        }
    }

    fn push(&mut self, payload: &[u8], samples: usize) {
        let i = self.next;
        if payload.len() <= RECENT_BYTES {
            self.bytes[i][..payload.len()].copy_from_slice(payload);
            self.len[i] = payload.len();
            self.samples[i] = samples;
        } else {
            self.len[i] = 0;
        }
        self.next = (i + 1) % RECENT;
    }

    fn clear(&mut self) {
        self.len = [0; RECENT];
    }

    /// The kept packets, oldest first, with the samples each decodes to.
    fn oldest_first(&self) -> impl Iterator<Item = (&[u8], usize)> {
        (0..RECENT)
            .map(move |k| (self.next + k) % RECENT)
            .filter(move |&i| self.len[i] > 0)
            .map(move |i| (&self.bytes[i][..self.len[i]], self.samples[i]))
    }
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("stats", &self.stats)
            .finish()
    }
}

impl OpusDecoder {
    pub fn new() -> Result<Self, DecoderError> {
        let new = || {
            opus::Decoder::new(OUTPUT_RATE, opus::Channels::Mono)
                .map_err(|e| DecoderError(e.to_string()))
        };
        Ok(Self {
            dec: new()?,
            fec_dec: new()?,
            scratch: Box::new([0.0; MAX_FRAME]),
            follow_left: 0,
            recent: RecentPackets::new(),
            stats: DecodeStats::default(),
            repeat: PitchRepeat::new(),
        })
    }

    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Decode `frame` into `out`, which must hold at least `frame.samples()` (capped at
    /// [`MAX_FRAME`]). Returns the samples written: always `min(frame.samples(), MAX_FRAME,
    /// out.len())`.
    pub fn decode(&mut self, frame: &Frame<'_>, out: &mut [f32]) -> usize {
        self.stats.calls += 1;
        let want = frame.samples().min(MAX_FRAME).min(out.len());
        let out = &mut out[..want];
        self.decode_into(frame, out);
        if let Frame::Silence { .. } = frame {
            // Zeros (`decode_into` wrote them), without copying them.
            self.repeat.remember_silence(want);
        } else {
            self.repeat.remember(out);
        }
        want
    }

    /// `samples` of silence were played without asking the decoder (the member had nothing to
    /// play): leaves the decoder as that many samples of [`Frame::Silence`] would have.
    pub fn skipped_silence(&mut self, samples: usize) {
        self.repeat.lost = 0;
        self.repeat.frozen = false;
        self.repeat.remember_silence(samples);
    }

    fn decode_into(&mut self, frame: &Frame<'_>, out: &mut [f32]) {
        let want = out.len();
        match *frame {
            Frame::Silence { .. } => {
                out.fill(0.0);
                self.repeat.lost = 0;
                self.repeat.frozen = false;
                return;
            }
            Frame::Packet { payload, .. } | Frame::Red { payload, .. } => {
                self.stats.packets += 1;
                if self.follow_left > 0 {
                    self.follow_left -= 1;
                    self.stats.fec_follow += 1;
                    let _ = self
                        .fec_dec
                        .decode_float(payload, &mut self.scratch[..want], false);
                } else {
                    self.recent.push(payload, want);
                }
                if self.repeat.lost > LIBOPUS_PART {
                    // The main decoder skipped part of the loss (or an FEC frame): 10 ms of its
                    // own concealment first gives its long-term predictor a history at the
                    // voice's level, so the packet does not start near silence.
                    let _ = self.dec.decode_float(
                        &[],
                        &mut self.scratch[MAX_FRAME - LIBOPUS_PART..],
                        false,
                    );
                }
                match self.dec.decode_float(payload, out, false) {
                    Ok(n) if n == want => {
                        self.repeat.resume(out);
                        return;
                    }
                    Ok(n) if n < want && n > 0 => {
                        // Shorter than its timestamps said: conceal the rest.
                        self.repeat.resume(&mut out[..n]);
                        self.conceal(&mut out[n..]);
                        return;
                    }
                    _ => self.stats.errors += 1,
                }
            }
            Frame::Fec { payload, .. } => {
                self.stats.fec += 1;
                // libopus: frame_size must be a multiple of 2.5 ms; it conceals what FEC can't cover.
                let n = want / 120 * 120;
                if n > 0 {
                    // The pitch of the audio before the loss, for the seams.
                    let periodic = self.repeat.begin();
                    self.fec_decoder_in_step();
                    match self.fec_dec.decode_float(payload, &mut out[..n], true) {
                        Ok(got) if got == n => {
                            if periodic {
                                self.fill_weak_fec(&mut out[..n]);
                                self.repeat.seam_into(&mut out[..n]);
                            }
                            self.repeat.resume(&mut out[..n]);
                            if periodic {
                                // The next real packet starts after a seam, as after a loss.
                                self.repeat.after_fec(&out[..n]);
                            }
                            self.conceal(&mut out[n..]);
                            return;
                        }
                        _ => self.stats.errors += 1,
                    }
                }
            }
            Frame::Plc { .. } => {}
        }
        self.conceal(out);
    }

    /// An FEC frame much weaker than the concealment would be (a poor LBRR, seen at a third of
    /// the level on a steady voice's troughs) gets the repetition added for the missing part:
    /// where the LBRR is right (a voice that really got quieter or changed) it still carries
    /// the frame, where it is weak the repetition fills in.
    fn fill_weak_fec(&mut self, out: &mut [f32]) {
        let level = rms(out);
        let expected = self.repeat.recent_rms() * PitchRepeat::gain(self.repeat.lost);
        if level >= WEAK_FEC * expected || expected <= 0.0 {
            return;
        }
        self.stats.weak_fec += 1;
        let missing = 1.0 - level / expected;
        let start = self.repeat.lost;
        for (i, x) in out.iter_mut().enumerate() {
            let rep = self.repeat.next_repeated() * PitchRepeat::gain(start + i);
            *x += rep * missing;
        }
    }

    /// The network is losing packets: make sure the FEC decoder follows them from here on,
    /// bringing it in step first if it was idle.
    fn fec_decoder_in_step(&mut self) {
        if self.follow_left == 0 {
            let _ = self.fec_dec.reset_state();
            for (payload, samples) in self.recent.oldest_first() {
                let n = samples.min(MAX_FRAME);
                let _ = self
                    .fec_dec
                    .decode_float(payload, &mut self.scratch[..n], false);
            }
            self.recent.clear();
        }
        self.follow_left = FOLLOW_PACKETS;
    }

    /// Fill `out` with concealment: libopus's, carried on by pitch repetition ([`PitchRepeat`]).
    fn conceal(&mut self, out: &mut [f32]) {
        if out.is_empty() {
            // Nothing to conceal (an FEC frame covered it all). Going on would freeze the
            // repetition's history before the FEC frame, and the next seam would start from
            // audio the FEC frame had moved on from: a click at every recovered loss.
            return;
        }
        self.fec_decoder_in_step();
        if !self.repeat.begin() {
            self.libopus_conceal(out);
            self.repeat.lost += out.len();
            self.repeat.frozen = true;
            return;
        }
        let k = self.repeat.libopus_part(out.len());
        self.libopus_conceal(&mut out[..k]);
        out[k..].fill(0.0);
        self.repeat.conceal(out);
    }

    /// Fill `out` with libopus concealment (zeros if libopus refuses).
    fn libopus_conceal(&mut self, out: &mut [f32]) {
        if out.is_empty() {
            return;
        }
        self.stats.plc += 1;
        let mut done = 0;
        // In steps libopus accepts (multiples of 2.5 ms, at most 120 ms).
        while out.len() - done >= 120 {
            let n = ((out.len() - done) / 120 * 120).min(MAX_FRAME);
            match self.dec.decode_float(&[], &mut out[done..done + n], false) {
                Ok(got) if got > 0 && got <= n => done += got,
                _ => break,
            }
        }
        out[done..].fill(0.0);
        // The FEC decoder conceals the same stretch, to stay in step.
        if done > 0 {
            let _ = self
                .fec_dec
                .decode_float(&[], &mut self.scratch[..done], false);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn malformed_payloads_are_concealed_not_panics() {
        let mut d = OpusDecoder::new().unwrap();
        let mut out = [1.0f32; 1920];
        for p in [
            &[][..],
            &[0xff][..],
            &[0xfb, 0xff, 0xff, 0xff][..],
            &[3, 0][..],
        ] {
            let f = Frame::Packet {
                payload: p,
                samples: 1920,
            };
            assert_eq!(d.decode(&f, &mut out), 1920);
            assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
            let f = Frame::Fec {
                payload: p,
                samples: 1000,
            };
            assert_eq!(d.decode(&f, &mut out), 1000);
        }
        // asks for more than out holds
        let f = Frame::Plc { samples: 99_999 };
        assert_eq!(d.decode(&f, &mut out), 1920);
    }

    /// `n` 40 ms packets of a 440 Hz tone encoded as the members send them (16 kHz, mono,
    /// FEC on). The member tests use them too.
    pub(crate) fn packets(n: usize) -> Vec<Vec<u8>> {
        let mut enc =
            opus::Encoder::new(16_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        enc.set_inband_fec(true).unwrap();
        enc.set_packet_loss_perc(10).unwrap();
        let mut k = 0usize;
        (0..n)
            .map(|_| {
                let pcm: Vec<f32> = (0..640)
                    .map(|i| {
                        let t = (k + i) as f32 / 16_000.0;
                        0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                    })
                    .collect();
                k += 640;
                enc.encode_vec_float(&pcm, 1500).unwrap()
            })
            .collect()
    }

    /// Silence goes into the concealment history like any audio, without moving a history
    /// that is silence already.
    #[test]
    fn silence_is_remembered_as_zeros() {
        let mut d = OpusDecoder::new().unwrap();
        let mut out = [0.0f32; 1920];
        let p = packets(3);
        for q in &p {
            d.decode(
                &Frame::Packet {
                    payload: q,
                    samples: 1920,
                },
                &mut out,
            );
        }
        let last = out;
        let silence = Frame::Silence { samples: 480 };
        for _ in 0..3 {
            d.decode(&silence, &mut out);
        }
        let h = &d.repeat.history;
        assert_eq!(h[..HISTORY - 1440], last[1920 - (HISTORY - 1440)..]);
        assert!(h[HISTORY - 1440..].iter().all(|&v| v == 0.0));
        for _ in 0..3 {
            d.decode(&silence, &mut out);
        }
        assert!(d.repeat.history.iter().all(|&v| v == 0.0));
        assert_eq!(d.repeat.silent_tail, HISTORY);
        d.skipped_silence(480);
        d.decode(
            &Frame::Packet {
                payload: &p[0],
                samples: 1920,
            },
            &mut out,
        );
        assert_eq!(d.repeat.silent_tail, 0);
        assert_eq!(d.repeat.history[HISTORY - 1920..], out);
        assert!(d.repeat.history[..HISTORY - 1920].iter().all(|&v| v == 0.0));
    }

    /// The second decoder costs a full decode per packet: it runs only after a loss.
    #[test]
    fn the_fec_decoder_follows_only_after_a_loss() {
        let mut d = OpusDecoder::new().unwrap();
        let mut out = [0.0f32; 1920];
        let p = packets(20);
        for q in &p[..10] {
            d.decode(
                &Frame::Packet {
                    payload: q,
                    samples: 1920,
                },
                &mut out,
            );
        }
        assert_eq!(d.stats().fec_follow, 0, "clean stream");
        // Packet 10 lost: recovered from 11's FEC, then the stream goes on.
        d.decode(
            &Frame::Fec {
                payload: &p[11],
                samples: 1920,
            },
            &mut out,
        );
        let fec_rms = (out.iter().map(|v| v * v).sum::<f32>() / 1920.0).sqrt();
        assert!(
            fec_rms > 0.1,
            "the FEC frame carries the tone: rms {fec_rms}"
        );
        for q in &p[11..] {
            d.decode(
                &Frame::Packet {
                    payload: q,
                    samples: 1920,
                },
                &mut out,
            );
        }
        assert_eq!(d.stats().fec_follow, 9);
    }
}
