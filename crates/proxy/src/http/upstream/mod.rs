//! Upstream groups and the registry that keeps each one (its health, rotation and keep-alive
//! connections) across configuration reloads. [`group`] is one group: it picks a target, sends
//! to it and records the outcome; [`health`] is the pure bookkeeping of a target's health and
//! the round robin; [`connections`] are one target's keep-alive HTTP/1.1 connections;
//! [`client`] is the errors a send can end in and the request's form on the way out.
//! This module owns the registry and the health figures the admin side shows.

mod client;
mod connections;
mod group;
mod health;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

use crate::config::{Config, UpstreamConfig};

pub use client::{ConnectError, UpstreamError};
pub use connections::UpstreamBody;
pub(crate) use group::UpstreamGroup;

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
    use std::time::Duration;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

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
