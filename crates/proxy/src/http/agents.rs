//! One HTTP request's conversation with the agents of its route (PROTOCOL.md §4): events sent
//! in route order, one outstanding per agent; `continue` keeps an agent in the current phase,
//! a final action ends the phase for it; `block`/`redirect` stop the request; failures (no
//! connection, timeout, RequestError, lost connection) apply the agent's failure mode. Request
//! header operations are applied as they come; response header operations are collected and
//! applied to whatever final response the client gets. When the request ends early (block,
//! upstream failure, client gone), agents still expecting events of it are sent Cancel.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use sentinel_agent_protocol::{
    Action, BodyChunk, CancelReason, HeaderOp, HeaderPair, RequestHeaders, ResponseHeaders,
};

use super::audit::StopRecord;
use super::headers::{apply_ops, to_pairs, MAX_HEADER_OPS};
use crate::config::{Config, EventSet, FailureMode};
use crate::pool::{AgentReply, AgentRequest, DispatchFailure, Event, EventKind};
use crate::state::ProxyState;

/// The two phases of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Request headers, then request body chunks.
    Request,
    /// Response headers, then response body chunks.
    Response,
}

/// Why the proxy answers the client itself.
#[derive(Debug)]
pub(crate) enum Stop {
    /// An agent blocked the request.
    Block {
        status: u16,
        body: Option<String>,
        headers: Vec<HeaderPair>,
    },
    /// An agent redirected the request (the location is a valid header value).
    Redirect { location: String, status: u16 },
    /// An agent with `failure-mode closed` gave no verdict.
    Unavailable,
}

/// What the agents are told about the request besides its headers.
pub(crate) struct RequestInfo {
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) version: String,
    pub(crate) client_addr: String,
    pub(crate) route: String,
    pub(crate) has_body: bool,
}

struct Member {
    name: String,
    events: EventSet,
    timeout: std::time::Duration,
    failure_mode: FailureMode,
    /// Opened at the agent's first event; `None` once it has nothing more to receive.
    request: Option<AgentRequest>,
    /// Still wants events of the current phase.
    open: bool,
    /// Failed open: skipped for the rest of the request.
    out: bool,
}

/// A non-final or final verdict that lets the request go on.
struct Answer {
    last: bool,
    request_ops: Vec<HeaderOp>,
    body: Option<Bytes>,
}

/// The agents of one request, in route order.
pub(crate) struct AgentChain {
    state: Arc<ProxyState>,
    members: Vec<Member>,
    response_ops: Vec<HeaderOp>,
    end_reason: CancelReason,
    /// The block or redirect that stopped the request, logged by [`AgentChain::log_stop`].
    stopped: Option<Box<StopRecord>>,
}

/// Why an agent gave no verdict: the `reason` label of `agent_failures` and the `reason` field
/// of the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoVerdict {
    /// The event got no reply (no connection, timeout, lost connection…).
    Dispatch(DispatchFailure),
    /// The agent answered with a RequestError.
    AgentError,
    /// The agent's decision cannot be applied.
    InvalidDecision,
}

impl NoVerdict {
    fn as_str(self) -> &'static str {
        match self {
            NoVerdict::Dispatch(failure) => failure.as_str(),
            NoVerdict::AgentError => "agent_error",
            NoVerdict::InvalidDecision => "invalid_decision",
        }
    }
}

impl AgentChain {
    /// The chain for a route consulting `agents`; `Err` (fail closed) if one is not configured.
    pub(crate) fn new(
        state: Arc<ProxyState>,
        config: &Config,
        agents: &[String],
    ) -> Result<AgentChain, Stop> {
        let mut members = Vec::with_capacity(agents.len());
        for name in agents {
            let Some(agent) = config.agent(name) else {
                tracing::error!(agent = %name, "route refers to an agent that is not configured");
                return Err(Stop::Unavailable);
            };
            members.push(Member {
                name: agent.name.clone(),
                events: agent.events,
                timeout: agent.timeout,
                failure_mode: agent.failure_mode,
                request: None,
                open: false,
                out: false,
            });
        }
        Ok(AgentChain {
            state,
            members,
            response_ops: Vec::new(),
            end_reason: CancelReason::ClientDisconnected,
            stopped: None,
        })
    }

    /// Logs the block or redirect that stopped the request on `route`, if one did.
    pub(crate) fn log_stop(&self, route: &str) {
        if let Some(record) = &self.stopped {
            record.log(route);
        }
    }

    /// Whether the route consults no agent at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The Cancel reason sent to agents still expecting events if the request ends now.
    pub(crate) fn set_end_reason(&mut self, reason: CancelReason) {
        self.end_reason = reason;
    }

