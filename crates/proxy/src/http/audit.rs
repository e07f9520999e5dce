//! The log line of a block or redirect: which logical agent stopped the request, with what
//! status, and why in the agent's words (its audit record: rule ids, tags, reason). The audit
//! record is untrusted agent input, so it is bounded here (rule ids and tags through
//! [`rule_label`], the reason cut at [`MAX_REASON_CHARS`] with a marker) and logged so that it
//! cannot forge a line: rule ids and tags keep only a safe alphabet; the reason is a quoted field,
//! whose quotes, backslashes, newlines and other control characters the formatter escapes.
//!
//! A block is a normal outcome, logged at info, but an attack can be blocked a thousand times a
//! second: at most [`INFO_LINES_PER_SECOND`] such lines a second (for the whole process) are
//! written at info, the others at debug, and the next info line is preceded by one saying how
//! many were held back. The counts by rule are telemetry's (`Metrics::record_rule_decision`);
//! deciding to block is `agents.rs`'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use sentinel_agent_protocol::Audit;

use crate::telemetry::{rule_label, MAX_RULE_IDS_PER_DECISION};

/// Characters of an agent's reason (and of a redirect's location) kept in the log line.
pub(crate) const MAX_REASON_CHARS: usize = 256;
/// Block and redirect lines written at info per second, process-wide; the rest go to debug.
pub(crate) const INFO_LINES_PER_SECOND: u64 = 20;
/// Ends a reason or location that was cut.
const CUT_MARKER: &str = "…[truncated]";

/// A block or redirect, ready to be logged once the route is known.
#[derive(Debug)]
pub(crate) struct StopRecord {
    agent: String,
    status: u16,
    /// The redirect's target; `None` for a block.
    location: Option<String>,
    rule_ids: Option<String>,
    tags: Option<String>,
    reason: Option<String>,
}

/// One event at `$level` for the [`StopRecord`] `$record` on `$route` (a macro because the
/// level of a tracing event must be a constant).
macro_rules! stop_line {
    ($level:expr, $record:expr, $route:expr) => {{
        let record: &StopRecord = $record;
        let what = if record.location.is_some() {
            "request redirected"
        } else {
            "request blocked"
        };
        tracing::event!(
            $level,
            agent = %record.agent,
            status = record.status,
            location = record.location.as_deref().map(tracing::field::display),
            rule_ids = record.rule_ids.as_deref().map(tracing::field::display),
            tags = record.tags.as_deref().map(tracing::field::display),
            reason = record.reason.as_deref(),
            route = %$route,
            "{what}"
        )
    }};
}

impl StopRecord {
    /// `agent` blocked the request with `status`, saying why in `audit`.
    pub(crate) fn blocked(agent: &str, status: u16, audit: Option<&Audit>) -> StopRecord {
        StopRecord::new(agent, status, None, audit)
    }

    /// `agent` redirected the request to `location` with `status`, saying why in `audit`.
    pub(crate) fn redirected(
        agent: &str,
        status: u16,
        location: &str,
        audit: Option<&Audit>,
    ) -> StopRecord {
        let location = bounded_text(location, MAX_REASON_CHARS);
        StopRecord::new(agent, status, Some(location), audit)
    }

    fn new(agent: &str, status: u16, location: Option<String>, audit: Option<&Audit>) -> Self {
        StopRecord {
            agent: agent.to_string(),
            status,
            location,
            rule_ids: audit.and_then(|a| token_list(&a.rule_ids)),
            tags: audit.and_then(|a| token_list(&a.tags)),
            reason: audit
                .and_then(|a| a.reason.as_deref())
                .map(|r| bounded_text(r, MAX_REASON_CHARS)),
        }
    }

    /// Writes the line for a request on `route`, at info within the budget, else at debug.
    pub(crate) fn log(&self, route: &str) {
        match BUDGET.admit(BUDGET.second_now()) {
            Admission::Info { held_back } => {
                if held_back > 0 {
                    tracing::info!(
                        held_back,
                        "more blocked or redirected requests than {INFO_LINES_PER_SECOND} a second: the others were logged at debug only"
                    );
                }
                stop_line!(tracing::Level::INFO, self, route);
            }
            Admission::Debug => stop_line!(tracing::Level::DEBUG, self, route),
        }
    }
}

