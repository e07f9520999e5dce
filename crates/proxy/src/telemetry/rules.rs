//! Decisions by the rule an agent named: the counter family behind
//! `sentinel_agent_rule_decisions_total{agent, action, rule}`, with its cardinality bound, and
//! the one sanitiser that turns an agent's rule id (or tag) into a label value — the log line of
//! a block uses it too, so the log names exactly the `rule` label to query. Rule ids come from
//! agents and are untrusted: at most [`MAX_RULES_PER_AGENT`] distinct labels per logical agent
//! (later ones count under [`OTHER_RULES`]), each at most [`MAX_RULE_ID_CHARS`] characters of a
//! small alphabet, at most [`MAX_RULE_IDS_PER_DECISION`] read from one decision. Deciding what to
//! count (every block and redirect, other actions only when they name a rule) is the caller's.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Distinct `rule` labels kept per logical agent; later rule ids count under [`OTHER_RULES`].
pub const MAX_RULES_PER_AGENT: usize = 100;
/// Characters kept of one rule id or tag; the rest is cut.
pub const MAX_RULE_ID_CHARS: usize = 64;
/// Rule ids (and tags) read from one decision; the rest is ignored (the log says how many).
pub const MAX_RULE_IDS_PER_DECISION: usize = 16;
/// The `rule` label of a block or redirect that named no rule. Parentheses never survive
/// [`rule_label`], so no agent's rule id can be mistaken for it.
pub const NO_RULE: &str = "(none)";
/// The `rule` label of rule ids beyond an agent's [`MAX_RULES_PER_AGENT`].
pub const OTHER_RULES: &str = "(other)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RuleLabels {
    agent: String,
    action: String,
    rule: String,
}

