//! The operator's view as data: one [`StatusReport`] gathered from the pool, the registration
//! counters, the metrics' last minute, the configuration and the upstreams' passive health,
//! with what is wrong already decided per row. `/status.json`, the status page and the
//! `sentinel agents`/`sentinel status` tables are all made from it; it reads and changes nothing
//! else. It never holds a token or the configuration pushed to agents (which may hold secrets).
//! This module gathers the rows; how each row's problem is worded is `problems`.

mod problems;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::server::AdminContext;
use crate::config::{Config, FailureMode, RouteConfig};
use crate::pool::AgentSnapshot;
use crate::reverse::RegistrationStatsSnapshot;
use crate::telemetry::AgentMinute;

/// Longest metadata value shown (agents choose them).
const MAX_METADATA_CHARS: usize = 64;

/// Everything the status page shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// The proxy's version.
    pub version: String,
    /// Configured logical agents with their registered ids and connections.
    pub agents: Vec<LogicalAgentStatus>,
    /// Registered ids that serve no configured logical agent.
    pub unassigned: Vec<AgentIdStatus>,
    /// The reverse listener, if configured.
    pub listener: Option<ListenerStatus>,
    /// Routes in match order.
    pub routes: Vec<RouteStatus>,
    /// Upstream groups.
    pub upstreams: Vec<UpstreamStatus>,
}

/// One configured logical agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogicalAgentStatus {
    /// Its name.
    pub name: String,
    /// The `agent-ids` patterns that serve it.
    pub patterns: Vec<String>,
    /// `closed` or `open`.
    pub failure_mode: String,
    /// Per-event timeout.
    pub timeout_ms: u64,
    /// Registered ids serving it, with their connections.
    pub agent_ids: Vec<AgentIdStatus>,
    /// Its last minute.
    pub last_minute: AgentMinute,
    /// What is wrong, if anything.
    pub problem: Option<String>,
}

/// One registered agent id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentIdStatus {
    /// The registered id.
    pub agent_id: String,
    /// `version` from its metadata.
    pub version: Option<String>,
    /// `hostname` from its metadata.
    pub hostname: Option<String>,
    /// Its live connections.
    pub connections: Vec<ConnectionStatus>,
    /// Where it and the configuration disagree (unmatched id, declared capability not sent,
    /// `continue` on the last event), each saying what to change.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// One live agent connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionStatus {
    /// `<agent_id>-conn-<n>`.
    pub assigned_id: String,
    /// `uds`, `tcp` or `tls`.
    pub transport: String,
    /// The peer's address.
    pub peer: String,
    /// Seconds since registration.
    pub age_secs: u64,
    /// Requests in flight.
    pub in_flight: usize,
    /// Its in-flight limit.
    pub max_in_flight: usize,
    /// Whether it is draining.
    pub draining: bool,
}

/// The reverse listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenerStatus {
    /// The Unix socket.
    pub socket_path: Option<PathBuf>,
    /// The TCP address.
    pub tcp_address: Option<SocketAddr>,
    /// Whether the TCP socket speaks TLS.
    pub tls: bool,
    /// Registrations accepted over the last minute.
    pub accepted_last_minute: u64,
    /// Registrations rejected over the last minute, by error code.
    pub rejected_last_minute: BTreeMap<String, u64>,
    /// Registrations accepted since start.
    pub accepted_total: u64,
    /// Registrations rejected since start, by error code.
    pub rejected_total: BTreeMap<String, u64>,
    /// Handshakes in progress.
    pub pending_handshakes: u64,
    /// Failed TLS handshakes since start.
    pub tls_handshakes_failed: u64,
    /// Peer addresses refused now for too many failed registrations.
    pub blocked_peers: u64,
    /// What is wrong, if anything.
    pub problem: Option<String>,
}

/// One route.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteStatus {
    /// Its name.
    pub name: String,
    /// Its match conditions, as written (`path-prefix /api`, `host *.example.com`).
    pub matches: String,
    /// Its upstream group.
    pub upstream: String,
    /// Its agents, in order.
    pub chain: Vec<ChainLink>,
    /// What is wrong, if anything.
    pub problem: Option<String>,
}

/// One agent in a route's chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainLink {
    /// The logical agent.
    pub agent: String,
    /// `closed` or `open`.
    pub failure_mode: String,
    /// Its live connections now.
    pub live_connections: usize,
}

/// One upstream group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamStatus {
    /// Its name.
    pub name: String,
    /// Its targets.
    pub targets: Vec<TargetStatus>,
}

/// One upstream target and its passive health.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetStatus {
    /// `host:port`.
    pub address: String,
    /// Whether requests go to it now.
    pub available: bool,
    /// Connect errors and timeouts since its last success.
    pub consecutive_failures: u32,
    /// How much longer it is skipped.
    pub down_for_ms: Option<u64>,
    /// What is wrong, if anything.
    pub problem: Option<String>,
}

/// Where the reverse listener listens (fixed for the life of the process).
#[derive(Debug, Clone, Default)]
pub struct ListenerAddresses {
    /// The Unix socket.
    pub socket_path: Option<PathBuf>,
    /// The TCP address.
    pub tcp_address: Option<SocketAddr>,
    /// Whether TCP speaks TLS.
    pub tls: bool,
}

