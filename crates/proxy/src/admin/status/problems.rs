//! What the status report says is wrong, row by row, in the words the page, `/status.json` and
//! the CLI tables show: an agent without a live connection or with events that got no verdict,
//! an agent id at odds with the configuration (worded by the pool, which found it),
//! a reverse listener rejecting registrations or blocking peers, a route that answers 503, a
//! target marked down; and the summary list of them all. It only words judgements on rows the
//! report already gathered ([`super`]); it reads nothing live.

use super::{ChainLink, StatusReport};
use crate::config::{Config, FailureMode};
use crate::reverse::RegistrationStatsSnapshot;
use crate::telemetry::AgentMinute;

impl StatusReport {
    /// Every row marked as wrong, as `what: why` lines (for the page's summary and the CLI).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for agent in &self.agents {
            if let Some(p) = &agent.problem {
                problems.push(format!("agent {}: {p}", agent.name));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        let registered = self.agents.iter().flat_map(|a| &a.agent_ids);
        for id in registered.chain(&self.unassigned) {
            if ids.insert(id.agent_id.as_str()) {
                problems.extend(id.problems.iter().cloned());
            }
        }
        if let Some(p) = self.listener.as_ref().and_then(|l| l.problem.as_ref()) {
            problems.push(format!("reverse listener: {p}"));
        }
        for route in &self.routes {
            if let Some(p) = &route.problem {
                problems.push(format!("route {}: {p}", route.name));
            }
        }
        for upstream in &self.upstreams {
            for target in &upstream.targets {
                if let Some(p) = &target.problem {
                    problems.push(format!(
                        "upstream {} {}: {p}",
                        upstream.name, target.address
                    ));
                }
            }
        }
        problems
    }
}

/// `1 registration`, `2 registrations`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// No live connection (naming the routes that then answer 503), or events without a verdict.
pub(super) fn agent_problem(
    config: &Config,
    name: &str,
    live: usize,
    last_minute: &AgentMinute,
) -> Option<String> {
    if live == 0 {
        let fails_closed = config.agent(name).map(|a| a.failure_mode) == Some(FailureMode::Closed);
        let closed_routes: Vec<&str> = config
            .routes
            .iter()
            .filter(|r| fails_closed && r.agents.iter().any(|a| a == name))
            .map(|r| r.name.as_str())
            .collect();
        return Some(if closed_routes.is_empty() {
            "no live connection".to_string()
        } else {
            format!(
                "no live connection; fail-closed on route {} (answers 503)",
                closed_routes.join(", ")
            )
        });
    }
    let failed = last_minute.timeouts + last_minute.errors;
    (failed > 0).then(|| {
        format!(
            "{} without a verdict in the last minute",
            plural(failed, "event")
        )
    })
}

/// Rejected registrations in the last minute (by code) and peers blocked now.
pub(super) fn listener_problem(stats: &RegistrationStatsSnapshot) -> Option<String> {
    let rejected: u64 = stats.rejected_last_minute.values().sum();
    let problem = (rejected > 0).then(|| {
        let codes: Vec<String> = stats
            .rejected_last_minute
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        format!(
            "{} rejected in the last minute ({})",
            plural(rejected, "registration"),
            codes.join(", ")
        )
    });
    let blocked = stats.throttle.blocked_peers;
    if blocked == 0 {
        problem
    } else {
        let addresses = if blocked == 1 { "address" } else { "addresses" };
        let blocked = format!("{blocked} peer {addresses} blocked for failed registrations");
        Some(match problem {
            Some(rejections) => format!("{rejections}; {blocked}"),
            None => blocked,
        })
    }
}

/// A route answers 503 while a fail-closed agent of its chain has no live connection.
pub(super) fn route_problem(chain: &[ChainLink]) -> Option<String> {
    let blocking: Vec<&str> = chain
        .iter()
        .filter(|link| link.failure_mode == "closed" && link.live_connections == 0)
        .map(|link| link.agent.as_str())
        .collect();
    (!blocking.is_empty()).then(|| {
        format!(
            "answers 503: fail-closed agent {} has no live connection",
            blocking.join(", ")
        )
    })
}

/// A target down (and for how long), or failing without being down yet.
pub(super) fn target_problem(
    available: bool,
    failures: u32,
    down_for_ms: Option<u64>,
) -> Option<String> {
    if !available {
        let secs = down_for_ms.unwrap_or(0).div_ceil(1000);
        return Some(format!(
            "down after {}; retried in {secs} s",
            plural(failures.into(), "failure")
        ));
    }
    (failures > 0).then(|| format!("{} in a row", plural(failures.into(), "failure")))
}
