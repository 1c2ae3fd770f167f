//! A small seedable generator (SplitMix64). The loader needs reproducible choices — which user,
//! which protocol, how long to think — not cryptographic randomness, and one per session keeps
//! sessions independent of each other's timing.

/// SplitMix64.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator for stream `stream` of `seed` (e.g. one per session).
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut base = Self(seed ^ stream.wrapping_mul(0xd134_2543_de82_ef95));
        Self(base.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: bias below 2^-64 per draw, irrelevant here.
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Exponentially distributed with this mean (0 for a mean of 0).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        if mean <= 0.0 {
            return 0.0;
        }
        -mean * (1.0 - self.unit()).ln()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        assert_eq!(Rng::stream(1, 5).next_u64(), Rng::stream(1, 5).next_u64());
        assert_ne!(Rng::stream(1, 5).next_u64(), Rng::stream(1, 6).next_u64());
    }

    #[test]
    fn draws_stay_in_range_and_exponential_has_its_mean() {
        let mut rng = Rng::new(9);
        let mut sum = 0.0;
        for _ in 0..100_000 {
            assert!(rng.below(7) < 7);
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            sum += rng.exponential(2.0);
        }
        let mean = sum / 100_000.0;
        assert!((mean - 2.0).abs() < 0.05, "{mean}");
        assert_eq!(rng.exponential(0.0), 0.0);
    }
}
