//! Upstream groups: round robin over a group's targets with passive health checking, and the
//! registry that keeps each group (its health, rotation and keep-alive client) across
//! configuration reloads. A target with `max_fails` consecutive failures (connect errors,
//! timeouts) is skipped for `fail_timeout`; when every target is down the least recently
//! failed one is tried anyway. `max_fails 0` never marks a target down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::uri::Authority;
use serde::Serialize;

use super::forward::{self, UpstreamClient};
use crate::config::{Config, UpstreamConfig};

/// The health of one target as it is now.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    consecutive_failures: u32,
    down_until: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Health {
    fn is_up(&self, now: Instant) -> bool {
        !matches!(self.down_until, Some(until) if now < until)
    }

    fn record_failure(&mut self, now: Instant, max_fails: u32, fail_timeout: Duration) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_failure = Some(now);
        if max_fails > 0 && self.consecutive_failures >= max_fails {
            self.down_until = now.checked_add(fail_timeout);
        }
    }

    fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.down_until = None;
    }
}

/// Round robin from `start` over targets that are up at `now`; if none is, the one whose last
/// failure is oldest. `None` only for an empty list.
pub(crate) fn choose(health: &[Health], start: usize, now: Instant) -> Option<usize> {
    let n = health.len();
    if n == 0 {
        return None;
    }
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| health[i].is_up(now))
        .or_else(|| (0..n).min_by_key(|&i| health[i].last_failure))
}

/// One target of a group.
pub(crate) struct Target {
    /// As configured, `host:port`.
    pub(crate) address: String,
    /// Parsed, for request URIs; `None` if the address is not a valid authority.
    pub(crate) authority: Option<Authority>,
    health: Arc<Mutex<Health>>,
}

/// A configured upstream group with its live state.
pub(crate) struct UpstreamGroup {
    pub(crate) config: UpstreamConfig,
    pub(crate) targets: Vec<Target>,
    next: Arc<AtomicUsize>,
    pub(crate) client: UpstreamClient,
}

fn lock(health: &Mutex<Health>) -> MutexGuard<'_, Health> {
    health.lock().unwrap_or_else(|p| p.into_inner())
}

