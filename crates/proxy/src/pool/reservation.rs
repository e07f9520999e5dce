//! Admission into the pool: the connection limits (per `agent_id` and in total), the slot a
//! registration holds between the limit check and going live, and turning it into a running
//! [`AgentConnection`] on the registered stream. Validating the registration itself is
//! [`crate::reverse`]'s job.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use sentinel_agent_protocol::io::FrameStream;
use sentinel_agent_protocol::RegistrationErrorCode;
use serde_json::Value;

use super::{AgentConnection, AgentPool, ConnectionIdentity, ConnectionSettings};
use crate::transport::BoxedStream;

/// How many agent connections the pool admits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Live connections per `agent_id`.
    pub per_agent: usize,
    /// Live connections of all agents together.
    pub total: usize,
}

/// Why the pool refused a new connection.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub(crate) enum ReserveError {
    #[error("the proxy is shutting down")]
    ShuttingDown,
    #[error(
        "this agent_id already has {0} connections, the most allowed (max-connections-per-agent)"
    )]
    AgentLimit(usize),
    #[error(
        "the proxy already has {0} agent connections, the most allowed (max-agent-connections)"
    )]
    TotalLimit(usize),
}

impl ReserveError {
    /// The registration error code an agent is answered with.
    pub(crate) fn code(self) -> RegistrationErrorCode {
        match self {
            ReserveError::ShuttingDown => RegistrationErrorCode::ShuttingDown,
            ReserveError::AgentLimit(_) | ReserveError::TotalLimit(_) => {
                RegistrationErrorCode::ConnectionLimit
            }
        }
    }
}

impl AgentPool {
    /// Check 6 of PROTOCOL.md §3: reserves one of `agent_id`'s `limit` connection slots.
    /// Reservation and count happen under one lock, so concurrent registrations of the same id
    /// can never exceed the limit.
    pub(crate) fn reserve(
        &self,
        agent_id: &str,
        limits: ConnectionLimits,
    ) -> Result<Reservation, ReserveError> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(ReserveError::ShuttingDown);
        }
        let mut state = self.write();
        let total: usize = state
            .agents
            .values()
            .map(|e| e.connections.len() + e.reserved)
            .sum();
        if total >= limits.total {
            return Err(ReserveError::TotalLimit(limits.total));
        }
        let entry = state.agents.entry(agent_id.to_string()).or_default();
        if entry.connections.len() + entry.reserved >= limits.per_agent {
            state.forget_if_empty(agent_id);
            return Err(ReserveError::AgentLimit(limits.per_agent));
        }
        entry.reserved += 1;
        let n = self
            .inner
            .next_connection_number
            .fetch_add(1, Ordering::Relaxed);
        Ok(Reservation {
            pool: self.clone(),
            agent_id: agent_id.to_string(),
            assigned_id: format!("{agent_id}-conn-{n}"),
            pending: true,
        })
    }
}

/// A connection slot held between the limit check and the connection going live. Dropping it
/// unused gives the slot back.
pub(crate) struct Reservation {
    pool: AgentPool,
    agent_id: String,
    assigned_id: String,
    pending: bool,
}

impl Reservation {
    pub(crate) fn assigned_id(&self) -> &str {
        &self.assigned_id
    }

    /// Turns the reservation into a live connection in the pool, on the `stream` the
    /// registration was read from (with any frames the agent sent behind it still buffered).
    pub(crate) fn activate(
        mut self,
        identity: ConnectionIdentity,
        config: Option<Value>,
        stream: FrameStream<BoxedStream>,
        max_frame_length: usize,
    ) -> Arc<AgentConnection> {
        let settings = ConnectionSettings {
            heartbeat_interval: self.pool.inner.settings.heartbeat_interval,
            write_timeout: self.pool.inner.settings.write_timeout,
            max_frame_length,
            default_max_in_flight: self.pool.inner.settings.default_max_in_flight,
            max_in_flight_limit: self.pool.inner.settings.max_in_flight_limit,
        };
        let pool = self.pool.clone();
        let connection =
            AgentConnection::start(identity, config, stream, settings, move |conn, why| {
                pool.remove(conn, why)
            });
        self.pending = false;
        self.pool.insert(&connection);
        tracing::info!(assigned_id = %connection.assigned_id(), transport = %connection.snapshot().transport, "agent connection added to pool");
        // It may have closed before it was inserted; its own removal then found nothing.
        if connection.is_closed() || self.pool.is_shutting_down() {
            connection.close();
            self.pool.remove(&connection, "closed during registration");
        }
        connection
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.pending {
            return;
        }
        let mut state = self.pool.write();
        if let Some(entry) = state.agents.get_mut(&self.agent_id) {
            entry.reserved = entry.reserved.saturating_sub(1);
        }
        state.forget_if_empty(&self.agent_id);
    }
}
