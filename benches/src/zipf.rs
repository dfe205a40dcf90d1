//! A deterministic key stream: a small PRNG and an exact Zipf(s) sampler.
//!
//! Both servers in a comparison must see the identical request sequence, on
//! any machine and with any crate versions, so the generator is written here
//! instead of taken from `rand`, whose stream may change between releases.
//! The PRNG is xoshiro256** seeded through SplitMix64 (Blackman and Vigna's
//! recommended pairing); the sampler inverts a precomputed cumulative
//! distribution (one `f64` per key, 8 MB for a million keys) by binary
//! search, which is exact up to floating-point rounding and simple to check
//! against the analytic probabilities. Depends on nothing but `std`.

use thiserror::Error;

/// Why a Zipf distribution cannot be built.
#[derive(Debug, Error, PartialEq)]
pub enum ZipfError {
    /// A distribution over no keys has nothing to sample.
    #[error("the number of keys must be at least 1")]
    NoKeys,
    /// A negative or non-finite exponent does not give a decreasing distribution.
    #[error("the Zipf exponent must be finite and >= 0, got {0}")]
    BadExponent(f64),
}

/// xoshiro256**: a fast, well-tested 64-bit generator whose output depends
/// only on the seed, so the stream is reproducible across runs and servers.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

/// One SplitMix64 step: expands a single seed into well-mixed state words.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        Self::from_state([
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ])
    }

    /// A generator with the raw state words, for checking against the
    /// reference implementation's published outputs.
    fn from_state(s: [u64; 4]) -> Self {
        Self { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf(s) over ranks `0..n`: rank `k` (0-based) is drawn with probability
/// `(k+1)^-s / H(n, s)`, so rank 0 is the hottest key.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cdf[k]` = P(rank <= k); the last entry is exactly 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// Precomputes the cumulative distribution for `n` keys and exponent `s`.
    pub fn new(n: usize, s: f64) -> Result<Self, ZipfError> {
        if n == 0 {
            return Err(ZipfError::NoKeys);
        }
        if !s.is_finite() || s < 0.0 {
            return Err(ZipfError::BadExponent(s));
        }
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0f64;
        for k in 1..=n {
            total += (k as f64).powf(-s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        // Rounding may leave the last entry a hair under 1; a draw of
        // u in [0, 1) must always land on some rank.
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Ok(Self { cdf })
    }

    /// The number of ranks.
    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    /// The share of all draws that fall on the `k` hottest ranks: the hit
    /// ratio of an ideal cache that always holds exactly those keys, an upper
    /// bound for any eviction policy of that size.
    pub fn head_mass(&self, k: usize) -> f64 {
        match k {
            0 => 0.0,
            k => self.cdf[k.min(self.cdf.len()) - 1],
        }
    }

    /// The probability of rank `k` under this distribution (0 outside it).
    #[cfg(test)]
    fn probability(&self, k: usize) -> f64 {
        self.head_mass(k + 1) - self.head_mass(k)
    }

    /// Draws one rank: the first `k` with `cdf[k] > u` for a uniform `u`.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// H(n, s) summed independently of the sampler's table.
    fn harmonic(n: usize, s: f64) -> f64 {
        (1..=n).map(|k| 1.0 / (k as f64).powf(s)).sum()
    }

    /// Pearson's chi-square statistic of observed counts against the
    /// analytic Zipf(n, s) probabilities.
    fn chi_square(counts: &[u64], samples: u64, s: f64) -> f64 {
        let h = harmonic(counts.len(), s);
        counts
            .iter()
            .enumerate()
            .map(|(k, &obs)| {
                let expected = samples as f64 / ((k + 1) as f64).powf(s) / h;
                (obs as f64 - expected).powi(2) / expected
            })
            .sum()
    }

    fn histogram(n: usize, s: f64, samples: u64, seed: u64) -> Vec<u64> {
        let z = Zipf::new(n, s).unwrap();
        let mut rng = Rng::new(seed);
        let mut counts = vec![0u64; n];
        for _ in 0..samples {
            counts[z.sample(&mut rng)] += 1;
        }
        counts
    }

    #[test]
    fn xoshiro256starstar_matches_reference_outputs() {
        // First outputs of the reference C implementation from state {1, 2, 3, 4}.
        let mut rng = Rng::from_state([1, 2, 3, 4]);
        let got: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(got, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn splitmix64_matches_reference_output() {
        let mut state = 0u64;
        assert_eq!(splitmix64(&mut state), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn same_seed_gives_same_stream_and_another_seed_does_not() {
        let z = Zipf::new(1000, 0.99).unwrap();
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..1000).map(|_| z.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn probabilities_match_the_analytic_zipf() {
        let (n, s) = (1000, 0.99);
        let z = Zipf::new(n, s).unwrap();
        let h = harmonic(n, s);
        for k in [0, 1, 2, 9, 99, 999] {
            let want = 1.0 / ((k + 1) as f64).powf(s) / h;
            assert!(
                (z.probability(k) - want).abs() < 1e-12,
                "rank {k}: {} vs {want}",
                z.probability(k)
            );
        }
        assert_eq!(z.probability(n), 0.0);
        assert_eq!(z.len(), n);
        assert_eq!(z.head_mass(0), 0.0);
        assert_eq!(z.head_mass(n), 1.0);
        let h10: f64 = (1..=10).map(|k| 1.0 / (k as f64).powf(s)).sum();
        assert!((z.head_mass(10) - h10 / h).abs() < 1e-12);
    }

    #[test]
    fn samples_follow_zipf_099_on_ten_keys() {
        // 9 degrees of freedom: the 0.1% critical value is 27.88.
        let samples = 200_000;
        let counts = histogram(10, 0.99, samples, 42);
        let chi2 = chi_square(&counts, samples, 0.99);
        assert!(chi2 < 27.88, "chi-square {chi2} for {counts:?}");
        // The same counts are far from a neighbouring exponent, so the check
        // above has the power to see a wrong exponent or an off-by-one rank.
        assert!(chi_square(&counts, samples, 1.2) > 1000.0);
        assert!(chi_square(&counts, samples, 0.8) > 1000.0);
    }

    #[test]
    fn exponent_zero_is_uniform() {
        let samples = 100_000;
        let counts = histogram(10, 0.0, samples, 3);
        let chi2 = chi_square(&counts, samples, 0.0);
        assert!(chi2 < 27.88, "chi-square {chi2} for {counts:?}");
    }

    #[test]
    fn single_key_always_draws_rank_zero() {
        let z = Zipf::new(1, 0.99).unwrap();
        let mut rng = Rng::new(1);
        assert!((0..100).all(|_| z.sample(&mut rng) == 0));
    }

    #[test]
    fn rejects_empty_and_bad_exponents() {
        assert_eq!(Zipf::new(0, 1.0).unwrap_err(), ZipfError::NoKeys);
        assert!(matches!(Zipf::new(5, -0.5), Err(ZipfError::BadExponent(_))));
        assert!(matches!(
            Zipf::new(5, f64::NAN),
            Err(ZipfError::BadExponent(_))
        ));
    }
}