    /// Sends RequestHeaders to each agent that wants them, applying request header operations
    /// to `headers` (which each following agent then sees).
    pub(crate) async fn request_headers(
        &mut self,
        info: &RequestInfo,
        headers: &mut HeaderMap,
    ) -> Result<(), Stop> {
        for i in 0..self.members.len() {
            let member = &mut self.members[i];
            if member.out {
                continue;
            }
            member.open = member.events.request_body && info.has_body;
            if !member.events.request_headers {
                continue;
            }
            let event = Event::RequestHeaders(RequestHeaders {
                request_id: 0,
                method: info.method.clone(),
                uri: info.uri.clone(),
                version: info.version.clone(),
                headers: to_pairs(headers),
                client_addr: info.client_addr.clone(),
                route: info.route.clone(),
                has_body: info.has_body,
            });
            if let Some(answer) = self.ask(i, event).await? {
                self.apply_request_ops(i, headers, &answer.request_ops);
                if answer.last {
                    self.members[i].open = false;
                } else {
                    self.note_continue(i, EventKind::RequestHeaders);
                }
            }
        }
        Ok(())
    }

    /// Whether an agent still wants body chunks of the current phase.
    pub(crate) fn wants_body(&self) -> bool {
        self.members.iter().any(|m| m.open && !m.out)
    }

    /// Sends one body chunk to every agent still open in `phase`, each seeing the previous
    /// one's replacement. Returns the chunk to forward and whether it was replaced. Request
    /// header operations in the replies are applied to `request_headers` when given.
    pub(crate) async fn body_chunk(
        &mut self,
        phase: Phase,
        chunk_index: u64,
        mut data: Bytes,
        is_last: bool,
        mut request_headers: Option<&mut HeaderMap>,
    ) -> Result<(Bytes, bool), Stop> {
        let mut replaced = false;
        for i in 0..self.members.len() {
            if self.members[i].out || !self.members[i].open {
                continue;
            }
            let chunk = BodyChunk {
                request_id: 0,
                chunk_index,
                data: data.clone(),
                is_last,
            };
            let event = match phase {
                Phase::Request => Event::RequestBodyChunk(chunk),
                Phase::Response => Event::ResponseBodyChunk(chunk),
            };
            if let Some(answer) = self.ask(i, event).await? {
                if let Some(headers) = request_headers.as_deref_mut() {
                    self.apply_request_ops(i, headers, &answer.request_ops);
                }
                if let Some(body) = answer.body {
                    replaced |= body != data;
                    data = body;
                }
                if answer.last || is_last {
                    self.members[i].open = false;
                }
            }
        }
        Ok((data, replaced))
    }

    /// Ends the request phase: agents that get no response events are done with the request.
    pub(crate) fn end_request_phase(&mut self) {
        for member in &mut self.members {
            member.open = false;
            if !(member.events.response_headers || member.events.response_body) {
                member.request = None;
            }
        }
    }

    /// Sends ResponseHeaders to each agent that wants them.
    pub(crate) async fn response_headers(
        &mut self,
        status: u16,
        headers: &HeaderMap,
        has_body: bool,
    ) -> Result<(), Stop> {
        for i in 0..self.members.len() {
            let member = &mut self.members[i];
            if member.out {
                continue;
            }
            member.open = member.events.response_body && has_body;
            if !member.events.response_headers {
                continue;
            }
            let event = Event::ResponseHeaders(ResponseHeaders {
                request_id: 0,
                status,
                headers: to_pairs(headers),
                has_body,
            });
            if let Some(answer) = self.ask(i, event).await? {
                if answer.last {
                    self.members[i].open = false;
                } else {
                    self.note_continue(i, EventKind::ResponseHeaders);
                }
            }
        }
        Ok(())
    }

    /// The request completed normally: every agent is done with it.
    pub(crate) fn finish(&mut self) {
        for member in &mut self.members {
            member.open = false;
            member.request = None;
        }
    }

    /// Applies the collected response header operations to the final response.
    /// Collects response header ops for the end of the request, at most `MAX_HEADER_OPS`.
    fn keep_response_ops(&mut self, ops: Vec<HeaderOp>) {
        let room = MAX_HEADER_OPS.saturating_sub(self.response_ops.len());
        self.response_ops.extend(ops.into_iter().take(room));
    }

    pub(crate) fn apply_response_ops(&self, headers: &mut HeaderMap) {
        let skipped = apply_ops(headers, &self.response_ops);
        if skipped > 0 {
            tracing::debug!(
                skipped,
                "invalid or framing response header operations ignored"
            );
        }
    }

