//! The per-packet facts a peer hands to the voice pipeline, and the two payload parsers the
//! pipeline needs before the jitter buffer: RED (RFC 2198) and the Opus TOC (RFC 6716 3.1).
//!
//! Both parsers take hostile input: they return `None` (the caller treats the packet as lost)
//! and never panic or allocate.

/// One RTP packet as received: what [`crate::voice::peer`] reports for a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpIn<'a> {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
    /// Arrival time in ns on the receiver's monotonic clock (virtual in tests).
    pub arrival_ns: u64,
}

/// Samples at 48 kHz in one Opus packet, from its TOC byte (and frame count byte for code 3).
///
/// `None` for an empty packet, a code-3 packet without its count byte, zero frames, or more
/// than 120 ms (RFC 6716 limit).
pub fn opus_samples_48k(payload: &[u8]) -> Option<u32> {
    let toc = *payload.first()?;
    let config = toc >> 3;
    let frame: u32 = match config {
        // SILK-only: NB, MB, WB x 10/20/40/60 ms
        0..=11 => [480, 960, 1920, 2880][(config & 3) as usize],
        // Hybrid: SWB, FB x 10/20 ms
        12..=15 => [480, 960][(config & 1) as usize],
        // CELT-only: 2.5/5/10/20 ms
        _ => [120, 240, 480, 960][(config & 3) as usize],
    };
    let frames: u32 = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*payload.get(1)? & 0x3f),
    };
    let total = frames.checked_mul(frame)?;
    if frames == 0 || total > 5760 {
        return None;
    }
    Some(total)
}

/// SILK frames (one per 20 ms) in each Opus frame of a packet with this TOC byte; None for
/// the CELT-only configurations, which have no SILK layer.
fn silk_frame_count(toc: u8) -> Option<u32> {
    let config = toc >> 3;
    match config {
        0..=11 => Some([1, 1, 2, 3][(config & 3) as usize]),
        12..=15 => Some(1),
        _ => None,
    }
}

/// Whether the first Opus frame of `payload` carries SILK in-band FEC (LBRR) data, i.e.
/// whether decoding it with `fec = true` can recover the packet before it.
///
/// The SILK layer starts with range-coded header bits of probability 1/2, which for the first
/// symbols of a frame are plain bits of its first byte: one VAD flag per 20 ms SILK frame, then
/// the LBRR flag, for the mid channel (then the same again for the side channel in stereo).
/// CELT-only packets never carry FEC.
pub fn opus_has_lbrr(payload: &[u8]) -> bool {
    let Some(&toc) = payload.first() else {
        return false;
    };
    let Some(silk_frames) = silk_frame_count(toc) else {
        return false;
    };
    // First byte of the first frame's data.
    let first = match toc & 3 {
        0 | 1 => payload.get(1),
        2 => match payload.get(1) {
            Some(&l) if l < 252 => payload.get(2),
            Some(_) => payload.get(3),
            None => None,
        },
        _ => {
            // code 3: count byte, optional padding length bytes, optional frame lengths (VBR)
            let Some(&fc) = payload.get(1) else {
                return false;
            };
            let mut pos = 2usize;
            if fc & 0x40 != 0 {
                loop {
                    let Some(&p) = payload.get(pos) else {
                        return false;
                    };
                    pos += 1;
                    if p != 255 {
                        break;
                    }
                }
            }
            if fc & 0x80 != 0 {
                // VBR: skip the lengths of all frames but the last
                for _ in 1..(fc & 0x3f) {
                    match payload.get(pos) {
                        Some(&l) if l < 252 => pos += 1,
                        Some(_) => pos += 2,
                        None => return false,
                    }
                }
            }
            payload.get(pos)
        }
    };
    let Some(&b) = first else {
        return false;
    };
    let stereo = toc & 0x04 != 0;
    let mid = b & (0x80 >> silk_frames) != 0;
    let side =
        stereo && (2 * (silk_frames + 1) - 1) < 8 && b & (0x80 >> (2 * (silk_frames + 1) - 1)) != 0;
    mid || side
}

