//! Logical agents: a configured name (`waf`) served by every registered agent id matching its
//! `agent-ids` patterns (`waf-*`), with the configuration pushed to those agents.

use sentinel_agent_protocol::AgentPattern;
use serde_json::Value;

use crate::config::EventSet;

/// A configured logical agent.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalAgent {
    /// The name routes refer to.
    pub name: String,
    /// Registered agent ids that serve it.
    pub agent_ids: Vec<AgentPattern>,
    /// Configuration pushed to those agents (`None`: nothing to push).
    pub config: Option<Value>,
    /// The events its agents are sent (what their declared capabilities are checked against).
    pub events: EventSet,
}

impl LogicalAgent {
    /// A logical agent served by ids matching `patterns`, without pushed config, sent every
    /// kind of event.
    pub fn new(name: impl Into<String>, patterns: &[&str]) -> LogicalAgent {
        LogicalAgent {
            name: name.into(),
            agent_ids: patterns.iter().map(|p| AgentPattern::new(*p)).collect(),
            config: None,
            events: EventSet::ALL,
        }
    }

    /// Sets the pushed configuration.
    pub fn with_config(mut self, config: Value) -> LogicalAgent {
        self.config = Some(config);
        self
    }

    /// Whether `agent_id` serves this logical agent.
    pub fn serves(&self, agent_id: &str) -> bool {
        self.agent_ids.iter().any(|p| p.matches(agent_id))
    }
}

/// The pushed config for `agent_id`: that of the first logical agent (in configuration order)
/// it serves. An id serving several logical agents receives the first one's config only.
pub(crate) fn config_for<'a>(logical: &'a [LogicalAgent], agent_id: &str) -> Option<&'a Value> {
    logical
        .iter()
        .find(|l| l.serves(agent_id))
        .and_then(|l| l.config.as_ref())
}
