//! Counters and point-in-time views of the pool: per connection, per agent id, and the health
//! summary `get_health` returns. Serializable so the admin API can show them as they are.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};

use super::dispatch::AgentReply;
use crate::transport::Transport;

/// Outcome counters of one connection.
#[derive(Debug, Default)]
pub(crate) struct ConnectionCounters {
    decisions: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    late_replies: AtomicU64,
}

impl ConnectionCounters {
    pub(crate) fn record_reply(&self, reply: &AgentReply) {
        let counter = match reply {
            AgentReply::Decision(_) => &self.decisions,
            AgentReply::Error(_) => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_timeout(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_late_reply(&self) {
        self.late_replies.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            decisions: self.decisions.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            late_replies: self.late_replies.load(Ordering::Relaxed),
        }
    }
}

/// Outcome counts of one connection (or the sum over several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    /// Events answered with a Decision.
    pub decisions: u64,
    /// Events answered with a RequestError.
    pub errors: u64,
    /// Events not answered in time.
    pub timeouts: u64,
    /// Replies that arrived for a cancelled or unknown request and were dropped.
    pub late_replies: u64,
}

impl CounterSnapshot {
    fn add(mut self, other: CounterSnapshot) -> CounterSnapshot {
        self.decisions += other.decisions;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.late_replies += other.late_replies;
        self
    }

    /// Decisions over all answered-or-failed events; 1.0 before the first event.
    pub fn success_rate(&self) -> f64 {
        let total = self.decisions + self.errors + self.timeouts;
        if total == 0 {
            1.0
        } else {
            self.decisions as f64 / total as f64
        }
    }
}

/// One live connection as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionSnapshot {
    /// `<agent_id>-conn-<n>`.
    pub assigned_id: String,
    /// `uds`, `tcp` or `tls`.
    pub transport: Transport,
    /// The peer's address.
    pub peer: String,
    /// `json` or `msgpack`.
    pub encoding: &'static str,
    /// Requests in flight.
    pub in_flight: usize,
    /// The connection's concurrency limit.
    pub max_in_flight: usize,
    /// Whether the connection is draining (GoAway sent or received).
    pub draining: bool,
    /// Seconds since registration.
    pub connected_secs: u64,
    /// Outcome counters.
    #[serde(flatten)]
    pub counters: CounterSnapshot,
}

/// One registered agent id with its connections.
#[derive(Debug, Clone, Serialize)]
pub struct AgentSnapshot {
    /// The registered id.
    pub agent_id: String,
    /// The metadata sent by its most recent connection.
    pub metadata: Map<String, Value>,
    /// Logical agents this id serves.
    pub logical_agents: Vec<String>,
    /// Live connections.
    pub connections: Vec<ConnectionSnapshot>,
}

/// Health summary of one agent id, as `AgentPool::get_health` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentHealth {
    /// Live connections of this id.
    pub total_connections: usize,
    /// Of those, connections the agent dialled in (all of them, in this proxy).
    pub reverse_connections: usize,
    /// Requests in flight over all its connections.
    pub in_flight: usize,
    /// Decisions over events sent, across live connections.
    pub success_rate: f64,
    /// Summed outcome counters.
    pub counters: CounterSnapshot,
}

pub(crate) fn summarize(connections: &[ConnectionSnapshot]) -> AgentHealth {
    let counters = connections
        .iter()
        .fold(CounterSnapshot::default(), |sum, c| sum.add(c.counters));
    AgentHealth {
        total_connections: connections.len(),
        reverse_connections: connections.len(),
        in_flight: connections.iter().map(|c| c.in_flight).sum(),
        success_rate: counters.success_rate(),
        counters,
    }
}
