//! How a [`StatusReport`] is laid out as tables: which tables, which columns, what each cell
//! says, which rows are marked. Decided once here and rendered three ways: as HTML by the
//! status page (server side), as the same tables by the page's script from `/status/view.json`,
//! and as text by `sentinel agents` / `sentinel status` ([`render_text`]). It formats; it
//! gathers nothing. What each table holds is `tables`; this module owns the view around them.

mod tables;

use serde::{Deserialize, Serialize};

use super::status::{AgentIdStatus, StatusReport};
use tables::{agent_tables, listener_tables, routes_table, upstreams_table};

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
            "sentinel {}: {}, {}, {}",
            report.version,
            counted(report.agents.len(), "logical agent"),
            counted(connections, "agent connection"),
            match problems.len() {
                0 => "no problems".to_string(),
                n => counted(n, "problem"),
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

/// `1 problem`, `2 problems`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
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
