//! Sliding one-minute windows: a ring of per-second buckets, each holding whatever one second
//! of activity adds up to (counts by key, a latency histogram). It owns only the bucketing by
//! time; the owner of a figure (the registration counters, the metrics) keeps its ring next to
//! its cumulative counter and updates both in one call, so there is one writer per figure.
//!
//! Seconds are counted on the monotonic clock from the first use of the process-wide
//! [`WindowClock`], so wall-clock jumps do not empty or freeze a window.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

/// Seconds a window covers.
pub const WINDOW_SECS: u64 = 60;

/// Whole seconds since the first call, on the monotonic clock.
pub struct WindowClock;

impl WindowClock {
    /// The current second.
    pub fn now() -> u64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_secs()
    }
}

/// What one second of activity adds to a window. Buckets are summed to answer "over the last
/// minute".
pub trait Bucket: Default {
    /// Adds `other` into `self`.
    fn merge(&mut self, other: &Self);
}

/// [`WINDOW_SECS`] buckets, one per second; a bucket older than the window is reset before it
/// is reused. Not synchronised: owners wrap it in a lock.
#[derive(Debug)]
pub struct SecondRing<B: Bucket> {
    slots: Vec<(u64, B)>,
}

impl<B: Bucket> Default for SecondRing<B> {
    fn default() -> SecondRing<B> {
        SecondRing {
            slots: (0..WINDOW_SECS).map(|_| (u64::MAX, B::default())).collect(),
        }
    }
}

impl<B: Bucket> SecondRing<B> {
    /// The bucket of second `now`, emptied first if it still held an older second.
    pub fn at(&mut self, now: u64) -> &mut B {
        let index = (now % WINDOW_SECS) as usize;
        let slot = &mut self.slots[index];
        if slot.0 != now {
            *slot = (now, B::default());
        }
        &mut slot.1
    }

    /// The sum of the buckets of the last [`WINDOW_SECS`] seconds up to and including `now`.
    pub fn total(&self, now: u64) -> B {
        let mut sum = B::default();
        for (second, bucket) in &self.slots {
            if *second <= now && now - *second < WINDOW_SECS {
                sum.merge(bucket);
            }
        }
        sum
    }
}

/// Counts by key (an action, an error code, a failure reason).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    /// Adds one to `key`.
    pub fn add(&mut self, key: &str) {
        match self.0.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                self.0.insert(key.to_string(), 1);
            }
        }
    }

    /// The sum over every key.
    pub fn sum(&self) -> u64 {
        self.0.values().sum()
    }
}

impl Bucket for Counts {
    fn merge(&mut self, other: &Counts) {
        for (key, n) in &other.0 {
            *self.0.entry(key.clone()).or_default() += n;
        }
    }
}

/// Smallest latency the histogram tells apart: 10 µs.
const LATENCY_FLOOR_SECS: f64 = 0.000_01;
/// Buckets per doubling: each bucket is 2^(1/4) ≈ 19 % wider than the previous one, so a
/// reported percentile is within 19 % of the true value.
const BUCKETS_PER_DOUBLING: f64 = 4.0;
/// 10 µs × 2^(96/4) ≈ 168 s; anything slower lands in the last bucket.
const LATENCY_BUCKETS: usize = 96;

/// A log-scale latency histogram, fixed size whatever the traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            counts: vec![0; LATENCY_BUCKETS],
        }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn observe(&mut self, seconds: f64) {
        let index = if seconds.is_finite() && seconds > LATENCY_FLOOR_SECS {
            ((seconds / LATENCY_FLOOR_SECS).log2() * BUCKETS_PER_DOUBLING) as usize
        } else {
            0
        };
        self.counts[index.min(LATENCY_BUCKETS - 1)] += 1;
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0.5 for p50) in seconds: the upper edge of the bucket holding it.
    /// `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(upper_edge(index));
            }
        }
        Some(upper_edge(LATENCY_BUCKETS - 1))
    }
}

fn upper_edge(index: usize) -> f64 {
    LATENCY_FLOOR_SECS * ((index + 1) as f64 / BUCKETS_PER_DOUBLING).exp2()
}

impl Bucket for LatencyHistogram {
    fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_forgets_seconds_older_than_a_minute() {
        let mut ring = SecondRing::<Counts>::default();
        ring.at(100).add("auth_failed");
        ring.at(130).add("auth_failed");
        ring.at(130).add("protocol_error");
        assert_eq!(ring.total(130).sum(), 3);
        assert_eq!(ring.total(159).sum(), 3);
        // Second 100 left the window at 160; 130 is still in it.
        assert_eq!(ring.total(160).0.get("auth_failed"), Some(&1));
        assert_eq!(ring.total(190).sum(), 0);
        // Reusing a slot resets it first.
        ring.at(190).add("x");
        assert_eq!(ring.total(190).0, BTreeMap::from([("x".to_string(), 1)]));
    }

    #[test]
    fn percentiles_are_within_one_bucket_of_the_truth() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.quantile(0.5), None);
        for ms in 1..=100 {
            histogram.observe(ms as f64 / 1000.0);
        }
        let p50 = histogram.quantile(0.5).unwrap();
        let p99 = histogram.quantile(0.99).unwrap();
        assert!((0.050..0.050 * 1.19).contains(&p50), "p50 {p50}");
        assert!((0.099..0.099 * 1.19).contains(&p99), "p99 {p99}");
        // Out-of-range values land in the end buckets instead of panicking.
        histogram.observe(f64::NAN);
        histogram.observe(1e9);
        histogram.observe(-1.0);
        assert_eq!(histogram.count(), 103);
    }
}
