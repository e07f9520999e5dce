//! The health of one upstream target and the choice of the next target: round robin over the
//! targets that are up; a target with `max_fails` consecutive failures (connect errors,
//! timeouts) is down for `fail_timeout`; when every target is down the least recently failed one
//! is tried anyway; `max_fails 0` never marks a target down. Pure bookkeeping on values and
//! instants: no locks, no I/O (the group in [`super::group`] holds and shares these).

use std::time::{Duration, Instant};

/// The health of one target as it is now.
#[derive(Debug, Clone, Default)]
pub(super) struct Health {
    pub(super) consecutive_failures: u32,
    pub(super) down_until: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Health {
    pub(super) fn is_up(&self, now: Instant) -> bool {
        !matches!(self.down_until, Some(until) if now < until)
    }

    pub(super) fn record_failure(&mut self, now: Instant, max_fails: u32, fail_timeout: Duration) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_failure = Some(now);
        if max_fails > 0 && self.consecutive_failures >= max_fails {
            self.down_until = now.checked_add(fail_timeout);
        }
    }

    pub(super) fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.down_until = None;
    }
}

/// Round robin from `start` over targets that are up at `now`; if none is, the one whose last
/// failure is oldest. `None` only for an empty list.
pub(super) fn choose(health: &[Health], start: usize, now: Instant) -> Option<usize> {
    let n = health.len();
    if n == 0 {
        return None;
    }
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| health[i].is_up(now))
        .or_else(|| (0..n).min_by_key(|&i| health[i].last_failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn down(since: Instant) -> Health {
        let mut h = Health::default();
        h.record_failure(since, 1, TIMEOUT);
        h
    }

    #[test]
    fn round_robin_over_healthy_targets() {
        let now = Instant::now();
        let health = vec![Health::default(); 3];
        let picks: Vec<_> = (0..6).map(|s| choose(&health, s, now).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(choose(&[], 0, now), None);
    }

    #[test]
    fn a_down_target_is_skipped_until_its_fail_timeout_passed() {
        let t0 = Instant::now();
        let health = vec![Health::default(), down(t0), Health::default()];
        let picks: Vec<_> = (0..6).map(|s| choose(&health, s, t0).unwrap()).collect();
        assert_eq!(picks, [0, 2, 2, 0, 2, 2]);
        let later = t0 + TIMEOUT;
        assert_eq!(choose(&health, 1, later), Some(1));
    }

    #[test]
    fn all_down_tries_the_least_recently_failed() {
        let t0 = Instant::now();
        let health = vec![
            down(t0 + Duration::from_secs(2)),
            down(t0),
            down(t0 + Duration::from_secs(1)),
        ];
        let now = t0 + Duration::from_secs(3);
        for start in 0..3 {
            assert_eq!(choose(&health, start, now), Some(1));
        }
    }

    #[test]
    fn max_fails_counts_consecutive_failures_and_success_resets() {
        let t0 = Instant::now();
        let mut h = Health::default();
        h.record_failure(t0, 3, TIMEOUT);
        h.record_failure(t0, 3, TIMEOUT);
        assert!(h.is_up(t0));
        h.record_success();
        h.record_failure(t0, 3, TIMEOUT);
        h.record_failure(t0, 3, TIMEOUT);
        assert!(h.is_up(t0));
        h.record_failure(t0, 3, TIMEOUT);
        assert!(!h.is_up(t0));
        assert!(h.is_up(t0 + TIMEOUT));
        h.record_success();
        assert!(h.is_up(t0));

        let mut never = Health::default();
        for _ in 0..100 {
            never.record_failure(t0, 0, TIMEOUT);
        }
        assert!(never.is_up(t0));
    }
}
