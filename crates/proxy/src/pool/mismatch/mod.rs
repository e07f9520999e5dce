//! Mismatches between a registered agent and the configuration that serves it: an agent id no
//! logical agent's `agent-ids` match, a declared capability for events the proxy never sends,
//! and `continue` answered to the last event of a phase (taken as allow). This module owns the
//! findings (what each one is, how it is worded for the operator), the memory of which were
//! already reported (so each is logged once per agent id and finding, not per request), and the
//! per-(logical agent, cause) counters `/metrics` reads, and the pool's entry points to them. It
//! does not decide when to look: the pool calls in at registration, disconnection and reload,
//! and the HTTP chain reports continue-on-last (it alone knows what an agent answered).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use sentinel_agent_protocol::Capabilities;

use super::logical::LogicalAgent;
use super::{AgentPool, PoolState};
use crate::config::EventSet;

/// Findings remembered at most. Entries go when their agent id has no connection left, so this
/// only bounds memory against a flood of distinct ids; past it, new findings are counted but
/// neither logged nor shown.
const MAX_FINDINGS: usize = 1024;

/// The `agent` label of a mismatch that belongs to no logical agent.
pub const NO_LOGICAL_AGENT: &str = "-";

/// Why an agent and the configuration disagree: the `cause` label of the mismatch counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MismatchCause {
    /// The agent id matches no logical agent's `agent-ids`: it is never sent anything.
    UnmatchedAgentId,
    /// The agent declares it handles events its logical agent is not sent.
    CapabilityNotSent,
    /// The agent answered `continue` to the last event it is sent in a phase.
    ContinueOnLastEvent,
}

impl MismatchCause {
    /// The label: `unmatched_agent_id`, `capability_not_sent`, `continue_on_last_event`.
    pub fn as_str(self) -> &'static str {
        match self {
            MismatchCause::UnmatchedAgentId => "unmatched_agent_id",
            MismatchCause::CapabilityNotSent => "capability_not_sent",
            MismatchCause::ContinueOnLastEvent => "continue_on_last_event",
        }
    }
}

/// The four kinds of event a logical agent may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventKind {
    /// `request_headers`.
    RequestHeaders,
    /// `request_body`.
    RequestBody,
    /// `response_headers`.
    ResponseHeaders,
    /// `response_body`.
    ResponseBody,
}

impl EventKind {
    const ALL: [EventKind; 4] = [
        EventKind::RequestHeaders,
        EventKind::RequestBody,
        EventKind::ResponseHeaders,
        EventKind::ResponseBody,
    ];

    /// The name in the configuration's `events`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::RequestHeaders => "request_headers",
            EventKind::RequestBody => "request_body",
            EventKind::ResponseHeaders => "response_headers",
            EventKind::ResponseBody => "response_body",
        }
    }

    fn capability(self) -> &'static str {
        match self {
            EventKind::RequestHeaders => "handles_request_headers",
            EventKind::RequestBody => "handles_request_body",
            EventKind::ResponseHeaders => "handles_response_headers",
            EventKind::ResponseBody => "handles_response_body",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            EventKind::RequestHeaders => "request headers",
            EventKind::RequestBody => "request bodies",
            EventKind::ResponseHeaders => "response headers",
            EventKind::ResponseBody => "response bodies",
        }
    }

    fn declared_in(self, capabilities: &Capabilities) -> bool {
        match self {
            EventKind::RequestHeaders => capabilities.handles_request_headers,
            EventKind::RequestBody => capabilities.handles_request_body,
            EventKind::ResponseHeaders => capabilities.handles_response_headers,
            EventKind::ResponseBody => capabilities.handles_response_body,
        }
    }

    /// Whether a logical agent with `events` is sent this kind.
    pub fn sent_in(self, events: &EventSet) -> bool {
        match self {
            EventKind::RequestHeaders => events.request_headers,
            EventKind::RequestBody => events.request_body,
            EventKind::ResponseHeaders => events.response_headers,
            EventKind::ResponseBody => events.response_body,
        }
    }

    /// The body that follows these headers in their phase (`None` for a body).
    fn body_after(self) -> Option<EventKind> {
        match self {
            EventKind::RequestHeaders => Some(EventKind::RequestBody),
            EventKind::ResponseHeaders => Some(EventKind::ResponseBody),
            EventKind::RequestBody | EventKind::ResponseBody => None,
        }
    }
}

/// One mismatch of one agent id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Finding {
    UnmatchedAgentId,
    CapabilityNotSent { agent: String, event: EventKind },
    ContinueOnLastEvent { agent: String, headers: EventKind },
}

