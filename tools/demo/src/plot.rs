//! Draws each track's waveform (min/max per pixel column) one above the other
//! into a PNG, with a faint centre line and a label strip per track.

use std::path::Path;

const WIDTH: usize = 1200;
const TRACK_HEIGHT: usize = 110;
const GAP: usize = 12;
const BACKGROUND: [u8; 3] = [24, 26, 31];
const AXIS: [u8; 3] = [60, 64, 72];
const COLOURS: [[u8; 3]; 6] = [
    [86, 182, 255],
    [255, 170, 70],
    [120, 220, 120],
    [235, 110, 190],
    [200, 200, 90],
    [230, 230, 230],
];

/// `tracks` are (name, samples); the name is drawn as a coloured tag (no
/// font: the order is the order of the table printed beside it).
pub fn waveforms(path: &Path, tracks: &[(String, Vec<f32>)]) -> std::io::Result<()> {
    let height = tracks.len().max(1) * (TRACK_HEIGHT + GAP) + GAP;
    let mut pixels = vec![0u8; WIDTH * height * 3];
    for px in pixels.chunks_mut(3) {
        px.copy_from_slice(&BACKGROUND);
    }
    let mut put = |x: usize, y: usize, c: [u8; 3]| {
        if x < WIDTH && y < height {
            let i = (y * WIDTH + x) * 3;
            pixels[i..i + 3].copy_from_slice(&c);
        }
    };
    for (t, (_, samples)) in tracks.iter().enumerate() {
        let top = GAP + t * (TRACK_HEIGHT + GAP);
        let mid = top + TRACK_HEIGHT / 2;
        let colour = COLOURS[t % COLOURS.len()];
        for x in 0..WIDTH {
            put(x, mid, AXIS);
        }
        // A tag at the left edge in the track's colour.
        for y in top..top + 10 {
            for x in 0..10 {
                put(x, y, colour);
            }
        }
        if samples.is_empty() {
            continue;
        }
        let per_column = samples.len().div_ceil(WIDTH - 16).max(1);
        for (column, chunk) in samples.chunks(per_column).enumerate() {
            let (lo, hi) = chunk
                .iter()
                .fold((0.0f32, 0.0f32), |(lo, hi), &s| (lo.min(s), hi.max(s)));
            let half = (TRACK_HEIGHT / 2 - 2) as f32;
            let y_hi = mid as f32 - hi.clamp(-1.0, 1.0) * half;
            let y_lo = mid as f32 - lo.clamp(-1.0, 1.0) * half;
            for y in (y_hi as usize)..=(y_lo as usize) {
                put(16 + column, y, colour);
            }
        }
    }
    let file = std::fs::File::create(path)?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(&pixels)
        .map_err(std::io::Error::other)
}
