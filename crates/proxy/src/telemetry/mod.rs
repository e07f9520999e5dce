//! What the running proxy records about itself: the Prometheus series ([`Metrics`]: requests,
//! agent decisions, decisions by rule (bounded, [`rule_label`]), latency and failures, and the
//! registration and pool figures read at scrape time) and, fed by the same calls, each logical agent's last minute ([`AgentMinute`]). The
//! data plane and the pool write here through [`crate::state::ProxyState`]; the admin listener
//! only reads and serves it. Nothing here serves HTTP or decides anything.

mod agent_series;
mod metrics;
mod recent;
mod rules;

pub use metrics::Metrics;
pub use recent::{AgentMinute, RecentDecisions};
pub use rules::{
    rule_label, MAX_RULES_PER_AGENT, MAX_RULE_IDS_PER_DECISION, MAX_RULE_ID_CHARS, NO_RULE,
    OTHER_RULES,
};