impl Finding {
    fn cause(&self) -> MismatchCause {
        match self {
            Finding::UnmatchedAgentId => MismatchCause::UnmatchedAgentId,
            Finding::CapabilityNotSent { .. } => MismatchCause::CapabilityNotSent,
            Finding::ContinueOnLastEvent { .. } => MismatchCause::ContinueOnLastEvent,
        }
    }

    fn agent(&self) -> &str {
        match self {
            Finding::UnmatchedAgentId => NO_LOGICAL_AGENT,
            Finding::CapabilityNotSent { agent, .. }
            | Finding::ContinueOnLastEvent { agent, .. } => agent,
        }
    }

    /// What is wrong and what to change, in the operator's words.
    fn describe(&self, agent_id: &str, logical: &[LogicalAgent]) -> String {
        match self {
            Finding::UnmatchedAgentId => {
                let patterns: Vec<String> = logical
                    .iter()
                    .flat_map(|l| l.agent_ids.iter().map(|p| p.to_string()))
                    .collect();
                let patterns = if patterns.is_empty() {
                    "no agent is configured".to_string()
                } else {
                    patterns.join(", ")
                };
                format!(
                    "agent id {agent_id} matches no agent's agent-ids ({patterns}): start it with \
                     a matching --agent-id, or add a pattern to agent-ids"
                )
            }
            Finding::CapabilityNotSent { agent, event } => format!(
                "{agent_id} declares {} ({}) but agent \"{agent}\" is not sent them: add \"{}\" \
                 to its events, or stop declaring it",
                event.plural(),
                event.capability(),
                event.name()
            ),
            Finding::ContinueOnLastEvent { agent, headers } => {
                let body = headers.body_after().map_or("", EventKind::name);
                format!(
                    "{agent_id} answered continue to {}, the last event it is sent in that phase \
                     (taken as allow): add \"{body}\" to the events of agent \"{agent}\", or \
                     answer allow",
                    headers.name()
                )
            }
        }
    }

    /// Whether this finding is still true under `logical` for `agent_id` (after a reload).
    fn holds_under(&self, agent_id: &str, logical: &[LogicalAgent]) -> bool {
        match self {
            Finding::UnmatchedAgentId => !logical.iter().any(|l| l.serves(agent_id)),
            Finding::CapabilityNotSent { agent, event } => {
                serving(logical, agent, agent_id).is_some_and(|l| !event.sent_in(&l.events))
            }
            Finding::ContinueOnLastEvent { agent, headers } => {
                serving(logical, agent, agent_id).is_some_and(|l| is_last_of_phase(*headers, l))
            }
        }
    }
}

/// The logical agent `name`, if `agent_id` serves it.
fn serving<'a>(
    logical: &'a [LogicalAgent],
    name: &str,
    agent_id: &str,
) -> Option<&'a LogicalAgent> {
    logical
        .iter()
        .find(|l| l.name == name && l.serves(agent_id))
}

/// Whether `headers` is the last event `logical` is sent in its phase (its body is not sent).
pub(crate) fn is_last_of_phase(headers: EventKind, logical: &LogicalAgent) -> bool {
    headers
        .body_after()
        .is_some_and(|body| !body.sent_in(&logical.events))
}

/// What is wrong with a registration of `agent_id` declaring `capabilities`, under `logical`.
pub(crate) fn registration_findings(
    agent_id: &str,
    capabilities: &Capabilities,
    logical: &[LogicalAgent],
) -> Vec<Finding> {
    let served: Vec<&LogicalAgent> = logical.iter().filter(|l| l.serves(agent_id)).collect();
    if served.is_empty() {
        return vec![Finding::UnmatchedAgentId];
    }
    let mut findings = Vec::new();
    for l in served {
        for event in EventKind::ALL {
            if event.declared_in(capabilities) && !event.sent_in(&l.events) {
                findings.push(Finding::CapabilityNotSent {
                    agent: l.name.clone(),
                    event,
                });
            }
        }
    }
    findings
}

/// The reported findings and the counters. Callers hold the pool's lock while calling, so a
/// finding is never recorded for an agent id whose last connection is already gone.
#[derive(Default)]
pub(crate) struct Mismatches {
    state: Mutex<MismatchState>,
}

#[derive(Default)]
struct MismatchState {
    reported: BTreeSet<(String, Finding)>,
    /// (logical agent or `-`, cause) → occurrences.
    counts: BTreeMap<(String, MismatchCause), u64>,
}

