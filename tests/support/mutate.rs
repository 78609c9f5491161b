//! Mutations of valid inputs for the brief stable fuzzing (tests/fuzz_brief.rs, psn_fuzz):
//! byte flips, deletions, insertions, cuts, splices with another seed, repeated chunks.

use rand::Rng;

/// One random mutation of `b`; `seeds` are the inputs a splice takes its tail from.
pub fn mutate(rng: &mut impl Rng, b: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    match rng.random_range(0..6) {
        0 if !b.is_empty() => {
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
        }
        1 if !b.is_empty() => {
            let i = rng.random_range(0..b.len());
            b.remove(i);
        }
        2 => {
            let i = rng.random_range(0..=b.len());
            b.insert(i, rng.random());
        }
        3 => {
            let n = rng.random_range(0..=b.len());
            b.truncate(n);
        }
        4 => {
            // Splice: the head of this input, the tail of another.
            let other = &seeds[rng.random_range(0..seeds.len())];
            let at = rng.random_range(0..=b.len());
            let from = rng.random_range(0..=other.len());
            b.truncate(at);
            b.extend_from_slice(&other[from..]);
        }
        _ if !b.is_empty() => {
            // Repeat a chunk (duplicated packets, repeated JSON members).
            let i = rng.random_range(0..b.len());
            let n = rng.random_range(1..=(b.len() - i).min(64));
            let chunk = b[i..i + n].to_vec();
            b.splice(i..i, chunk);
        }
        _ => b.push(rng.random()),
    }
}
