//! What a scenario found: every request classified into one [`Outcome`], counted per phase
//! of the scenario in a [`Tally`]; facts measured along the way (detection and recovery
//! times, memory growth); and the [`Check`]s of the scenario's expectation. A report renders as
//! a plain-text table and passes only when every check passed. Classifying HTTP answers is
//! [`crate::load`]'s job; deciding what to check is the scenario's.

use std::fmt::Write as _;
use std::time::Duration;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered it (2xx with the upstream's header).
    Allowed,
    /// An agent blocked it (403 made by the proxy).
    Blocked,
    /// 503: no agent verdict under fail-closed (no agent connected, agent timeout or error).
    Unavailable,
    /// 504 from the proxy, or no answer within the client's timeout.
    Timeout,
    /// The TCP connection was refused, reset or closed before an answer.
    RefusedOrReset,
    /// Anything else (another status, a malformed answer).
    Other,
}

/// Requests of one phase, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests sent.
    pub sent: u64,
    /// Answered by the upstream.
    pub allowed: u64,
    /// Blocked by an agent.
    pub blocked: u64,
    /// Failed: 503.
    pub unavailable: u64,
    /// Failed: 504 or client timeout.
    pub timeout: u64,
    /// Failed: connection refused or reset.
    pub refused_or_reset: u64,
    /// Failed: anything else.
    pub other: u64,
    /// Must-block requests the client saw answered by the upstream.
    pub wrongly_allowed: u64,
}

impl Tally {
    /// Counts one request.
    pub fn add(&mut self, outcome: Outcome, must_block: bool) {
        self.sent += 1;
        match outcome {
            Outcome::Allowed => {
                self.allowed += 1;
                if must_block {
                    self.wrongly_allowed += 1;
                }
            }
            Outcome::Blocked => self.blocked += 1,
            Outcome::Unavailable => self.unavailable += 1,
            Outcome::Timeout => self.timeout += 1,
            Outcome::RefusedOrReset => self.refused_or_reset += 1,
            Outcome::Other => self.other += 1,
        }
    }

    /// Requests that got neither an upstream answer nor an agent's block.
    pub fn failed(&self) -> u64 {
        self.unavailable + self.timeout + self.refused_or_reset + self.other
    }

    /// Sum of several tallies.
    pub fn total<'a>(tallies: impl IntoIterator<Item = &'a Tally>) -> Tally {
        let mut sum = Tally::default();
        for t in tallies {
            sum.sent += t.sent;
            sum.allowed += t.allowed;
            sum.blocked += t.blocked;
            sum.unavailable += t.unavailable;
            sum.timeout += t.timeout;
            sum.refused_or_reset += t.refused_or_reset;
            sum.other += t.other;
            sum.wrongly_allowed += t.wrongly_allowed;
        }
        sum
    }
}

/// One expectation of a scenario and whether it held.
#[derive(Debug, Clone)]
pub struct Check {
    /// The expectation, e.g. "wrongly allowed = 0".
    pub expectation: String,
    /// What was observed.
    pub observed: String,
    /// Whether it held.
    pub passed: bool,
}

