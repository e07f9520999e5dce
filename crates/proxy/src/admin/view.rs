//! How a [`StatusReport`] is laid out as tables: which tables, which columns, what each cell
//! says, which rows are marked. Decided once here and rendered three ways: as HTML by the
//! status page (server side), as the same tables by the page's script from `/status/view.json`,
//! and as text by `sentinel agents` / `sentinel status`. It formats; it gathers nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::status::{AgentIdStatus, ListenerStatus, StatusReport};

/// A table of the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Stable id (the page's `<table id>`, for scripts and tests).
    pub id: String,
    /// Heading.
    pub title: String,
    /// Column headings.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<Row>,
    /// Shown instead of rows when there are none.
    pub empty: String,
}

/// One row: its cells, and whether something is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// One text per column.
    pub cells: Vec<String>,
    /// Marked as wrong.
    pub problem: bool,
}

/// The whole page: a headline and its tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// `sentinel 0.1.0: 2 agents, 3 connections, 1 problem`.
    pub headline: String,
    /// Every marked row, as one line each.
    pub problems: Vec<String>,
    /// The tables, in page order.
    pub tables: Vec<Table>,
}

const OK: &str = "ok";

impl View {
    /// Every table of the status page.
    pub fn of(report: &StatusReport) -> View {
        let mut tables = agent_tables(report);
        if let Some(listener) = &report.listener {
            tables.extend(listener_tables(listener));
        }
        tables.push(routes_table(report));
        tables.push(upstreams_table(report));
        let problems = report.problems();
        let connections: usize = all_ids(report).map(|id| id.connections.len()).sum();
        let headline = format!(
            "sentinel {}: {} logical agents, {} agent connections, {}",
            report.version,
            report.agents.len(),
            connections,
            match problems.len() {
                0 => "no problems".to_string(),
                1 => "1 problem".to_string(),
                n => format!("{n} problems"),
            }
        );
        View {
            headline,
            problems,
            tables,
        }
    }

    /// Only the agent tables (`sentinel agents`).
    pub fn agents_only(report: &StatusReport) -> View {
        let mut view = View::of(report);
        view.tables
            .retain(|t| t.id == "agents" || t.id == "connections");
        view
    }
}

fn all_ids(report: &StatusReport) -> impl Iterator<Item = &AgentIdStatus> {
    let mut seen = std::collections::HashSet::new();
    report
        .agents
        .iter()
        .flat_map(|a| a.agent_ids.iter())
        .chain(report.unassigned.iter())
        .filter(move |id| seen.insert(id.agent_id.clone()))
}

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

fn agent_tables(report: &StatusReport) -> Vec<Table> {
    let agents = Table {
        id: "agents".into(),
        title: "Logical agents (last minute)".into(),
        columns: strings([
            "agent",
            "agent_ids",
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
                    if c.draining { "draining" } else { OK }.into(),
                ],
                problem: c.draining,
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

fn listener_tables(listener: &ListenerStatus) -> Vec<Table> {
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

fn routes_table(report: &StatusReport) -> Table {
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

fn upstreams_table(report: &StatusReport) -> Table {
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

/// The view as plain-text tables for a terminal: columns padded to their widest cell, marked
/// rows prefixed with `!`.
pub fn render_text(view: &View) -> String {
    let mut out = format!("{}\n", view.headline);
    for problem in &view.problems {
        out.push_str(&format!("  ! {problem}\n"));
    }
    for table in &view.tables {
        out.push_str(&format!("\n{}\n", table.title));
        if table.rows.is_empty() {
            out.push_str(&format!("  ({})\n", table.empty));
            continue;
        }
        let mut widths: Vec<usize> = table.columns.iter().map(|c| c.chars().count()).collect();
        for row in &table.rows {
            for (width, cell) in widths.iter_mut().zip(&row.cells) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |marker: &str, cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            format!("{marker} {}\n", padded.join("  ").trim_end())
        };
        out.push_str(&line(" ", &table.columns));
        for row in &table.rows {
            out.push_str(&line(if row.problem { "!" } else { " " }, &row.cells));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::status::{TargetStatus, UpstreamStatus};
    use super::*;

    fn report_with_a_down_target() -> StatusReport {
        StatusReport {
            version: "0.0.0".into(),
            agents: Vec::new(),
            unassigned: Vec::new(),
            listener: None,
            routes: Vec::new(),
            upstreams: vec![UpstreamStatus {
                name: "backend".into(),
                targets: vec![
                    TargetStatus {
                        address: "10.0.0.1:80".into(),
                        available: true,
                        consecutive_failures: 0,
                        down_for_ms: None,
                        problem: None,
                    },
                    TargetStatus {
                        address: "10.0.0.2:80".into(),
                        available: false,
                        consecutive_failures: 3,
                        down_for_ms: Some(4_200),
                        problem: Some("down after 3 failures; retried in 5 s".into()),
                    },
                ],
            }],
        }
    }

    #[test]
    fn a_down_upstream_is_marked_in_the_page_and_the_terminal() {
        let report = report_with_a_down_target();
        let view = View::of(&report);
        assert!(view.headline.ends_with("1 problem"), "{}", view.headline);
        let upstreams = view.tables.iter().find(|t| t.id == "upstreams").unwrap();
        let marks: Vec<bool> = upstreams.rows.iter().map(|r| r.problem).collect();
        assert_eq!(marks, [false, true]);
        let text = render_text(&view);
        let marked: Vec<&str> = text.lines().filter(|l| l.starts_with('!')).collect();
        assert_eq!(marked.len(), 1, "{text}");
        assert!(marked[0].contains("10.0.0.2:80") && marked[0].contains("down after 3"));
        assert!(text.contains("  ! upstream backend 10.0.0.2:80: down after 3 failures"));
        // Empty tables say so instead of printing a bare header.
        assert!(text.contains("(no logical agents configured)"), "{text}");
        let agents = View::agents_only(&report);
        let ids: Vec<&str> = agents.tables.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["agents", "connections"]);
    }
}
