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
    /// Expectations evaluated, passed or not: a report without any proves nothing.
    checks: usize,
    failed: Vec<String>,
}

impl Report {
    pub fn new(name: &'static str) -> Report {
        Report {
            name,
            figures: Vec::new(),
            checks: 0,
            failed: Vec::new(),
        }
    }

    /// Records a measured figure.
    pub fn figure(&mut self, name: impl Into<String>, value: impl Display) {
        self.figures.push((name.into(), value.to_string()));
    }

    /// Records a failed expectation unless `holds`.
    pub fn expect(&mut self, holds: bool, what: impl Into<String>) {
        self.checks += 1;
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
        self.expect(
            stats.lost.is_empty(),
            format!(
                "{} load worker(s) lost with their samples: {}",
                stats.lost.len(),
                stats.lost.join("; ")
            ),
        );
        self.expect(failed == 0, format!("{failed} requests failed"));
        self.expect(
            stats.wrongly_allowed() == 0 && upstream_marked == 0,
            "requests were allowed without the agents' verdict",
        );
    }

    /// Whether at least one expectation was checked and none failed (as the faults report).
    pub fn passed(&self) -> bool {
        self.checks > 0 && self.failed.is_empty()
    }

    pub fn print(&self) {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        println!("\n== {} — {verdict}", self.name);
        if self.checks == 0 {
            println!("  FAILED: the scenario checked no expectation");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_without_expectations_fails() {
        let mut report = Report::new("empty");
        report.figure("something measured", 1);
        assert!(!report.passed(), "no expectation was checked");
        report.expect(true, "holds");
        assert!(report.passed());
        report.expect(false, "does not hold");
        assert!(!report.passed());
    }

    #[test]
    fn a_lost_load_worker_fails_the_traffic_checks() {
        let mut stats = Stats::default();
        stats.samples.push(crate::load::Sample {
            started: std::time::Instant::now(),
            latency: Duration::from_millis(1),
            proxy: 0,
            failure: None,
            wrongly_allowed: false,
        });
        let mut whole = Report::new("whole");
        whole.traffic(&stats, 0);
        assert!(whole.passed());
        stats.lost.push("worker 3: panicked".into());
        let mut lost = Report::new("lost");
        lost.traffic(&stats, 0);
        assert!(!lost.passed());
    }
}
