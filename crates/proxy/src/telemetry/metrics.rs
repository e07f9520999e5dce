//! Prometheus metrics of the proxy (prometheus-client): HTTP requests, agent decisions by
//! action and by rule (the latter kept, bounded, in `rules.rs`), agent latency, agent failures,
//! registrations by outcome, live agent connections.
//! Values that already live elsewhere (registration counters, pool connections) are read at
//! scrape time rather than duplicated. Each per-agent record also feeds the one-minute view of
//! [`RecentDecisions`] (the status page), in the same call.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::agent_series::{AgentLabels, AgentSeriesCache, DecisionLabels};
use super::recent::RecentDecisions;
use super::rules::{RuleDecisions, MAX_RULES_PER_AGENT, OTHER_RULES};
use crate::pool::AgentPool;
use crate::reverse::RegistrationStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    agent: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MismatchLabels {
    agent: String,
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

/// Every metric the proxy exports. Cheap to share behind an `Arc`.
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    agent_latency: Family<AgentLabels, Histogram>,
    agent_failures: Family<FailureLabels, Counter>,
    recent: RecentDecisions,
    rules: RuleDecisions,
    series: AgentSeriesCache,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Family::default(),
            decisions: Family::default(),
            agent_latency: Family::new_with_constructor(|| {
                // 50 µs … ~1.6 s
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.000_05, 2.0, 16,
                ))
            }),
            agent_failures: Family::default(),
            recent: RecentDecisions::default(),
            rules: RuleDecisions::default(),
            series: AgentSeriesCache::default(),
        }
    }
}

impl Metrics {
    /// One HTTP request answered with `status` on `route` (`-` when no route matched).
    pub fn record_request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// A decision of `agent` with `action` (`allow`, `block`, `redirect`, `continue`),
    /// `seconds` after its event was sent: its latency and its count, with one lookup.
    pub fn record_reply(&self, agent: &str, action: &str, seconds: f64) {
        self.recent.record_reply(agent, action, seconds);
        match self.series.get(agent, &self.agent_latency) {
            Some(series) => {
                series.observe_latency(seconds);
                series.count_decision(&self.decisions, action);
            }
            None => {
                self.latency_family_observe(agent, seconds);
                self.decisions
                    .get_or_create(&DecisionLabels {
                        agent: agent.to_string(),
                        action: action.to_string(),
                    })
                    .inc();
            }
        }
    }

    /// How many decisions `agent` has given with `action` so far.
    pub fn decisions(&self, agent: &str, action: &str) -> u64 {
        self.decisions
            .get_or_create(&DecisionLabels {
                agent: agent.to_string(),
                action: action.to_string(),
            })
            .get()
    }

    /// A decision of `agent` with `action`, counted under each rule id it names (bounded, see
    /// `rules.rs`), or under `(none)` when it names none. Called for every block and
    /// redirect, and for other actions only when they name a rule.
    pub fn record_rule_decision(&self, agent: &str, action: &str, rule_ids: &[String]) {
        self.rules.record(agent, action, rule_ids);
    }

    /// The time one event took to be answered by `agent` without a decision (an error).
    pub fn observe_agent_latency(&self, agent: &str, seconds: f64) {
        self.recent.observe_latency(agent, seconds);
        match self.series.get(agent, &self.agent_latency) {
            Some(series) => series.observe_latency(seconds),
            None => self.latency_family_observe(agent, seconds),
        }
    }

    fn latency_family_observe(&self, agent: &str, seconds: f64) {
        self.agent_latency
            .get_or_create(&AgentLabels {
                agent: agent.to_string(),
            })
            .observe(seconds);
    }

