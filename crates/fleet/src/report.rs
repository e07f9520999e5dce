//! One scenario's report: the figures measured (printed as `name: value` lines) and the
//! expectations that failed. The traffic section is the same for every scenario: requests
//! sent, answered, failed by cause, wrongly allowed (seen by the client and, by construction,
//! counted by the upstream), and failovers after refused connections.

use std::fmt::Display;
use std::time::Duration;

use crate::load::{quantile, Stats};

/// A scenario's outcome.
pub struct Report {
    pub name: &'static str,
    figures: Vec<(String, String)>,
    failed: Vec<String>,
}

impl Report {
    pub fn new(name: &'static str) -> Report {
        Report {
            name,
            figures: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Records a measured figure.
    pub fn figure(&mut self, name: impl Into<String>, value: impl Display) {
        self.figures.push((name.into(), value.to_string()));
    }

    /// Records a failed expectation unless `holds`.
    pub fn expect(&mut self, holds: bool, what: impl Into<String>) {
        if !holds {
            self.failed.push(what.into());
        }
    }

    /// A harness error ends the scenario as failed.
    pub fn error(&mut self, error: &anyhow::Error) {
        self.failed.push(format!("harness error: {error:#}"));
    }

    /// The traffic figures, expecting no failure and nothing wrongly allowed.
    pub fn traffic(&mut self, stats: &Stats, upstream_marked: u64) {
        let failures = stats.failures();
        let failed: usize = failures.values().sum();
        self.figure("requests sent", stats.sent());
        self.figure("answered as expected", stats.answered());
        let causes = if failures.is_empty() {
            "0".to_string()
        } else {
            failures
                .iter()
                .map(|(cause, n)| format!("{n} {cause}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.figure("failed", causes);
        self.figure(
            "wrongly allowed",
            format!(
                "{} (client saw 200 for an attack), {} (marked requests that reached the upstream)",
                stats.wrongly_allowed(),
                upstream_marked
            ),
        );
        self.figure("failovers after a refused connection", stats.failovers);
        let all: Vec<Duration> = {
            let mut all: Vec<Duration> = stats.samples.iter().map(|s| s.latency).collect();
            all.sort_unstable();
            all
        };
        self.figure(
            "latency p50 / p99 / max",
            format!(
                "{} / {} / {}",
                ms(quantile(&all, 0.5)),
                ms(quantile(&all, 0.99)),
                ms(quantile(&all, 1.0))
            ),
        );
        self.expect(stats.sent() > 0, "no request was sent");
        self.expect(failed == 0, format!("{failed} requests failed"));
        self.expect(
            stats.wrongly_allowed() == 0 && upstream_marked == 0,
            "requests were allowed without the agents' verdict",
        );
    }

    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }

    pub fn print(&self) {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        println!("\n== {} — {verdict}", self.name);
        let width = self.figures.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, value) in &self.figures {
            println!("  {name:<width$}  {value}");
        }
        for failure in &self.failed {
            println!("  FAILED: {failure}");
        }
    }
}

/// Milliseconds with one decimal.
pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}
