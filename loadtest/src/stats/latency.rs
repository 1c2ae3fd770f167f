//! Latency histograms (HDR, microseconds) and their summaries in milliseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::round3;

/// The longest latency recorded exactly; longer ones are clamped (and still counted).
const MAX_MICROS: u64 = 300_000_000;

/// A latency histogram in microseconds.
#[derive(Clone, Debug)]
pub struct Latency(Histogram<u64>);

impl Latency {
    /// Empty, 3 significant digits over 1 µs to 300 s.
    pub fn new() -> Self {
        Self::with_precision(3)
    }

    /// Empty, with `digits` significant digits (2 for the per-second timeline).
    pub(super) fn with_precision(digits: u8) -> Self {
        // The bounds are constants that hdrhistogram accepts; failing here is a programming error.
        Self(Histogram::new_with_bounds(1, MAX_MICROS, digits).expect("constant histogram bounds are valid"))
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_MICROS);
        self.0.saturating_record(micros);
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at `quantile` (0..=1), in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        if self.0.is_empty() { 0.0 } else { self.0.value_at_quantile(quantile) as f64 / 1000.0 }
    }

    /// Count, mean and percentiles, in milliseconds.
    pub fn summary(&self) -> Summary {
        let empty = self.0.is_empty();
        let ms = |micros: u64| if empty { 0.0 } else { round3(micros as f64 / 1000.0) };
        Summary {
            count: self.count(),
            min_ms: ms(self.0.min()),
            mean_ms: if empty { 0.0 } else { round3(self.0.mean() / 1000.0) },
            p50_ms: round3(self.quantile_ms(0.5)),
            p90_ms: round3(self.quantile_ms(0.9)),
            p99_ms: round3(self.quantile_ms(0.99)),
            p999_ms: round3(self.quantile_ms(0.999)),
            max_ms: ms(self.0.max()),
        }
    }

    /// Forgets every sample.
    pub(super) fn reset(&mut self) {
        self.0.reset();
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

/// A latency distribution, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_samples() {
        let mut h = Latency::new();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
        assert!((s.mean_ms - 50.5).abs() < 0.1, "{s:?}");
        assert!((s.min_ms - 1.0).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn merged_histograms_hold_both_sets_of_samples() {
        let (mut a, mut b) = (Latency::new(), Latency::new());
        for _ in 0..90 {
            a.record(Duration::from_millis(1));
        }
        for _ in 0..10 {
            b.record(Duration::from_millis(100));
        }
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert!((a.quantile_ms(0.5) - 1.0).abs() < 0.01);
        assert!((a.quantile_ms(0.95) - 100.0).abs() < 0.1);
    }

    #[test]
    fn empty_and_extreme_latencies_are_safe() {
        let mut h = Latency::new();
        assert_eq!(h.summary(), Summary::default());
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(3600));
        let s = h.summary();
        assert_eq!(s.count, 2);
        assert!((s.max_ms - 300_000.0).abs() / 300_000.0 < 0.001, "clamped to the bound: {s:?}");
    }
}