impl StatusReport {
    /// The report as things are now.
    pub fn gather(context: &AdminContext) -> StatusReport {
        let config = context.state.config();
        let snapshot = context.state.pool().snapshot();
        let mismatches = context.state.pool().mismatch_problems();
        let agent_id_status = |agent: &AgentSnapshot| {
            let problems = mismatches.get(&agent.agent_id).cloned();
            agent_id_status(agent, problems.unwrap_or_default())
        };
        let live = |name: &str| live_connections(&snapshot, name);
        let agents = config
            .agents
            .iter()
            .map(|agent| {
                let last_minute = context.state.metrics().recent().last_minute(&agent.name);
                let agent_ids: Vec<AgentIdStatus> = snapshot
                    .iter()
                    .filter(|s| s.logical_agents.contains(&agent.name))
                    .map(&agent_id_status)
                    .collect();
                let problem =
                    problems::agent_problem(&config, &agent.name, live(&agent.name), &last_minute);
                LogicalAgentStatus {
                    name: agent.name.clone(),
                    patterns: agent.agent_ids.iter().map(|p| p.to_string()).collect(),
                    failure_mode: failure_mode(agent.failure_mode).into(),
                    timeout_ms: agent.timeout.as_millis().try_into().unwrap_or(u64::MAX),
                    agent_ids,
                    last_minute,
                    problem,
                }
            })
            .collect();
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            agents,
            unassigned: snapshot
                .iter()
                .filter(|s| s.logical_agents.is_empty())
                .map(&agent_id_status)
                .collect(),
            listener: context
                .registrations
                .as_ref()
                .map(|stats| listener_status(&context.listener, stats.snapshot())),
            routes: config
                .routes
                .iter()
                .map(|route| route_status(&config, route, &live))
                .collect(),
            upstreams: upstream_statuses(context),
        }
    }
}

fn failure_mode(mode: FailureMode) -> &'static str {
    match mode {
        FailureMode::Closed => "closed",
        FailureMode::Open => "open",
    }
}

fn live_connections(snapshot: &[AgentSnapshot], logical: &str) -> usize {
    snapshot
        .iter()
        .filter(|s| s.logical_agents.iter().any(|l| l == logical))
        .map(|s| s.connections.len())
        .sum()
}

fn agent_id_status(agent: &AgentSnapshot, problems: Vec<String>) -> AgentIdStatus {
    AgentIdStatus {
        problems,
        agent_id: agent.agent_id.clone(),
        version: metadata_text(&agent.metadata, "version"),
        hostname: metadata_text(&agent.metadata, "hostname"),
        connections: agent
            .connections
            .iter()
            .map(|c| ConnectionStatus {
                assigned_id: c.assigned_id.clone(),
                transport: c.transport.as_str().to_string(),
                peer: c.peer.clone(),
                age_secs: c.connected_secs,
                in_flight: c.in_flight,
                max_in_flight: c.max_in_flight,
                draining: c.draining,
            })
            .collect(),
    }
}

/// A metadata value as short text: agents choose it, so it is cut to a bounded length.
fn metadata_text(metadata: &Map<String, Value>, key: &str) -> Option<String> {
    let text = match metadata.get(key)? {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        other => other.to_string(),
    };
    Some(text.chars().take(MAX_METADATA_CHARS).collect())
}

fn listener_status(
    addresses: &ListenerAddresses,
    stats: RegistrationStatsSnapshot,
) -> ListenerStatus {
    let problem = problems::listener_problem(&stats);
    ListenerStatus {
        socket_path: addresses.socket_path.clone(),
        tcp_address: addresses.tcp_address,
        tls: addresses.tls,
        accepted_last_minute: stats.accepted_last_minute,
        rejected_last_minute: stats.rejected_last_minute,
        accepted_total: stats.accepted,
        rejected_total: stats.rejected,
        pending_handshakes: stats.pending_handshakes,
        tls_handshakes_failed: stats.tls_handshakes_failed,
        blocked_peers: stats.throttle.blocked_peers,
        problem,
    }
}

fn route_status(config: &Config, route: &RouteConfig, live: &dyn Fn(&str) -> usize) -> RouteStatus {
    let chain: Vec<ChainLink> = route
        .agents
        .iter()
        .map(|name| ChainLink {
            agent: name.clone(),
            failure_mode: config
                .agent(name)
                .map_or("closed", |a| failure_mode(a.failure_mode))
                .into(),
            live_connections: live(name),
        })
        .collect();
    let problem = problems::route_problem(&chain);
    let mut matches = Vec::new();
    if let Some(prefix) = &route.matches.path_prefix {
        matches.push(format!("path-prefix {prefix}"));
    }
    if let Some(host) = &route.matches.host {
        matches.push(format!("host {host}"));
    }
    RouteStatus {
        name: route.name.clone(),
        matches: if matches.is_empty() {
            "everything".into()
        } else {
            matches.join(" and ")
        },
        upstream: route.upstream.clone(),
        chain,
        problem,
    }
}

fn upstream_statuses(context: &AdminContext) -> Vec<UpstreamStatus> {
    context
        .state
        .upstream_health()
        .into_iter()
        .map(|group| UpstreamStatus {
            name: group.upstream,
            targets: group
                .targets
                .into_iter()
                .map(|t| TargetStatus {
                    problem: problems::target_problem(
                        t.available,
                        t.consecutive_failures,
                        t.down_for_ms,
                    ),
                    address: t.address,
                    available: t.available,
                    consecutive_failures: t.consecutive_failures,
                    down_for_ms: t.down_for_ms,
                })
                .collect(),
        })
        .collect()
}
