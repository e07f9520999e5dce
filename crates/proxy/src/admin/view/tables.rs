//! Which tables the status page has and what each holds: the columns of the agent,
//! connection, reverse-listener, route and upstream tables, the text of each cell (counts,
//! latencies, ages) and which rows are marked. It only lays out rows the [`StatusReport`]
//! already has; the view around the tables and its text rendering are [`super`].

use std::collections::BTreeMap;

use super::{all_ids, Row, Table};
use crate::admin::status::{ListenerStatus, StatusReport};

const OK: &str = "ok";

fn strings<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn state(problem: &Option<String>) -> String {
    problem.clone().unwrap_or_else(|| OK.into())
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "0".into();
    }
    map.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn milliseconds(ms: Option<f64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 10.0 => format!("{ms:.2} ms"),
        Some(ms) => format!("{ms:.0} ms"),
    }
}

fn age(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `ok`, `draining`, or what is wrong with the agent id (which every connection row repeats).
fn connection_state(draining: bool, problems: &[String]) -> String {
    let mut states: Vec<&str> = problems.iter().map(String::as_str).collect();
    if draining {
        states.insert(0, "draining");
    }
    if states.is_empty() {
        OK.into()
    } else {
        states.join("; ")
    }
}

pub(super) fn agent_tables(report: &StatusReport) -> Vec<Table> {
    let agents = Table {
        id: "agents".into(),
        title: "Logical agents (last minute)".into(),
        columns: strings([
            "agent",
            "served by",
            "connections",
            "decisions",
            "errors",
            "timeouts",
            "p50",
            "p99",
            "failure mode",
            "state",
        ]),
        rows: report
            .agents
            .iter()
            .map(|a| Row {
                cells: vec![
                    a.name.clone(),
                    if a.agent_ids.is_empty() {
                        format!("none (expects {})", a.patterns.join(" "))
                    } else {
                        a.agent_ids
                            .iter()
                            .map(|id| id.agent_id.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    a.agent_ids
                        .iter()
                        .map(|id| id.connections.len())
                        .sum::<usize>()
                        .to_string(),
                    counts(&a.last_minute.decisions),
                    a.last_minute.errors.to_string(),
                    a.last_minute.timeouts.to_string(),
                    milliseconds(a.last_minute.p50_ms),
                    milliseconds(a.last_minute.p99_ms),
                    a.failure_mode.clone(),
                    state(&a.problem),
                ],
                problem: a.problem.is_some(),
            })
            .collect(),
        empty: "no logical agents configured".into(),
    };
    let mut rows = Vec::new();
    for id in all_ids(report) {
        let serves: Vec<&str> = report
            .agents
            .iter()
            .filter(|a| a.agent_ids.iter().any(|i| i.agent_id == id.agent_id))
            .map(|a| a.name.as_str())
            .collect();
        for c in &id.connections {
            rows.push(Row {
                cells: vec![
                    id.agent_id.clone(),
                    c.assigned_id.clone(),
                    if serves.is_empty() {
                        "(none)".into()
                    } else {
                        serves.join(", ")
                    },
                    c.transport.clone(),
                    c.peer.clone(),
                    id.version.clone().unwrap_or_else(|| "-".into()),
                    id.hostname.clone().unwrap_or_else(|| "-".into()),
                    age(c.age_secs),
                    format!("{}/{}", c.in_flight, c.max_in_flight),
                    connection_state(c.draining, &id.problems),
                ],
                problem: c.draining || !id.problems.is_empty(),
            });
        }
    }
    let connections = Table {
        id: "connections".into(),
        title: "Agent connections".into(),
        columns: strings([
            "agent_id",
            "assigned_id",
            "serves",
            "transport",
            "peer",
            "version",
            "hostname",
            "age",
            "in flight",
            "state",
        ]),
        rows,
        empty: "no agent is connected".into(),
    };
    vec![agents, connections]
}

pub(super) fn listener_tables(listener: &ListenerStatus) -> Vec<Table> {
    let rejected_minute: u64 = listener.rejected_last_minute.values().sum();
    let summary = Table {
        id: "listener".into(),
        title: "Reverse listener".into(),
        columns: strings([
            "unix socket",
            "tcp address",
            "tls",
            "accepted (1 min)",
            "rejected (1 min)",
            "handshakes pending",
            "tls handshakes failed",
            "blocked addresses",
            "state",
        ]),
        rows: vec![Row {
            cells: vec![
                listener
                    .socket_path
                    .as_ref()
                    .map_or("-".into(), |p| p.display().to_string()),
                listener.tcp_address.map_or("-".into(), |a| a.to_string()),
                if listener.tls { "on" } else { "off" }.into(),
                listener.accepted_last_minute.to_string(),
                rejected_minute.to_string(),
                listener.pending_handshakes.to_string(),
                listener.tls_handshakes_failed.to_string(),
                listener.blocked_peers.to_string(),
                state(&listener.problem),
            ],
            problem: listener.problem.is_some(),
        }],
        empty: String::new(),
    };
    let mut codes: Vec<&String> = listener.rejected_total.keys().collect();
    for code in listener.rejected_last_minute.keys() {
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes.sort();
    let rejections = Table {
        id: "rejections".into(),
        title: "Rejected registrations by error code".into(),
        // The last minute last: a marked row highlights its last cell.
        columns: strings(["code", "since start", "last minute"]),
        rows: codes
            .into_iter()
            .map(|code| {
                let minute = listener
                    .rejected_last_minute
                    .get(code)
                    .copied()
                    .unwrap_or(0);
                Row {
                    cells: vec![
                        code.clone(),
                        listener
                            .rejected_total
                            .get(code)
                            .copied()
                            .unwrap_or(0)
                            .to_string(),
                        minute.to_string(),
                    ],
                    problem: minute > 0,
                }
            })
            .collect(),
        empty: "no registration was rejected".into(),
    };
    vec![summary, rejections]
}

pub(super) fn routes_table(report: &StatusReport) -> Table {
    Table {
        id: "routes".into(),
        title: "Routes".into(),
        columns: strings(["route", "matches", "upstream", "agent chain", "state"]),
        rows: report
            .routes
            .iter()
            .map(|r| Row {
                cells: vec![
                    r.name.clone(),
                    r.matches.clone(),
                    r.upstream.clone(),
                    if r.chain.is_empty() {
                        "(no agents)".into()
                    } else {
                        r.chain
                            .iter()
                            .map(|l| {
                                format!(
                                    "{} (fail-{}, {} conn)",
                                    l.agent, l.failure_mode, l.live_connections
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(" → ")
                    },
                    state(&r.problem),
                ],
                problem: r.problem.is_some(),
            })
            .collect(),
        empty: "no routes".into(),
    }
}

pub(super) fn upstreams_table(report: &StatusReport) -> Table {
    Table {
        id: "upstreams".into(),
        title: "Upstream targets (passive health)".into(),
        columns: strings([
            "upstream",
            "target",
            "available",
            "consecutive failures",
            "state",
        ]),
        rows: report
            .upstreams
            .iter()
            .flat_map(|u| {
                u.targets.iter().map(|t| Row {
                    cells: vec![
                        u.name.clone(),
                        t.address.clone(),
                        if t.available { "yes" } else { "no" }.into(),
                        t.consecutive_failures.to_string(),
                        state(&t.problem),
                    ],
                    problem: t.problem.is_some(),
                })
            })
            .collect(),
        empty: "no upstreams".into(),
    }
}