impl UpstreamGroup {
    /// A group for `config`, keeping the health of targets `previous` already had and its
    /// rotation and client when they still fit.
    fn build(config: &UpstreamConfig, previous: Option<&UpstreamGroup>) -> UpstreamGroup {
        let targets = config
            .targets
            .iter()
            .map(|address| Target {
                address: address.clone(),
                authority: address.parse().ok(),
                health: previous
                    .and_then(|p| p.targets.iter().find(|t| &t.address == address))
                    .map(|t| t.health.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let same_targets = previous.is_some_and(|p| p.config.targets == config.targets);
        let next = match previous {
            Some(p) if same_targets => p.next.clone(),
            _ => Arc::default(),
        };
        let client = match previous {
            Some(p) if p.config.connect_timeout == config.connect_timeout => p.client.clone(),
            _ => forward::client(config.connect_timeout),
        };
        UpstreamGroup {
            config: config.clone(),
            targets,
            next,
            client,
        }
    }

    /// The target the next request goes to, by index.
    pub(crate) fn pick(&self, now: Instant) -> Option<usize> {
        let health: Vec<Health> = self
            .targets
            .iter()
            .map(|t| lock(&t.health).clone())
            .collect();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        choose(&health, start, now)
    }

    /// A connect error or timeout on target `index`.
    pub(crate) fn record_failure(&self, index: usize, now: Instant) {
        if let Some(target) = self.targets.get(index) {
            let mut health = lock(&target.health);
            health.record_failure(now, self.config.max_fails, self.config.fail_timeout);
            if !health.is_up(now) {
                tracing::warn!(upstream = %self.config.name, target = %target.address, failures = health.consecutive_failures, "upstream target marked down");
            }
        }
    }

    /// A response from target `index`.
    pub(crate) fn record_success(&self, index: usize) {
        if let Some(target) = self.targets.get(index) {
            lock(&target.health).record_success();
        }
    }

    fn snapshot(&self, now: Instant) -> UpstreamHealth {
        UpstreamHealth {
            upstream: self.config.name.clone(),
            targets: self
                .targets
                .iter()
                .map(|t| {
                    let health = lock(&t.health);
                    TargetHealth {
                        address: t.address.clone(),
                        available: health.is_up(now),
                        consecutive_failures: health.consecutive_failures,
                        down_for_ms: health
                            .down_until
                            .filter(|until| *until > now)
                            .map(|until| (until - now).as_millis().try_into().unwrap_or(u64::MAX)),
                    }
                })
                .collect(),
        }
    }
}

/// The health of one upstream group, for the admin side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamHealth {
    /// The group's name.
    pub upstream: String,
    /// Its targets, in configuration order.
    pub targets: Vec<TargetHealth>,
}

/// The health of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetHealth {
    /// `host:port` as configured.
    pub address: String,
    /// Whether requests are sent to it now.
    pub available: bool,
    /// Connect errors and timeouts since its last success.
    pub consecutive_failures: u32,
    /// How much longer it is skipped, if it is down.
    pub down_for_ms: Option<u64>,
}

/// Every upstream group's live state, keyed by name. Survives configuration reloads: a group
/// whose configuration changed is rebuilt, keeping the health of targets it still has.
#[derive(Default)]
pub struct Upstreams {
    groups: Mutex<HashMap<String, Arc<UpstreamGroup>>>,
}

impl Upstreams {
    /// An empty registry.
    pub fn new() -> Upstreams {
        Upstreams::default()
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, Arc<UpstreamGroup>>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live group for `config`, (re)built if it is new or its configuration changed.
    pub(crate) fn group(&self, config: &UpstreamConfig) -> Arc<UpstreamGroup> {
        let mut groups = self.groups();
        match groups.get(&config.name) {
            Some(group) if group.config == *config => group.clone(),
            previous => {
                let group = Arc::new(UpstreamGroup::build(config, previous.map(|g| &**g)));
                groups.insert(config.name.clone(), group.clone());
                group
            }
        }
    }

    /// Brings the registry in line with `config` (after a reload): groups no longer configured
    /// are dropped with their idle connections, changed ones rebuilt.
    pub fn sync(&self, config: &Config) {
        self.groups()
            .retain(|name, _| config.upstreams.iter().any(|u| &u.name == name));
        for upstream in &config.upstreams {
            self.group(upstream);
        }
    }

    /// The health of every group of `config`, in configuration order.
    pub fn snapshot(&self, config: &Config) -> Vec<UpstreamHealth> {
        let now = Instant::now();
        config
            .upstreams
            .iter()
            .map(|u| self.group(u).snapshot(now))
            .collect()
    }
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

    fn upstream(targets: &[&str], max_fails: u32) -> UpstreamConfig {
        UpstreamConfig {
            name: "backend".into(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            max_fails,
            fail_timeout: TIMEOUT,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn health_survives_a_reload_with_the_same_targets() {
        let upstreams = Upstreams::new();
        let first = upstreams.group(&upstream(&["127.0.0.1:1", "127.0.0.1:2"], 1));
        first.record_failure(1, Instant::now());
        // Same targets, another setting: health kept.
        let second = upstreams.group(&upstream(&["127.0.0.1:1", "127.0.0.1:2"], 2));
        assert!(!Arc::ptr_eq(&first, &second));
        let snapshot = second.snapshot(Instant::now());
        assert!(snapshot.targets[0].available);
        assert!(!snapshot.targets[1].available);
        assert_eq!(snapshot.targets[1].consecutive_failures, 1);
        // Unchanged configuration: the very same group.
        let third = upstreams.group(&upstream(&["127.0.0.1:1", "127.0.0.1:2"], 2));
        assert!(Arc::ptr_eq(&second, &third));
        // A different target list starts its new targets healthy.
        let fourth = upstreams.group(&upstream(&["127.0.0.1:3"], 2));
        let snapshot = fourth.snapshot(Instant::now());
        assert_eq!(snapshot.targets.len(), 1);
        assert!(snapshot.targets[0].available);
    }

    #[tokio::test]
    async fn picks_rotate_and_skip_failed_targets() {
        let upstreams = Upstreams::new();
        let group = upstreams.group(&upstream(&["127.0.0.1:1", "127.0.0.1:2"], 1));
        let now = Instant::now();
        assert_eq!(group.pick(now), Some(0));
        assert_eq!(group.pick(now), Some(1));
        group.record_failure(0, now);
        assert_eq!(group.pick(now), Some(1));
        assert_eq!(group.pick(now), Some(1));
        group.record_success(0);
        let picks: Vec<_> = (0..2).map(|_| group.pick(now).unwrap()).collect();
        assert!(picks.contains(&0) && picks.contains(&1), "{picks:?}");
    }
}