/// An agent's rule id (or tag) as a label value and log token: characters other than ASCII
/// letters, digits and `.`, `_`, `-`, `:`, `/` become `_`, cut to [`MAX_RULE_ID_CHARS`].
/// `None` for an empty id. Safe for Prometheus text and for a log line as is (no quote, space,
/// or control character survives).
pub fn rule_label(id: &str) -> Option<String> {
    if id.is_empty() {
        return None;
    }
    let label = id
        .chars()
        .take(MAX_RULE_ID_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(label)
}

/// The per-rule counters and, per logical agent, the rule labels admitted so far.
#[derive(Default)]
pub(super) struct RuleDecisions {
    counters: Family<RuleLabels, Counter>,
    /// Logical agent name (from the configuration, so bounded) → its admitted rule labels.
    /// Read-mostly: written only when an agent names a rule for the first time.
    admitted: RwLock<HashMap<String, HashSet<String>>>,
}

impl RuleDecisions {
    /// Counts one decision of `agent` with `action` once under each of its first
    /// [`MAX_RULE_IDS_PER_DECISION`] rule ids, or under [`NO_RULE`] when it named none.
    pub(super) fn record(&self, agent: &str, action: &str, rule_ids: &[String]) {
        let mut labels: Vec<String> = rule_ids
            .iter()
            .take(MAX_RULE_IDS_PER_DECISION)
            .filter_map(|id| rule_label(id))
            .collect();
        if labels.is_empty() {
            labels.push(NO_RULE.to_string());
        } else {
            self.bound(agent, &mut labels);
        }
        labels.sort_unstable();
        labels.dedup();
        for rule in labels {
            self.counters
                .get_or_create(&RuleLabels {
                    agent: agent.to_string(),
                    action: action.to_string(),
                    rule,
                })
                .inc();
        }
    }

    /// Replaces the labels `agent` may not have any more (over its cap) by [`OTHER_RULES`],
    /// admitting new ones while there is room.
    fn bound(&self, agent: &str, labels: &mut [String]) {
        if !self.bound_from_known(agent, labels) {
            self.admit(agent, labels);
        }
    }

    /// The common case, under the read lock: every label is known, or the agent is at its cap
    /// (unknown labels become [`OTHER_RULES`]). `false` when a label may still be admitted.
    fn bound_from_known(&self, agent: &str, labels: &mut [String]) -> bool {
        // A poisoned lock only means another thread panicked mid-insert; the sets stay valid.
        let admitted = self.admitted.read().unwrap_or_else(|p| p.into_inner());
        let Some(known) = admitted.get(agent) else {
            return false;
        };
        if known.len() < MAX_RULES_PER_AGENT {
            return labels.iter().all(|l| known.contains(l.as_str()));
        }
        for label in labels.iter_mut() {
            if !known.contains(label.as_str()) {
                *label = OTHER_RULES.to_string();
            }
        }
        true
    }

    /// Under the write lock: admits `agent`'s new labels up to its cap, the rest become
    /// [`OTHER_RULES`].
    fn admit(&self, agent: &str, labels: &mut [String]) {
        let mut admitted = self.admitted.write().unwrap_or_else(|p| p.into_inner());
        let known = admitted.entry(agent.to_string()).or_default();
        for label in labels.iter_mut() {
            if known.contains(label.as_str()) {
                continue;
            }
            if known.len() < MAX_RULES_PER_AGENT {
                known.insert(label.clone());
            } else {
                *label = OTHER_RULES.to_string();
            }
        }
    }

    /// The count of `agent`'s decisions with `action` under `rule` (a label value).
    #[cfg(test)]
    fn count(&self, agent: &str, action: &str, rule: &str) -> u64 {
        self.counters
            .get_or_create(&RuleLabels {
                agent: agent.to_string(),
                action: action.to_string(),
                rule: rule.to_string(),
            })
            .get()
    }

    /// The family, for registering in a scrape's registry.
    pub(super) fn family(&self) -> Family<RuleLabels, Counter> {
        self.counters.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_keep_a_safe_alphabet_and_a_bounded_length() {
        assert_eq!(rule_label("942100").as_deref(), Some("942100"));
        assert_eq!(
            rule_label("owasp/crs:942.100-x_y").as_deref(),
            Some("owasp/crs:942.100-x_y")
        );
        assert_eq!(rule_label("a\"b}\nc d(e)").as_deref(), Some("a_b__c_d_e_"));
        assert_eq!(rule_label(""), None);
        let long = "r".repeat(1000);
        assert_eq!(
            rule_label(&long).map(|l| l.chars().count()),
            Some(MAX_RULE_ID_CHARS)
        );
    }

    #[test]
    fn each_rule_of_a_decision_counts_once_and_no_rule_counts_as_none() {
        let rules = RuleDecisions::default();
        rules.record("waf", "block", &ids(&["a", "b", "a"]));
        rules.record("waf", "block", &[]);
        rules.record("waf", "block", &ids(&[""]));
        assert_eq!(rules.count("waf", "block", "a"), 1);
        assert_eq!(rules.count("waf", "block", "b"), 1);
        assert_eq!(rules.count("waf", "block", NO_RULE), 2);
    }

    #[test]
    fn rules_beyond_the_cap_count_as_other_per_agent() {
        let rules = RuleDecisions::default();
        for n in 0..MAX_RULES_PER_AGENT + 5 {
            rules.record("waf", "block", &[format!("r{n}")]);
        }
        // A rule admitted before the cap keeps counting under its own label.
        rules.record("waf", "block", &ids(&["r0"]));
        // Another agent has its own allowance.
        rules.record("auth", "block", &ids(&["r500"]));
        assert_eq!(rules.count("waf", "block", "r0"), 2);
        assert_eq!(rules.count("waf", "block", OTHER_RULES), 5);
        assert_eq!(rules.count("waf", "block", "r100"), 0);
        assert_eq!(rules.count("auth", "block", "r500"), 1);
    }

    #[test]
    fn one_decision_reads_a_bounded_number_of_rule_ids() {
        let rules = RuleDecisions::default();
        let many: Vec<String> = (0..1000).map(|n| format!("r{n}")).collect();
        rules.record("waf", "block", &many);
        let counted: u64 = (0..1000)
            .map(|n| rules.count("waf", "block", &format!("r{n}")))
            .sum();
        assert_eq!(counted, MAX_RULE_IDS_PER_DECISION as u64);
    }
}