    /// Agent `i` answered `continue` to `headers`; the pool decides whether that was the last
    /// event it is sent in the phase (then a mismatch: taken as allow).
    fn note_continue(&self, i: usize, headers: EventKind) {
        let member = &self.members[i];
        // Most continues lead to a body the agent is sent: no need to ask the pool.
        let body_sent = match headers {
            EventKind::ResponseHeaders => member.events.response_body,
            _ => member.events.request_body,
        };
        if body_sent {
            return;
        }
        if let Some(request) = &member.request {
            self.state
                .pool()
                .note_continue(&member.name, request.agent_id(), headers);
        }
    }

    fn apply_request_ops(&self, i: usize, headers: &mut HeaderMap, ops: &[HeaderOp]) {
        let skipped = apply_ops(headers, ops);
        if skipped > 0 {
            tracing::debug!(agent = %self.members[i].name, skipped, "invalid or framing request header operations ignored");
        }
    }

    /// Sends `event` to agent `i` and interprets the reply. `Ok(None)`: the agent failed open.
    async fn ask(&mut self, i: usize, event: Event) -> Result<Option<Answer>, Stop> {
        let name = self.members[i].name.clone();
        let timeout = self.members[i].timeout;
        let mut request = match self.members[i].request.take() {
            Some(request) => request,
            None => match self.state.pool().begin(&name) {
                Ok(request) => request,
                Err(e) => return self.fail(i, NoVerdict::Dispatch(e.reason()), &e.to_string()),
            },
        };
        let started = Instant::now();
        // If the client goes away meanwhile, this future is dropped with `request`, whose drop
        // sends Cancel to the agent.
        let reply = request.send(event, timeout).await;
        self.members[i].request = Some(request);
        let metrics = self.state.metrics().clone();
        let decision = match reply {
            Ok(AgentReply::Decision(decision)) => decision,
            Ok(AgentReply::Error(error)) => {
                metrics.observe_agent_latency(&name, started.elapsed().as_secs_f64());
                let detail = format!("{}: {}", error.code, error.message);
                return self.fail(i, NoVerdict::AgentError, &detail);
            }
            Err(e) => return self.fail(i, NoVerdict::Dispatch(e.reason()), &e.to_string()),
        };
        metrics.record_reply(
            &name,
            decision.action.name(),
            started.elapsed().as_secs_f64(),
        );
        // Allows without an audit record (the fast path) skip the per-rule counter.
        let rule_ids = decision.audit.as_ref().map_or(&[][..], |a| &a.rule_ids[..]);
        let stops = matches!(
            decision.action,
            Action::Block { .. } | Action::Redirect { .. }
        );
        if stops || !rule_ids.is_empty() {
            metrics.record_rule_decision(&name, decision.action.name(), rule_ids);
        }
        let last = match decision.action {
            Action::Allow => true,
            Action::Continue => false,
            Action::Block {
                status,
                body,
                headers,
            } => {
                let record = StopRecord::blocked(&name, status, decision.audit.as_ref());
                self.stopped = Some(Box::new(record));
                self.keep_response_ops(decision.response_headers);
                self.members[i].request = None;
                return Err(Stop::Block {
                    status,
                    body,
                    headers,
                });
            }
            Action::Redirect { location, status } => {
                if http::HeaderValue::from_str(&location).is_err() {
                    return self.fail(
                        i,
                        NoVerdict::InvalidDecision,
                        "redirect location is not a valid header value",
                    );
                }
                let audit = decision.audit.as_ref();
                let record = StopRecord::redirected(&name, status, &location, audit);
                self.stopped = Some(Box::new(record));
                self.keep_response_ops(decision.response_headers);
                self.members[i].request = None;
                return Err(Stop::Redirect { location, status });
            }
        };
        self.keep_response_ops(decision.response_headers);
        Ok(Some(Answer {
            last,
            request_ops: decision.request_headers,
            body: decision.body,
        }))
    }

    /// Agent `i` gave no verdict: fail closed (stop) or open (go on without it).
    fn fail(&mut self, i: usize, why: NoVerdict, detail: &str) -> Result<Option<Answer>, Stop> {
        let reason = why.as_str();
        let member = &mut self.members[i];
        self.state
            .metrics()
            .record_agent_failure(&member.name, reason);
        member.out = true;
        member.open = false;
        member.request = None;
        match member.failure_mode {
            FailureMode::Closed => {
                tracing::warn!(agent = %member.name, reason, detail, "agent gave no verdict; failing closed");
                Err(Stop::Unavailable)
            }
            FailureMode::Open => {
                tracing::warn!(agent = %member.name, reason, detail, "agent gave no verdict; proceeding without it");
                Ok(None)
            }
        }
    }
}

impl Drop for AgentChain {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(request) = member.request.take() {
                request.end(self.end_reason.clone());
            }
        }
    }
}
