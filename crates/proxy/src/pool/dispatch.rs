//! Sending one request's events to an agent and awaiting the replies: [`AgentRequest`] holds a
//! slot on the chosen connection for the life of the request, correlates replies by
//! `request_id`, applies the per-event timeout, cancels on drop, and retries an event once on
//! another connection of the same logical agent when its connection is lost. How an event is
//! framed is the protocol crate's [`Message`]; this module only fills in its `request_id`.

use std::sync::Arc;
use std::time::Duration;

use sentinel_agent_protocol::{
    BodyChunk, CancelReason, Decision, Frame, Message, RequestError, RequestHeaders,
    ResponseHeaders,
};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::connection::AgentConnection;
use super::{AgentPool, Exclude};

/// An event the proxy sends about one request. Its `request_id` is set by the connection.
#[derive(Debug, Clone)]
pub enum Event {
    /// The request's headers.
    RequestHeaders(RequestHeaders),
    /// A chunk of the request body.
    RequestBodyChunk(BodyChunk),
    /// The upstream's response headers.
    ResponseHeaders(ResponseHeaders),
    /// A chunk of the response body.
    ResponseBodyChunk(BodyChunk),
}

impl Event {
    /// Header events may be retried on another connection: body chunks may not, since the
    /// other agent never saw the start of that body.
    fn may_retry_elsewhere(&self) -> bool {
        matches!(self, Event::RequestHeaders(_) | Event::ResponseHeaders(_))
    }
}

impl From<Event> for Message {
    fn from(event: Event) -> Message {
        match event {
            Event::RequestHeaders(e) => Message::from(e),
            Event::RequestBodyChunk(c) => Message::RequestBodyChunk(c),
            Event::ResponseHeaders(e) => Message::from(e),
            Event::ResponseBodyChunk(c) => Message::ResponseBodyChunk(c),
        }
    }
}

/// What an agent answered to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentReply {
    /// A Decision.
    Decision(Decision),
    /// The agent could not process the event.
    Error(RequestError),
}

/// Why an event got no reply. The caller applies the logical agent's failure mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// No logical agent of that name is configured.
    #[error("no logical agent named {0:?} is configured")]
    UnknownAgent(String),
    /// The logical agent has no live, non-draining connection.
    #[error("agent {0:?} has no live connection")]
    NoConnection(String),
    /// Every live connection of the agent is at its `max_concurrent_requests`.
    #[error("every connection of agent {0:?} is at its concurrency limit")]
    Saturated(String),
    /// No reply within the timeout; a Cancel was sent.
    #[error("agent {agent:?} did not answer within {timeout:?}")]
    Timeout {
        /// The logical agent.
        agent: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The connection closed before the reply came, and no other connection could take over.
    #[error("the connection to agent {0:?} was lost before it answered")]
    ConnectionLost(String),
    /// The request was cancelled on the proxy's side (CancelAll) before the agent answered.
    #[error("the request to agent {0:?} was cancelled")]
    Cancelled(String),
    /// The event could not be encoded (a bug).
    #[error("could not encode the event: {0}")]
    Encode(String),
}

impl DispatchError {
    /// What kind of failure this is, without its details.
    pub fn reason(&self) -> DispatchFailure {
        match self {
            DispatchError::UnknownAgent(_) => DispatchFailure::UnknownAgent,
            DispatchError::NoConnection(_) => DispatchFailure::NoConnection,
            DispatchError::Saturated(_) => DispatchFailure::Saturated,
            DispatchError::Timeout { .. } => DispatchFailure::Timeout,
            DispatchError::ConnectionLost(_) => DispatchFailure::ConnectionLost,
            DispatchError::Cancelled(_) => DispatchFailure::Cancelled,
            DispatchError::Encode(_) => DispatchFailure::Encode,
        }
    }

    /// Whether the failed event may be sent again on another connection of the same logical
    /// agent (if the event itself allows it, see [`AgentRequest::send`]).
    pub fn may_retry_elsewhere(&self) -> bool {
        self.reason().may_retry_elsewhere()
    }
}