/// The sender's voice activity for the first Opus frame of `payload`, from the SILK VAD flags
/// (one per 20 ms SILK frame, the first bits of the frame, plain bits like the LBRR flag):
/// `Some(false)` when SILK says none of it is speech, `Some(true)` when any of it is, `None`
/// for CELT-only or unparseable packets (no opinion). DTX packets are not speech.
pub fn opus_vad(payload: &[u8]) -> Option<bool> {
    if is_opus_dtx(payload) {
        return (!payload.is_empty()).then_some(false);
    }
    let toc = *payload.first()?;
    let silk_frames = silk_frame_count(toc)?;
    let first = match toc & 3 {
        0 | 1 => *payload.get(1)?,
        // other framings: keep it simple, no opinion
        _ => return None,
    };
    let mask = 0xffu8 << (8 - silk_frames);
    Some(first & mask != 0)
}

/// An Opus packet of one or two bytes carries no audio: the encoder is in DTX.
pub fn is_opus_dtx(payload: &[u8]) -> bool {
    payload.len() <= 2
}

/// One block of a RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedBlock<'a> {
    pub payload_type: u8,
    /// How far before the RTP header timestamp this block starts, in RTP clock units.
    /// Always 0 for the primary block.
    pub ts_offset: u32,
    pub payload: &'a [u8],
}

/// Up to this many redundant blocks are looked at (libwebrtc sends one or two).
pub const MAX_RED_BLOCKS: usize = 4;

/// A parsed RED payload: the redundant (older) blocks, oldest first, then the primary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Red<'a> {
    redundant: [Option<RedBlock<'a>>; MAX_RED_BLOCKS],
    pub primary: Option<RedBlock<'a>>,
}

impl<'a> Red<'a> {
    /// The redundant blocks present, in the order they appear (oldest first as senders write them).
    pub fn redundant(&self) -> impl Iterator<Item = &RedBlock<'a>> {
        self.redundant.iter().flatten()
    }
}

/// Parse an RFC 2198 payload. Headers: 4 bytes `F|PT(7) ts_offset(14) len(10)` for each
/// redundant block, then 1 byte `0|PT(7)` for the primary; then the block data in order.
/// Returns `None` when the headers or lengths do not fit the payload.
pub fn parse_red(payload: &[u8]) -> Option<Red<'_>> {
    let mut red = Red::default();
    let mut pos = 0usize;
    let mut count = 0usize;
    // (pt, offset, len) of the redundant headers, kept on the stack.
    let mut heads = [(0u8, 0u32, 0usize); MAX_RED_BLOCKS + 12];
    let primary_pt;
    loop {
        let b0 = *payload.get(pos)?;
        if b0 & 0x80 == 0 {
            primary_pt = b0 & 0x7f;
            pos += 1;
            break;
        }
        let h = payload.get(pos..pos + 4)?;
        let ts_offset = (u32::from(h[1]) << 6) | (u32::from(h[2]) >> 2);
        let len = ((usize::from(h[2]) & 0x03) << 8) | usize::from(h[3]);
        if count >= heads.len() {
            return None;
        }
        heads[count] = (b0 & 0x7f, ts_offset, len);
        count += 1;
        pos += 4;
    }
    let mut kept = 0usize;
    for &(pt, ts_offset, len) in &heads[..count] {
        let data = payload.get(pos..pos.checked_add(len)?)?;
        pos += len;
        if kept < MAX_RED_BLOCKS && !data.is_empty() {
            red.redundant[kept] = Some(RedBlock {
                payload_type: pt,
                ts_offset,
                payload: data,
            });
            kept += 1;
        }
    }
    let primary = payload.get(pos..)?;
    if !primary.is_empty() {
        red.primary = Some(RedBlock {
            payload_type: primary_pt,
            ts_offset: 0,
            payload: primary,
        });
    }
    Some(red)
}