    /// An event of `agent` that got no verdict, with why (`timeout`, `no_connection`,
    /// `saturated`, `connection_lost`, `agent_error`, …).
    pub fn record_agent_failure(&self, agent: &str, reason: &str) {
        self.recent.record_failure(agent, reason);
        self.agent_failures
            .get_or_create(&FailureLabels {
                agent: agent.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Each logical agent's last minute (decisions, failures, latency percentiles).
    pub fn recent(&self) -> &RecentDecisions {
        &self.recent
    }

    /// Renders the Prometheus text format, adding the registration and pool figures as they
    /// are now.
    pub fn render(
        &self,
        pool: &AgentPool,
        registrations: Option<&Arc<RegistrationStats>>,
    ) -> String {
        let mut registry = Registry::with_prefix("sentinel");
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            self.requests.clone(),
        );
        registry.register(
            "agent_decisions",
            "Agent decisions, by logical agent and action",
            self.decisions.clone(),
        );
        registry.register(
            "agent_rule_decisions",
            format!("Agent decisions by the rule they name: every block and redirect, other actions when they name a rule; at most {MAX_RULES_PER_AGENT} rules per agent, the rest under rule=\"{OTHER_RULES}\""),
            self.rules.family(),
        );
        registry.register(
            "agent_decision_latency_seconds",
            "Time from sending an event to its decision",
            self.agent_latency.clone(),
        );
        registry.register(
            "agent_failures",
            "Events without a verdict, by logical agent and reason",
            self.agent_failures.clone(),
        );

        let accepted = Counter::<u64>::default();
        let rejected = Family::<CodeLabels, Counter>::default();
        let pending = Gauge::<i64>::default();
        let tls_failed = Counter::<u64>::default();
        let throttled = Counter::<u64>::default();
        let blocks = Counter::<u64>::default();
        let refused = Counter::<u64>::default();
        let blocked_peers = Gauge::<i64>::default();
        if let Some(stats) = registrations {
            let snapshot = stats.snapshot();
            accepted.inc_by(snapshot.accepted);
            for (code, n) in snapshot.rejected {
                rejected.get_or_create(&CodeLabels { code }).inc_by(n);
            }
            pending.set(snapshot.pending_handshakes as i64);
            tls_failed.inc_by(snapshot.tls_handshakes_failed);
            throttled.inc_by(snapshot.throttle.delayed_rejections);
            blocks.inc_by(snapshot.throttle.blocks);
            refused.inc_by(snapshot.throttle.refused_connections);
            blocked_peers.set(snapshot.throttle.blocked_peers as i64);
        }
        registry.register(
            "agent_registrations_accepted",
            "Agent registrations accepted",
            accepted,
        );
        registry.register(
            "agent_registrations_rejected",
            "Agent registrations rejected, by error code",
            rejected,
        );
        registry.register(
            "agent_handshakes_pending",
            "Agent handshakes in progress",
            pending,
        );
        registry.register(
            "agent_tls_handshakes_failed",
            "TLS handshakes on the reverse listener that failed (no or bad client certificate, not TLS, timeout)",
            tls_failed,
        );
        registry.register(
            "agent_registrations_delayed",
            "Failed registrations answered after a throttle delay",
            throttled,
        );
        registry.register(
            "agent_peer_blocks",
            "Times a peer address reached the failed-registration limit and was blocked",
            blocks,
        );
        registry.register(
            "agent_connections_refused_blocked",
            "Agent connections from blocked peer addresses, closed unread",
            refused,
        );
        registry.register(
            "agent_blocked_peers",
            "Peer addresses blocked now for failed registrations",
            blocked_peers,
        );

        let connections = Family::<AgentLabels, Gauge>::default();
        for agent in pool.snapshot() {
            connections
                .get_or_create(&AgentLabels {
                    agent: agent.agent_id,
                })
                .set(agent.connections.len() as i64);
        }
        registry.register(
            "agent_connections",
            "Live agent connections, by agent_id",
            connections,
        );

        let mismatches = Family::<MismatchLabels, Counter>::default();
        for (agent, cause, n) in pool.mismatch_counts() {
            let cause = cause.as_str().to_string();
            mismatches
                .get_or_create(&MismatchLabels { agent, cause })
                .inc_by(n);
        }
        registry.register(
            "agent_mismatches",
            "Mismatches between agents and the configuration, by logical agent (- for none) and cause",
            mismatches,
        );

        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
            text.clear();
        }
        text
    }
}
