//! Random values of every record, for the round-trip and fuzz properties.
//! A tiny deterministic generator seeded by proptest, so a failure shrinks
//! to a seed and replays exactly.

use bytes::Bytes;

/// SplitMix64: small, fast, good enough to build test values.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % u64::from(n.max(1))) as u32
    }
}

pub(crate) trait Sample {
    fn sample(rng: &mut Rng) -> Self;
}

impl Sample for i32 {
    fn sample(rng: &mut Rng) -> Self {
        match rng.below(4) {
            0 => rng.below(5) as i32 - 2,
            _ => rng.next_u64() as i32,
        }
    }
}

impl Sample for i64 {
    fn sample(rng: &mut Rng) -> Self {
        match rng.below(4) {
            0 => i64::from(rng.below(5)) - 2,
            _ => rng.next_u64() as i64,
        }
    }
}

impl Sample for bool {
    fn sample(rng: &mut Rng) -> Self {
        rng.below(2) == 1
    }
}

impl Sample for String {
    fn sample(rng: &mut Rng) -> Self {
        const ALPHABET: &[char] = &['/', 'a', 'z', '0', '-', '_', '.', 'é', '节', '\u{1f600}', ' '];
        let n = rng.below(12);
        (0..n).map(|_| ALPHABET[rng.below(ALPHABET.len() as u32) as usize]).collect()
    }
}

impl Sample for Bytes {
    fn sample(rng: &mut Rng) -> Self {
        let n = rng.below(24);
        (0..n).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>().into()
    }
}

impl Sample for Option<Bytes> {
    fn sample(rng: &mut Rng) -> Self {
        if rng.below(4) == 0 { None } else { Some(Bytes::sample(rng)) }
    }
}

impl<T: Sample> Sample for Vec<T> {
    fn sample(rng: &mut Rng) -> Self {
        let n = rng.below(4);
        (0..n).map(|_| T::sample(rng)).collect()
    }
}

impl<T: Sample> Sample for Option<Vec<T>> {
    fn sample(rng: &mut Rng) -> Self {
        if rng.below(3) == 0 { None } else { Some(Vec::sample(rng)) }
    }
}