/// Rule ids or tags as one log token: each made a label by [`rule_label`], empty ones dropped,
/// at most [`MAX_RULE_IDS_PER_DECISION`] joined by `,`, then `,…+N` for the N left out.
fn token_list(items: &[String]) -> Option<String> {
    let kept: Vec<String> = items
        .iter()
        .take(MAX_RULE_IDS_PER_DECISION)
        .filter_map(|item| rule_label(item))
        .collect();
    if kept.is_empty() {
        return None;
    }
    let mut list = kept.join(",");
    let left_out = items.len().saturating_sub(MAX_RULE_IDS_PER_DECISION);
    if left_out > 0 {
        list.push_str(&format!(",…+{left_out}"));
    }
    Some(list)
}

/// `text` cut to `max` characters, ending with [`CUT_MARKER`] when it was cut.
fn bounded_text(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}{CUT_MARKER}", &text[..end]),
    }
}

/// Whether a line may be written at info.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    /// Yes; `held_back` lines went to debug since the last info line.
    Info { held_back: u64 },
    /// No: the second's budget is spent.
    Debug,
}

/// [`INFO_LINES_PER_SECOND`] info lines per second of the process's life. Lock-free and
/// approximate: at a second's turn, concurrent callers may let a line or two more through.
struct LogBudget {
    started: Instant,
    per_second: u64,
    second: AtomicU64,
    used: AtomicU64,
    held_back: AtomicU64,
}

static BUDGET: LazyLock<LogBudget> = LazyLock::new(|| LogBudget::new(INFO_LINES_PER_SECOND));

impl LogBudget {
    fn new(per_second: u64) -> LogBudget {
        LogBudget {
            started: Instant::now(),
            per_second,
            second: AtomicU64::new(0),
            used: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    fn second_now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Spends one line of `second`'s budget, if any is left.
    fn admit(&self, second: u64) -> Admission {
        let current = self.second.load(Ordering::Relaxed);
        if current != second
            && self
                .second
                .compare_exchange(current, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < self.per_second {
            Admission::Info {
                held_back: self.held_back.swap(0, Ordering::Relaxed),
            }
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            Admission::Debug
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(rule_ids: &[&str], reason: Option<&str>) -> Audit {
        Audit {
            tags: vec![],
            rule_ids: rule_ids.iter().map(|s| s.to_string()).collect(),
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn the_record_keeps_rule_ids_and_reason_bounded() {
        let long = "x".repeat(5000);
        let record = StopRecord::blocked("waf", 403, Some(&audit(&["942100", "a b"], Some(&long))));
        assert_eq!(record.rule_ids.as_deref(), Some("942100,a_b"));
        let reason = record.reason.unwrap_or_default();
        assert!(reason.ends_with(CUT_MARKER), "{reason}");
        assert_eq!(
            reason.chars().count(),
            MAX_REASON_CHARS + CUT_MARKER.chars().count()
        );
        assert_eq!(bounded_text("é short", 256), "é short");
    }

    #[test]
    fn long_lists_say_how_many_ids_were_left_out() {
        let ids: Vec<String> = (0..20).map(|n| format!("r{n}")).collect();
        let list = token_list(&ids).unwrap_or_default();
        assert!(list.starts_with("r0,r1,"), "{list}");
        assert!(list.ends_with(",r15,…+4"), "{list}");
        assert_eq!(token_list(&[String::new()]), None);
        assert_eq!(StopRecord::blocked("waf", 403, None).rule_ids, None);
    }

    #[test]
    fn the_budget_moves_lines_to_debug_and_reports_them_next_second() {
        let budget = LogBudget::new(2);
        assert_eq!(budget.admit(7), Admission::Info { held_back: 0 });
        assert_eq!(budget.admit(7), Admission::Info { held_back: 0 });
        assert_eq!(budget.admit(7), Admission::Debug);
        assert_eq!(budget.admit(7), Admission::Debug);
        assert_eq!(budget.admit(8), Admission::Info { held_back: 2 });
        assert_eq!(budget.admit(8), Admission::Info { held_back: 0 });
    }
}