impl Mismatches {
    fn lock(&self) -> MutexGuard<'_, MismatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One occurrence of `finding` for `agent_id`: counted every time, logged the first time.
    pub(crate) fn note(&self, agent_id: &str, finding: Finding, logical: &[LogicalAgent]) {
        let mut state = self.lock();
        *state
            .counts
            .entry((finding.agent().to_string(), finding.cause()))
            .or_default() += 1;
        let key = (agent_id.to_string(), finding);
        if state.reported.len() >= MAX_FINDINGS || state.reported.contains(&key) {
            return;
        }
        let (agent_id, finding) = &key;
        tracing::warn!(
            agent_id = %agent_id,
            agent = finding.agent(),
            cause = finding.cause().as_str(),
            "{}",
            finding.describe(agent_id, logical)
        );
        state.reported.insert(key);
    }

    /// Like [`Mismatches::note`], but counts only a finding not reported yet (a reload finding
    /// the same mismatch again is not a new occurrence).
    pub(crate) fn note_if_new(&self, agent_id: &str, finding: Finding, logical: &[LogicalAgent]) {
        let known = self
            .lock()
            .reported
            .contains(&(agent_id.to_string(), finding.clone()));
        if !known {
            self.note(agent_id, finding, logical);
        }
    }

    /// Forgets the findings of `agent_id` (its last connection is gone).
    pub(crate) fn forget(&self, agent_id: &str) {
        self.lock().reported.retain(|(id, _)| id != agent_id);
    }

    /// After a reload: drops the findings `logical` made untrue (or whose agent id is gone).
    pub(crate) fn retain_holding(&self, logical: &[LogicalAgent], live: &dyn Fn(&str) -> bool) {
        self.lock()
            .reported
            .retain(|(id, finding)| live(id) && finding.holds_under(id, logical));
    }

    /// Every reported finding as the operator's text, by agent id.
    pub(crate) fn problems(&self, logical: &[LogicalAgent]) -> BTreeMap<String, Vec<String>> {
        let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (agent_id, finding) in &self.lock().reported {
            problems
                .entry(agent_id.clone())
                .or_default()
                .push(finding.describe(agent_id, logical));
        }
        problems
    }

    /// Occurrences so far, as (logical agent or `-`, cause, count).
    pub(crate) fn counts(&self) -> Vec<(String, MismatchCause, u64)> {
        self.lock()
            .counts
            .iter()
            .map(|((agent, cause), n)| (agent.clone(), *cause, *n))
            .collect()
    }
}

impl AgentPool {
    /// `agent_id`, serving `logical_agent`, answered `continue` to `headers`. A mismatch when
    /// the logical agent is not sent the body of that phase: the proxy took it as allow.
    pub fn note_continue(&self, logical_agent: &str, agent_id: &str, headers: EventKind) {
        let state = self.read();
        // An id whose last connection just went is not remembered: nothing would forget it.
        if !state.has_live(agent_id) {
            return;
        }
        let Some(logical) = serving(&state.logical, logical_agent, agent_id) else {
            return;
        };
        if is_last_of_phase(headers, logical) {
            let finding = Finding::ContinueOnLastEvent {
                agent: logical.name.clone(),
                headers,
            };
            self.inner
                .mismatches
                .note(agent_id, finding, &state.logical);
        }
    }

    /// What is wrong between each registered agent id and the configuration, in the operator's
    /// words (only ids with something wrong appear).
    pub fn mismatch_problems(&self) -> BTreeMap<String, Vec<String>> {
        let state = self.read();
        self.inner.mismatches.problems(&state.logical)
    }

    /// Mismatches so far, as (logical agent or [`NO_LOGICAL_AGENT`], cause, occurrences).
    pub fn mismatch_counts(&self) -> Vec<(String, MismatchCause, u64)> {
        self.inner.mismatches.counts()
    }

    /// After the logical agents changed: drops the findings that no longer hold and reports
    /// those the new logical agents create for the live connections.
    pub(super) fn reevaluate_mismatches(&self, state: &PoolState) {
        let mismatches = &self.inner.mismatches;
        mismatches.retain_holding(&state.logical, &|id| state.has_live(id));
        for connection in state.connections() {
            let agent_id = connection.agent_id();
            for finding in
                registration_findings(agent_id, connection.capabilities(), &state.logical)
            {
                mismatches.note_if_new(agent_id, finding, &state.logical);
            }
        }
    }
}

#[cfg(test)]
mod tests;
