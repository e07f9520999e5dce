//! Each logical agent's Prometheus series, resolved once and then kept as handles: a decision
//! and its latency become an atomic increment and a histogram observation, instead of building
//! owned label sets and looking them up in the families on every event. The families stay the
//! single source of what `/metrics` shows ([`super::Metrics`] owns and renders them); a series
//! appears there only once something was recorded in it, as before.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;

/// Logical agents whose handles are kept; names come from the configuration, so this only
/// guards against a pathological one (beyond it, events go through the families directly).
const MAX_AGENTS: usize = 1024;

/// The actions a decision can carry, in the order of [`AgentSeries::decisions`].
const ACTIONS: [&str; 4] = ["allow", "block", "redirect", "continue"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DecisionLabels {
    pub(super) agent: String,
    pub(super) action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AgentLabels {
    pub(super) agent: String,
}

/// One logical agent's handles; each decision counter is created in its family on first use.
pub(super) struct AgentSeries {
    agent: String,
    decisions: [OnceLock<Counter>; 4],
    latency: Histogram,
}

impl AgentSeries {
    /// Counts one decision with `action` in `decisions`.
    pub(super) fn count_decision(&self, decisions: &Family<DecisionLabels, Counter>, action: &str) {
        match ACTIONS.iter().position(|a| *a == action) {
            Some(i) => self.decisions[i]
                .get_or_init(|| decisions.get_or_create(&self.labels(action)).clone())
                .inc(),
            None => decisions.get_or_create(&self.labels(action)).inc(),
        };
    }

    pub(super) fn observe_latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    fn labels(&self, action: &str) -> DecisionLabels {
        DecisionLabels {
            agent: self.agent.clone(),
            action: action.to_string(),
        }
    }
}

/// The handles of every logical agent seen so far.
#[derive(Default)]
pub(super) struct AgentSeriesCache {
    agents: RwLock<HashMap<String, Arc<AgentSeries>>>,
}

impl AgentSeriesCache {
    /// `agent`'s handles, resolved in `latency` on first use; `None` past [`MAX_AGENTS`].
    pub(super) fn get<C>(
        &self,
        agent: &str,
        latency: &Family<AgentLabels, Histogram, C>,
    ) -> Option<Arc<AgentSeries>>
    where
        C: MetricConstructor<Histogram>,
    {
        if let Some(series) = self.read().get(agent) {
            return Some(series.clone());
        }
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        if agents.len() >= MAX_AGENTS && !agents.contains_key(agent) {
            return None;
        }
        let series = agents.entry(agent.to_string()).or_insert_with(|| {
            let labels = AgentLabels {
                agent: agent.to_string(),
            };
            Arc::new(AgentSeries {
                agent: agent.to_string(),
                decisions: Default::default(),
                latency: latency.get_or_create(&labels).clone(),
            })
        });
        Some(series.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<AgentSeries>>> {
        self.agents.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_count_in_the_families_that_are_rendered() {
        let decisions = Family::<DecisionLabels, Counter>::default();
        let latency = Family::<AgentLabels, Histogram, _>::new_with_constructor(|| {
            Histogram::new([0.001, 0.01])
        });
        let cache = AgentSeriesCache::default();
        for action in ["allow", "allow", "block", "something-new"] {
            let series = cache.get("waf", &latency).unwrap();
            series.count_decision(&decisions, action);
            series.observe_latency(0.002);
        }
        let count = |action: &str| {
            decisions
                .get_or_create(&DecisionLabels {
                    agent: "waf".into(),
                    action: action.into(),
                })
                .get()
        };
        assert_eq!((count("allow"), count("block")), (2, 1));
        assert_eq!(count("something-new"), 1);
        // Actions never seen were not created by the cache.
        let mut text = String::new();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("d", "d", decisions.clone());
        registry.register("l", "l", latency.clone());
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("action=\"redirect\""), "{text}");
        assert!(text.contains("l_count{agent=\"waf\"} 4"), "{text}");
    }
}