/// The kind of a [`DispatchError`]: its `reason` label in metrics and logs, and whether the
/// event may go to another connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DispatchFailure {
    /// See [`DispatchError::UnknownAgent`].
    UnknownAgent,
    /// See [`DispatchError::NoConnection`].
    NoConnection,
    /// See [`DispatchError::Saturated`].
    Saturated,
    /// See [`DispatchError::Timeout`].
    Timeout,
    /// See [`DispatchError::ConnectionLost`].
    ConnectionLost,
    /// See [`DispatchError::Cancelled`].
    Cancelled,
    /// See [`DispatchError::Encode`].
    Encode,
}

impl DispatchFailure {
    /// The label, e.g. `connection_lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            DispatchFailure::UnknownAgent => "unknown_agent",
            DispatchFailure::NoConnection => "no_connection",
            DispatchFailure::Saturated => "saturated",
            DispatchFailure::Timeout => "timeout",
            DispatchFailure::ConnectionLost => "connection_lost",
            DispatchFailure::Cancelled => "cancelled",
            DispatchFailure::Encode => "encode",
        }
    }

    /// Only a lost connection lets the event go elsewhere: the agent never answered and can
    /// no longer be waited for. After a timeout the agent may still be working on the event
    /// (it was sent Cancel); a missing, saturated or unknown agent was already looked for on
    /// every connection; a cancelled request is over; an event that cannot be encoded cannot
    /// be encoded for another connection either.
    pub fn may_retry_elsewhere(self) -> bool {
        matches!(self, DispatchFailure::ConnectionLost)
    }
}

impl std::fmt::Display for DispatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One HTTP request's conversation with one logical agent.
///
/// Holds an in-flight slot on its connection until dropped. Dropping it while an event is
/// awaiting its reply sends Cancel to the agent.
pub struct AgentRequest {
    pool: AgentPool,
    logical: String,
    connection: Arc<AgentConnection>,
    request_id: u64,
    /// Set once an event failed: the agent may still answer it later, and that late answer
    /// must never be taken for the reply to a following event.
    failed: Option<DispatchError>,
}

impl AgentRequest {
    pub(crate) fn new(pool: AgentPool, logical: String, connection: Arc<AgentConnection>) -> Self {
        let request_id = connection.next_request_id();
        AgentRequest {
            pool,
            logical,
            connection,
            request_id,
            failed: None,
        }
    }

    /// The connection currently serving this request.
    pub fn assigned_id(&self) -> &str {
        self.connection.assigned_id()
    }

    /// The registered agent id of that connection.
    pub fn agent_id(&self) -> &str {
        self.connection.agent_id()
    }

