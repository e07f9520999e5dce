//! The `agents` block: `agent "waf" { … }` logical agents, the agent ids that serve each, the
//! events it receives, its timeout and failure mode, and the config pushed to it (defaults:
//! [`AgentConfig::default`]).

use std::time::Duration;

use kdl::KdlNode;
use sentinel_agent_protocol::AgentPattern;

use super::nodes::Directive;
use super::Loader;
use crate::config::{AgentConfig, ConfigError, EventSet, FailureMode};

/// The range `timeout-ms` accepts: up to an hour.
const TIMEOUT_MS: (i128, i128) = (1, 3_600_000);

const UNKNOWN_EVENT_HELP: &str =
    "expected request_headers, request_body, response_headers or response_body";

/// What an `agent` block accepts.
const AGENT: &[Directive<AgentConfig>] = &[
    Directive {
        name: "agent-ids",
        apply: |loader, node, agent| {
            let patterns = loader.reader.strings(node)?;
            agent.agent_ids = patterns
                .iter()
                .map(|p| AgentPattern::new(p.as_str()))
                .collect();
            Ok(())
        },
    },
    Directive {
        name: "events",
        apply: |loader, node, agent| {
            agent.events = loader.events(node)?;
            Ok(())
        },
    },
    Directive {
        name: "timeout-ms",
        apply: |loader, node, agent| {
            let millis = loader.reader.integer(node, TIMEOUT_MS.0, TIMEOUT_MS.1)?;
            agent.timeout = Duration::from_millis(millis as u64);
            Ok(())
        },
    },
    Directive {
        name: "timeout",
        apply: |loader, node, agent| {
            agent.timeout = loader.positive(node)?;
            Ok(())
        },
    },
    Directive {
        name: "failure-mode",
        apply: |loader, node, agent| {
            let choices = [("closed", FailureMode::Closed), ("open", FailureMode::Open)];
            agent.failure_mode = loader.either(node, choices)?;
            Ok(())
        },
    },
    Directive {
        name: "config",
        apply: |loader, node, agent| {
            agent.config = Some(loader.reader.json_object(node)?);
            Ok(())
        },
    },
];

impl Loader<'_> {
    pub(super) fn agents(&self, node: &KdlNode) -> Result<Vec<AgentConfig>, ConfigError> {
        self.named_blocks(node, "agent", |block, name| {
            let mut agent = AgentConfig {
                name,
                ..AgentConfig::default()
            };
            self.block(block, "agent", AGENT, &mut agent)?;
            // Without `agent-ids`, agents registering under the logical name serve it.
            if agent.agent_ids.is_empty() {
                agent.agent_ids = vec![AgentPattern::new(agent.name.as_str())];
            }
            Ok(agent)
        })
    }

    /// `events "request_headers" "request_body" …`: exactly the events named.
    fn events(&self, node: &KdlNode) -> Result<EventSet, ConfigError> {
        let mut events = EventSet::default();
        for event in self.reader.strings(node)? {
            let flag = match event.as_str() {
                "request_headers" => &mut events.request_headers,
                "request_body" => &mut events.request_body,
                "response_headers" => &mut events.response_headers,
                "response_body" => &mut events.response_body,
                other => {
                    let message = format!("unknown event \"{other}\"; {UNKNOWN_EVENT_HELP}");
                    return Err(self.fail(node, message));
                }
            };
            *flag = true;
        }
        Ok(events)
    }
}
