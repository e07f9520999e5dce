//! The ratio table: one row per measurement, the figure against its same-run baseline, and
//! whether the target for it is met.

use std::fmt::Write as _;

/// Which way a ratio has to go to meet its target.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// measured / baseline must be at most this (latencies).
    AtMost(f64),
    /// measured / baseline must be at least this (throughputs).
    AtLeast(f64),
    /// An absolute limit on the measured value (baseline unused).
    Below(f64),
    /// Informational only.
    None,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Benchmark group, e.g. `1 rtt`.
    pub group: String,
    /// What was measured, e.g. `uds json`.
    pub case: String,
    /// The figure (median of the runs).
    pub measured: f64,
    /// The same-run baseline (median of the runs), if any.
    pub baseline: Option<f64>,
    /// Unit of both figures.
    pub unit: &'static str,
    /// The target for this row.
    pub target: Target,
    /// Extra detail (spread, p99, CPU), free text.
    pub note: String,
}

impl Row {
    /// measured / baseline.
    pub fn ratio(&self) -> Option<f64> {
        self.baseline.map(|b| self.measured / b)
    }

    /// Whether the target holds (`None` if there is no target).
    pub fn met(&self) -> Option<bool> {
        match self.target {
            Target::AtMost(t) => self.ratio().map(|r| r <= t),
            Target::AtLeast(t) => self.ratio().map(|r| r >= t),
            Target::Below(limit) => Some(self.measured < limit),
            Target::None => None,
        }
    }
}

fn target_text(target: Target) -> String {
    match target {
        Target::AtMost(t) => format!("<= {t}x"),
        Target::AtLeast(t) => format!(">= {t}x"),
        Target::Below(t) => format!("< {t}"),
        Target::None => "-".into(),
    }
}

fn number(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The table as Markdown (readable in a terminal, pasteable into docs/benchmarks.md).
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| group | case | measured | baseline | unit | ratio | target | met | notes |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---|---:|---|---|---|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.group,
            row.case,
            number(row.measured),
            row.baseline.map_or("-".into(), number),
            row.unit,
            row.ratio().map_or("-".into(), |r| format!("{r:.2}x")),
            target_text(row.target),
            match row.met() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            },
            row.note
        );
    }
    out
}