    /// The `request_id` on that connection.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// Sends `event` and waits up to `timeout` for the agent's reply. If the connection is lost
    /// meanwhile, a header event is sent once more on another live connection of the same
    /// logical agent, within what is left of `timeout`. After a failure the request is over for
    /// this agent: later calls return the same error.
    pub async fn send(
        &mut self,
        event: Event,
        timeout: Duration,
    ) -> Result<AgentReply, DispatchError> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        let deadline = Instant::now() + timeout;
        let event_may_move = event.may_retry_elsewhere();
        let mut message = Message::from(event);
        let mut retried = false;
        let outcome = loop {
            let frame = self.encode(&mut message)?;
            match self.attempt(frame, deadline, timeout).await {
                Err(e)
                    if !retried
                        && e.may_retry_elsewhere()
                        && event_may_move
                        && self.move_to_another_connection() =>
                {
                    retried = true;
                }
                outcome => break outcome,
            }
        };
        if let Err(e) = &outcome {
            self.failed = Some(e.clone());
        }
        outcome
    }

    /// Frames `message` for the current connection, under this request's id on it.
    fn encode(&self, message: &mut Message) -> Result<Frame, DispatchError> {
        if let Some(request_id) = message.request_id_mut() {
            *request_id = self.request_id;
        }
        message
            .to_frame(self.connection.encoding())
            .map_err(|e| DispatchError::Encode(e.to_string()))
    }

    async fn attempt(
        &self,
        frame: Frame,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<AgentReply, DispatchError> {
        let lost = || DispatchError::ConnectionLost(self.logical.clone());
        let (reply_tx, reply_rx) = oneshot::channel();
        if !self.connection.expect_reply(self.request_id, reply_tx) {
            return Err(lost());
        }
        let timed_out = || {
            self.connection.record_timeout();
            if self.connection.forget_reply(self.request_id) {
                self.connection
                    .send_cancel(self.request_id, CancelReason::Timeout);
            }
            DispatchError::Timeout {
                agent: self.logical.clone(),
                timeout,
            }
        };
        // A full queue (an agent that stopped reading) must not hold the caller past its timeout.
        match tokio::time::timeout_at(deadline, self.connection.send_frame(frame)).await {
            Ok(true) => {}
            Ok(false) => {
                self.connection.forget_reply(self.request_id);
                return Err(lost());
            }
            Err(_elapsed) => return Err(timed_out()),
        }
        match tokio::time::timeout_at(deadline, reply_rx).await {
            Ok(Ok(reply)) => {
                self.connection.record_reply(&reply);
                Ok(reply)
            }
            Ok(Err(_dropped)) if self.connection.is_closed() => Err(lost()),
            Ok(Err(_dropped)) => Err(DispatchError::Cancelled(self.logical.clone())),
            Err(_elapsed) => Err(timed_out()),
        }
    }

    /// Moves this request to another live connection; `false` if there is none.
    fn move_to_another_connection(&mut self) -> bool {
        let lost = self.connection.assigned_id().to_string();
        // Prefer another agent process: the lost connection's siblings may be dying with it
        // and not yet seen closed. Fall back to any other connection.
        let next = self
            .pool
            .acquire(&self.logical, Exclude::Agent(self.connection.agent_id()))
            .or_else(|_| self.pool.acquire(&self.logical, Exclude::Connection(&lost)));
        let Ok(next) = next else {
            return false;
        };
        tracing::debug!(from = %lost, to = %next.assigned_id(), "retrying event on another connection");
        let old = std::mem::replace(&mut self.connection, next);
        old.release_slot();
        self.request_id = self.connection.next_request_id();
        true
    }

    /// Tells the agent to stop working on this request (if it still is) and ends it.
    pub fn cancel(self, reason: CancelReason) {
        if self.connection.forget_reply(self.request_id) {
            self.connection.send_cancel(self.request_id, reason);
        }
    }

    /// Tells the agent this request is over even if no reply is awaited (it may hold state from
    /// an earlier `continue`, waiting for events that will now never come), and ends it.
    pub fn end(self, reason: CancelReason) {
        self.connection.forget_reply(self.request_id);
        self.connection.send_cancel(self.request_id, reason);
    }
}

impl Drop for AgentRequest {
    fn drop(&mut self) {
        if self.connection.forget_reply(self.request_id) {
            self.connection
                .send_cancel(self.request_id, CancelReason::ClientDisconnected);
        }
        self.connection.release_slot();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_connection_lets_the_event_go_elsewhere() {
        let agent = || "waf".to_string();
        let errors = [
            DispatchError::UnknownAgent(agent()),
            DispatchError::NoConnection(agent()),
            DispatchError::Saturated(agent()),
            DispatchError::Timeout {
                agent: agent(),
                timeout: Duration::from_secs(1),
            },
            DispatchError::ConnectionLost(agent()),
            DispatchError::Cancelled(agent()),
            DispatchError::Encode("bug".into()),
        ];
        let retryable: Vec<_> = errors
            .iter()
            .filter(|e| e.may_retry_elsewhere())
            .map(|e| e.reason().as_str())
            .collect();
        assert_eq!(retryable, ["connection_lost"]);
    }
}