/// The result of one scenario.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Requests per phase, in order.
    pub phases: Vec<(String, Tally)>,
    /// Must-block requests that reached the upstream (its own count, the authoritative one).
    pub upstream_wrongly_allowed: u64,
    /// Measured facts, e.g. ("recovery after SIGCONT", "0.21 s").
    pub facts: Vec<(String, String)>,
    /// Expectations.
    pub checks: Vec<Check>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &str) -> Report {
        Report {
            scenario: scenario.to_string(),
            ..Report::default()
        }
    }

    /// Records a fact.
    pub fn fact(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.facts.push((name.into(), value.into()));
    }

    /// Records a check.
    pub fn check(
        &mut self,
        expectation: impl Into<String>,
        passed: bool,
        observed: impl Into<String>,
    ) {
        self.checks.push(Check {
            expectation: expectation.into(),
            observed: observed.into(),
            passed,
        });
    }

    /// Takes the per-phase tallies of a finished load, and checks that every worker returned
    /// its samples: a lost worker's requests would silently vanish from every tally.
    pub fn record_load(&mut self, result: &crate::load::LoadResult) {
        self.phases = result.tallies();
        self.check(
            "every load worker returned its samples (none panicked or was lost)",
            result.lost.is_empty(),
            if result.lost.is_empty() {
                format!("{} of {} workers", result.workers, result.workers)
            } else {
                format!("lost {}: {}", result.lost.len(), result.lost.join("; "))
            },
        );
    }

    /// Checks that the steady phase `phase` sent requests and none sent from `from` failed
    /// before `to`, the moment of the fault (named `fault`).
    pub fn check_steady(
        &mut self,
        result: &crate::load::LoadResult,
        phase: &str,
        from: std::time::Instant,
        to: std::time::Instant,
        fault: &str,
    ) {
        let steady = result.failures_between(from, to);
        let steady_sent = result.tally_of(phase).sent;
        self.check(
            format!("steady: no request fails before {fault}"),
            steady_sent > 0 && steady == 0,
            format!("{steady} of {steady_sent} failed"),
        );
    }

    /// Adds the checks every scenario with load has: no must-block request reached the
    /// upstream (its count) nor was seen answered by it (the clients' view).
    pub fn check_nothing_wrongly_allowed(&mut self) {
        let client_side = Tally::total(self.phases.iter().map(|(_, t)| t)).wrongly_allowed;
        let upstream = self.upstream_wrongly_allowed;
        self.check(
            "wrongly allowed under fail-closed = 0 (upstream count and client view)",
            upstream == 0 && client_side == 0,
            format!("upstream {upstream}, client {client_side}"),
        );
    }

    /// Whether every check passed (a report without checks does not pass).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// The report as text: the per-phase table, the facts, the checks, the verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== {}", self.scenario);
        if !self.phases.is_empty() {
            let _ = writeln!(
                out,
                "{:<34} {:>7} {:>7} {:>7} {:>6} {:>8} {:>8} {:>6} {:>7}",
                "phase",
                "sent",
                "allowed",
                "blocked",
                "503",
                "504/t.o.",
                "refu/rst",
                "other",
                "wrongly"
            );
            let total = Tally::total(self.phases.iter().map(|(_, t)| t));
            for (name, t) in self
                .phases
                .iter()
                .chain(std::iter::once(&("total".to_string(), total)))
            {
                let _ = writeln!(
                    out,
                    "{:<34} {:>7} {:>7} {:>7} {:>6} {:>8} {:>8} {:>6} {:>7}",
                    name,
                    t.sent,
                    t.allowed,
                    t.blocked,
                    t.unavailable,
                    t.timeout,
                    t.refused_or_reset,
                    t.other,
                    t.wrongly_allowed
                );
            }
            let _ = writeln!(
                out,
                "must-block requests that reached the upstream: {}",
                self.upstream_wrongly_allowed
            );
        }
        for (name, value) in &self.facts {
            let _ = writeln!(out, "  {name}: {value}");
        }
        for check in &self.checks {
            let mark = if check.passed { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "  [{mark}] {} — {}", check.expectation, check.observed);
        }
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        let _ = writeln!(out, "{} {verdict}", self.scenario);
        out
    }
}

/// A duration in seconds with two decimals, for facts.
pub fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Bytes in MiB with two decimals, signed.
pub fn mib(bytes: i64) -> String {
    format!("{:+.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_classify_and_sum() {
        let mut a = Tally::default();
        a.add(Outcome::Allowed, false);
        a.add(Outcome::Allowed, true);
        a.add(Outcome::Blocked, true);
        a.add(Outcome::Unavailable, true);
        a.add(Outcome::RefusedOrReset, false);
        assert_eq!(
            (a.sent, a.allowed, a.blocked, a.failed(), a.wrongly_allowed),
            (5, 2, 1, 2, 1)
        );
        let total = Tally::total([&a, &a]);
        assert_eq!((total.sent, total.wrongly_allowed), (10, 2));
    }

    #[test]
    fn a_wrongly_allowed_request_fails_the_report() {
        let mut report = Report::new("x");
        assert!(!report.passed(), "no checks, no pass");
        report.phases.push(("p".into(), Tally::default()));
        report.check_nothing_wrongly_allowed();
        assert!(report.passed());
        report.upstream_wrongly_allowed = 1;
        report.checks.clear();
        report.check_nothing_wrongly_allowed();
        assert!(!report.passed());
        assert!(report.render().contains("[FAIL]"));
    }
}
