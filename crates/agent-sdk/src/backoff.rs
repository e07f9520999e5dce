//! How long to wait before the next connection attempt: exponential backoff with full jitter
//! for transient failures, a wait near the maximum for permanent ones, and a reset once a
//! connection has stayed up. Whether a failure is permanent is decided elsewhere
//! ([`crate::RegisterError::is_permanent`]); this module only computes delays. The random
//! source is seedable so tests can reproduce a sequence.

use std::time::Duration;

/// Reconnection timing. Defaults: 1 s initial, 30 s maximum, reset after 30 s of uptime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Ceiling of the first delay; each further failure doubles the ceiling.
    pub initial: Duration,
    /// The largest ceiling, and the delay used after permanent rejections.
    pub max: Duration,
    /// A connection that stayed up this long resets the backoff to `initial`.
    pub reset_after: Duration,
    /// Seed of the jitter; `None` seeds from the system. Tests set it to replay a sequence.
    pub seed: Option<u64>,
}

impl Default for BackoffConfig {
    fn default() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(30),
            seed: None,
        }
    }
}

/// The backoff state of one connection slot.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A fresh backoff (no failures yet).
    pub fn new(config: BackoffConfig) -> Backoff {
        let rng = match config.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        Backoff {
            config,
            failures: 0,
            rng,
        }
    }

    /// Consecutive failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The ceiling the next transient delay is drawn under: `min(max, initial × 2^failures)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(31));
        self.config
            .initial
            .checked_mul(factor)
            .map_or(self.config.max, |d| d.min(self.config.max))
    }

    /// The delay after a transient failure: uniform in `[0, ceiling)` ("full jitter"),
    /// then the ceiling doubles.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.ceiling().mul_f64(self.rng.f64());
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// The delay after a permanent failure: uniform in `[max/2, max]`, so a misconfigured agent
    /// retries rarely (an operator may fix the proxy's side) but never in a tight loop.
    pub fn permanent_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let half = self.config.max / 2;
        half + half.mul_f64(self.rng.f64())
    }

    /// Call when a connection ended after `uptime`: long enough resets the backoff.
    pub fn connection_ended(&mut self, uptime: Duration) {
        if uptime >= self.config.reset_after {
            self.reset();
        }
    }

    /// Forgets past failures.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> BackoffConfig {
        BackoffConfig {
            seed: Some(seed),
            ..BackoffConfig::default()
        }
    }

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let mut backoff = Backoff::new(config(1));
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            ceilings.push(backoff.ceiling().as_secs());
            backoff.next_delay();
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 30, 30, 30]);
        for _ in 0..100 {
            backoff.next_delay();
        }
        assert_eq!(backoff.ceiling(), Duration::from_secs(30), "no overflow");
    }

    #[test]
    fn delays_are_jittered_below_their_ceiling() {
        let mut backoff = Backoff::new(config(7));
        let mut at_max = Vec::new();
        for _ in 0..40 {
            let ceiling = backoff.ceiling();
            let delay = backoff.next_delay();
            assert!(delay < ceiling, "{delay:?} >= {ceiling:?}");
            if ceiling == Duration::from_secs(30) {
                at_max.push(delay);
            }
        }
        let distinct: std::collections::HashSet<_> = at_max.iter().collect();
        assert!(distinct.len() > 20, "jitter spreads the delays: {at_max:?}");
        let mean = at_max.iter().sum::<Duration>() / at_max.len() as u32;
        assert!(
            mean > Duration::from_secs(8) && mean < Duration::from_secs(22),
            "full jitter averages half the ceiling, got {mean:?}"
        );
    }

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let run = |seed| {
            let mut b = Backoff::new(config(seed));
            (0..10).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn permanent_failures_wait_near_the_maximum() {
        let mut backoff = Backoff::new(config(9));
        for _ in 0..50 {
            let delay = backoff.permanent_delay();
            assert!(delay >= Duration::from_secs(15) && delay <= Duration::from_secs(30));
        }
    }

    #[test]
    fn long_uptime_resets_short_uptime_does_not() {
        let mut backoff = Backoff::new(config(2));
        for _ in 0..4 {
            backoff.next_delay();
        }
        backoff.connection_ended(Duration::from_secs(1));
        assert_eq!(backoff.ceiling(), Duration::from_secs(16));
        backoff.connection_ended(Duration::from_secs(30));
        assert_eq!(backoff.ceiling(), Duration::from_secs(1));
        assert_eq!(backoff.failures(), 0);
    }
}
