//! What each logical agent did over the last minute: decisions by action, events without a
//! verdict by reason, and decision latency (for p50/p99). Fed by [`super::Metrics`] in the
//! same calls that bump the cumulative Prometheus series, so the two never disagree about what
//! was recorded; this module owns only the one-minute view.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::window::{Bucket, Counts, LatencyHistogram, SecondRing, WindowClock};

/// Most logical agents tracked; names come from the configuration (never from a peer), so this
/// only guards against a pathological configuration.
const MAX_TRACKED_AGENTS: usize = 1024;

/// One second of one agent's activity.
#[derive(Default)]
struct AgentSecond {
    decisions: Counts,
    failures: Counts,
    latency: LatencyHistogram,
}

impl Bucket for AgentSecond {
    fn merge(&mut self, other: &AgentSecond) {
        self.decisions.merge(&other.decisions);
        self.failures.merge(&other.failures);
        self.latency.merge(&other.latency);
    }
}

type Ring = Arc<Mutex<SecondRing<AgentSecond>>>;

/// Per logical agent, one ring of per-second buckets.
#[derive(Default)]
pub struct RecentDecisions {
    agents: RwLock<HashMap<String, Ring>>,
}

/// One logical agent's last minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentMinute {
    /// Decisions by action (`allow`, `block`, `redirect`, `continue`).
    pub decisions: BTreeMap<String, u64>,
    /// Events without a verdict, by reason (`timeout`, `agent_error`, `no_connection`, …).
    pub failures: BTreeMap<String, u64>,
    /// Events that ran out of time (`failures["timeout"]`).
    pub timeouts: u64,
    /// Every other event without a verdict.
    pub errors: u64,
    /// Median time to a reply, in milliseconds; `None` without replies.
    pub p50_ms: Option<f64>,
    /// 99th percentile time to a reply, in milliseconds.
    pub p99_ms: Option<f64>,
}

impl RecentDecisions {
    fn ring(&self, agent: &str) -> Option<Ring> {
        if let Some(ring) = self
            .agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(agent)
        {
            return Some(ring.clone());
        }
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        if agents.len() >= MAX_TRACKED_AGENTS && !agents.contains_key(agent) {
            return None;
        }
        Some(agents.entry(agent.to_string()).or_default().clone())
    }

    fn update(&self, agent: &str, change: impl FnOnce(&mut AgentSecond)) {
        if let Some(ring) = self.ring(agent) {
            let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
            change(ring.at(WindowClock::now()));
        }
    }

    /// A decision and its latency, in one update of the agent's current second.
    pub(super) fn record_reply(&self, agent: &str, action: &str, seconds: f64) {
        self.update(agent, |second| {
            second.decisions.add(action);
            second.latency.observe(seconds);
        });
    }

    pub(super) fn record_failure(&self, agent: &str, reason: &str) {
        self.update(agent, |second| second.failures.add(reason));
    }

    pub(super) fn observe_latency(&self, agent: &str, seconds: f64) {
        self.update(agent, |second| second.latency.observe(seconds));
    }

    /// `agent`'s last minute (all zero if it did nothing).
    pub fn last_minute(&self, agent: &str) -> AgentMinute {
        let ring = self
            .agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(agent)
            .cloned();
        let Some(ring) = ring else {
            return AgentMinute::default();
        };
        let total = ring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .total(WindowClock::now());
        let timeouts = total.failures.0.get("timeout").copied().unwrap_or(0);
        let milliseconds = |q| total.latency.quantile(q).map(|s| s * 1000.0);
        AgentMinute {
            timeouts,
            errors: total.failures.sum() - timeouts,
            p50_ms: milliseconds(0.5),
            p99_ms: milliseconds(0.99),
            decisions: total.decisions.0,
            failures: total.failures.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_minute_splits_timeouts_from_other_failures() {
        let recent = RecentDecisions::default();
        recent.record_reply("waf", "allow", 0.001);
        recent.record_reply("waf", "block", 0.002);
        recent.record_reply("waf", "allow", 0.003);
        recent.record_failure("waf", "timeout");
        recent.record_failure("waf", "agent_error");
        recent.record_failure("waf", "no_connection");
        let minute = recent.last_minute("waf");
        assert_eq!(minute.decisions.get("allow"), Some(&2));
        assert_eq!(minute.decisions.get("block"), Some(&1));
        assert_eq!((minute.timeouts, minute.errors), (1, 2));
        let p50 = minute.p50_ms.unwrap();
        assert!((2.0..2.0 * 1.19).contains(&p50), "p50 {p50}");
        assert_eq!(recent.last_minute("auth"), AgentMinute::default());
    }
}