/// Write a RED payload (for tests and the member simulator): `redundant` blocks are
/// `(pt, ts_offset, data)`, oldest first. Returns the bytes written, or `None` if `out` is too
/// small or a field does not fit its bits.
pub fn write_red(
    redundant: &[(u8, u32, &[u8])],
    primary_pt: u8,
    primary: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let mut pos = 0usize;
    for &(pt, off, data) in redundant {
        if off >= 1 << 14 || data.len() >= 1 << 10 || pt > 127 {
            return None;
        }
        let h = out.get_mut(pos..pos + 4)?;
        h[0] = 0x80 | pt;
        h[1] = (off >> 6) as u8;
        h[2] = (((off & 0x3f) << 2) as u8) | ((data.len() >> 8) as u8);
        h[3] = (data.len() & 0xff) as u8;
        pos += 4;
    }
    *out.get_mut(pos)? = primary_pt & 0x7f;
    pos += 1;
    for &(_, _, data) in redundant {
        out.get_mut(pos..pos + data.len())?.copy_from_slice(data);
        pos += data.len();
    }
    out.get_mut(pos..pos + primary.len())?
        .copy_from_slice(primary);
    Some(pos + primary.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_durations() {
        // SILK WB 20 ms, code 0
        assert_eq!(opus_samples_48k(&[(9 << 3), 1, 2]), Some(960));
        // SILK WB 40 ms
        assert_eq!(opus_samples_48k(&[(10 << 3), 1]), Some(1920));
        // SILK WB 60 ms
        assert_eq!(opus_samples_48k(&[(11 << 3)]), Some(2880));
        // CELT 10 ms, code 1 (two frames)
        assert_eq!(opus_samples_48k(&[(30 << 3) | 1, 0, 0]), Some(960));
        // code 3, 6 x 20 ms = 120 ms ok, 7 x 20 ms too long
        assert_eq!(opus_samples_48k(&[(31 << 3) | 3, 6]), Some(5760));
        assert_eq!(opus_samples_48k(&[(31 << 3) | 3, 7]), None);
        assert_eq!(opus_samples_48k(&[(31 << 3) | 3, 0]), None);
        assert_eq!(opus_samples_48k(&[(31 << 3) | 3]), None);
        assert_eq!(opus_samples_48k(&[]), None);
    }

    #[test]
    fn vad_flags() {
        // SILK WB 40 ms: two VAD bits
        assert_eq!(opus_vad(&[10 << 3, 0b0010_0000, 1]), Some(false));
        assert_eq!(opus_vad(&[10 << 3, 0b0100_0000, 1]), Some(true));
        // SILK 60 ms: three
        assert_eq!(opus_vad(&[11 << 3, 0b0010_0000, 1]), Some(true));
        assert_eq!(opus_vad(&[11 << 3, 0b0001_0000, 1]), Some(false));
        // CELT: no opinion; DTX: not speech
        assert_eq!(opus_vad(&[31 << 3, 0xff, 1]), None);
        assert_eq!(opus_vad(&[10 << 3]), Some(false));
        assert_eq!(opus_vad(&[]), None);
    }

    #[test]
    fn lbrr_flag() {
        // SILK WB 40 ms: VAD, VAD, LBRR
        assert!(opus_has_lbrr(&[10 << 3, 0b1010_0000]));
        assert!(!opus_has_lbrr(&[10 << 3, 0b1100_0000]));
        // SILK WB 20 ms: VAD, LBRR
        assert!(opus_has_lbrr(&[9 << 3, 0b0100_0000]));
        // CELT never
        assert!(!opus_has_lbrr(&[31 << 3, 0xff]));
        // code 2 with a two-byte length, code 3 with padding
        assert!(opus_has_lbrr(&[(9 << 3) | 2, 252, 1, 0x40]));
        assert!(opus_has_lbrr(&[(9 << 3) | 3, 0x42, 255, 3, 0x40]));
        for b in 0..=255u8 {
            let _ = opus_has_lbrr(&[b]);
            let _ = opus_has_lbrr(&[b, 0xff]);
            let _ = opus_has_lbrr(&[b, 0xc5, 0xff]);
        }
    }

    #[test]
    fn red_roundtrip_and_hostile() {
        let mut buf = [0u8; 64];
        let n = write_red(&[(96, 640, &[1, 2, 3])], 96, &[9, 8], &mut buf).unwrap();
        let red = parse_red(&buf[..n]).unwrap();
        let blocks: Vec<_> = red.redundant().copied().collect();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].ts_offset, 640);
        assert_eq!(blocks[0].payload, &[1, 2, 3]);
        assert_eq!(red.primary.unwrap().payload, &[9, 8]);
        // truncated: every prefix parses to None or to something shorter, never panics
        for cut in 0..n {
            let _ = parse_red(&buf[..cut]);
        }
        // a block longer than the payload
        assert!(parse_red(&[0x80 | 96, 0, 0, 200, 96, 1]).is_none());
        // all-header garbage
        assert!(parse_red(&[0xff; 200]).is_none());
        for b in 0..=255u8 {
            let _ = parse_red(&[b, b, b, b, b]);
            let _ = opus_samples_48k(&[b, b]);
        }
    }
}
