//! The dispatch path: every registered connection, grouped by `agent_id` and by logical agent.
//! The pool owns the connection counts (so the per-agent limit is race-free), picks the
//! least-loaded connection for each request, pushes configuration, and drains everything at
//! shutdown. It does not accept sockets or validate registrations; that is [`crate::reverse`].

mod connection;
mod dispatch;
mod health;
mod in_flight;
mod logical;
mod mismatch;
mod reservation;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use sentinel_agent_protocol::io::FINAL_FLUSH_TIMEOUT;
use sentinel_agent_protocol::CancelReason;
use serde_json::Value;

pub use connection::AgentConnection;
pub(crate) use connection::{ConnectionIdentity, ConnectionSettings};
pub use dispatch::{AgentReply, AgentRequest, DispatchError, DispatchFailure, Event};
pub use health::{AgentHealth, AgentSnapshot, ConnectionSnapshot, CounterSnapshot};
pub use logical::LogicalAgent;
pub use mismatch::{EventKind, MismatchCause, NO_LOGICAL_AGENT};
pub(crate) use reservation::ConnectionLimits;

/// Connection behaviour shared by every agent connection.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Ping interval for idle connections; a ping unanswered for as long closes it (default 10 s).
    pub heartbeat_interval: Duration,
    /// Longest a write to an agent may block before the connection is closed (default 10 s).
    pub write_timeout: Duration,
    /// In-flight limit for agents that announce no `max_concurrent_requests` (default 100).
    pub default_max_in_flight: usize,
    /// Upper bound on any connection's in-flight limit, whatever the agent announces
    /// (default 1024).
    pub max_in_flight_limit: usize,
}

impl Default for PoolSettings {
    fn default() -> PoolSettings {
        PoolSettings {
            heartbeat_interval: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            default_max_in_flight: 100,
            max_in_flight_limit: 1024,
        }
    }
}

/// Live agent connections. Cheap to clone; all clones share one pool.
#[derive(Clone)]
pub struct AgentPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    state: RwLock<PoolState>,
    settings: PoolSettings,
    next_connection_number: AtomicU64,
    rotation: AtomicUsize,
    shutting_down: AtomicBool,
    /// Woken when a logical agent may have gained a live connection (see [`AgentPool::changed`]).
    changed: tokio::sync::Notify,
    /// Disagreements between registered agents and the logical agents (locked after `state`).
    mismatches: mismatch::Mismatches,
}

#[derive(Default)]
struct PoolState {
    logical: Vec<LogicalAgent>,
    agents: BTreeMap<String, AgentEntry>,
    /// Logical agent name → the connections serving it.
    members: HashMap<String, Vec<Arc<AgentConnection>>>,
}

/// Connections a pick must skip.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Exclude<'a> {
    /// None.
    Nothing,
    /// The connection with this `assigned_id`.
    Connection(&'a str),
    /// Every connection of this `agent_id` (when one connection of a process is lost, its
    /// siblings are likely going down too).
    Agent(&'a str),
}

impl Exclude<'_> {
    fn excludes(&self, connection: &AgentConnection) -> bool {
        match *self {
            Exclude::Nothing => false,
            Exclude::Connection(id) => connection.assigned_id() == id,
            Exclude::Agent(id) => connection.agent_id() == id,
        }
    }
}

impl PoolState {
    /// Every live connection.
    fn connections(&self) -> Vec<Arc<AgentConnection>> {
        self.agents
            .values()
            .flat_map(|e| e.connections.iter().cloned())
            .collect()
    }

    /// Whether `agent_id` has a live connection.
    fn has_live(&self, agent_id: &str) -> bool {
        self.agents
            .get(agent_id)
            .is_some_and(|e| !e.connections.is_empty())
    }

    /// Drops the entry of an id with no connection and no reservation left.
    fn forget_if_empty(&mut self, agent_id: &str) {
        if self
            .agents
            .get(agent_id)
            .is_some_and(|e| e.connections.is_empty() && e.reserved == 0)
        {
            self.agents.remove(agent_id);
        }
    }
}

#[derive(Default)]
struct AgentEntry {
    connections: Vec<Arc<AgentConnection>>,
    /// Registrations accepted by the limit check but not yet live.
    reserved: usize,
}

impl AgentPool {
    /// An empty pool serving `logical` agents.
    pub fn new(logical: Vec<LogicalAgent>, settings: PoolSettings) -> AgentPool {
        let state = PoolState {
            members: logical
                .iter()
                .map(|l| (l.name.clone(), Vec::new()))
                .collect(),
            logical,
            agents: BTreeMap::new(),
        };
        AgentPool {
            inner: Arc::new(PoolInner {
                state: RwLock::new(state),
                settings,
                next_connection_number: AtomicU64::new(1),
                rotation: AtomicUsize::new(0),
                shutting_down: AtomicBool::new(false),
                changed: tokio::sync::Notify::new(),
                mismatches: mismatch::Mismatches::default(),
            }),
        }
    }

    /// The connection settings.
    pub fn settings(&self) -> &PoolSettings {
        &self.inner.settings
    }

    fn read(&self) -> RwLockReadGuard<'_, PoolState> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, PoolState> {
        self.inner.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration pushed to `agent_id` at registration.
    pub fn config_for(&self, agent_id: &str) -> Option<Value> {
        logical::config_for(&self.read().logical, agent_id).cloned()
    }

    /// Starts a request on the least-loaded available connection of `logical_agent`.
    pub fn begin(&self, logical_agent: &str) -> Result<AgentRequest, DispatchError> {
        let connection = self.acquire(logical_agent, Exclude::Nothing)?;
        Ok(AgentRequest::new(
            self.clone(),
            logical_agent.to_string(),
            connection,
        ))
    }

    /// Takes an in-flight slot on the least-loaded available connection, skipping `exclude`.
    /// Ties are broken by rotation so idle connections share the load.
    pub(crate) fn acquire(
        &self,
        logical_agent: &str,
        exclude: Exclude<'_>,
    ) -> Result<Arc<AgentConnection>, DispatchError> {
        let state = self.read();
        let members = state
            .members
            .get(logical_agent)
            .ok_or_else(|| DispatchError::UnknownAgent(logical_agent.to_string()))?;
        if members.is_empty() {
            return Err(DispatchError::NoConnection(logical_agent.to_string()));
        }
        let start = self.inner.rotation.fetch_add(1, Ordering::Relaxed) % members.len();
        loop {
            let mut usable = members[start..]
                .iter()
                .chain(&members[..start])
                .filter(|c| c.is_available() && !exclude.excludes(c))
                .peekable();
            if usable.peek().is_none() {
                return Err(DispatchError::NoConnection(logical_agent.to_string()));
            }
            let Some(best) = usable
                .filter(|c| c.has_free_slot())
                .min_by_key(|c| c.in_flight())
            else {
                return Err(DispatchError::Saturated(logical_agent.to_string()));
            };
            // Fails only if another caller took its last slot meanwhile; then look again.
            if best.try_acquire_slot() {
                return Ok(best.clone());
            }
        }
    }

    fn insert(&self, connection: &Arc<AgentConnection>) {
        let mut state = self.write();
        let state = &mut *state;
        let entry = state
            .agents
            .entry(connection.agent_id().to_string())
            .or_default();
        entry.reserved = entry.reserved.saturating_sub(1);
        entry.connections.push(connection.clone());
        for logical in &state.logical {
            if logical.serves(connection.agent_id()) {
                if let Some(members) = state.members.get_mut(&logical.name) {
                    members.push(connection.clone());
                }
            }
        }
        let agent_id = connection.agent_id();
        for finding in
            mismatch::registration_findings(agent_id, connection.capabilities(), &state.logical)
        {
            self.inner
                .mismatches
                .note(agent_id, finding, &state.logical);
        }
        self.announce_change();
    }

    fn remove(&self, connection: &Arc<AgentConnection>, reason: &str) {
        let mut state = self.write();
        let agent_id = connection.agent_id();
        let mut removed = false;
        if let Some(entry) = state.agents.get_mut(agent_id) {
            let before = entry.connections.len();
            entry.connections.retain(|c| !Arc::ptr_eq(c, connection));
            removed = entry.connections.len() != before;
        }
        state.forget_if_empty(agent_id);
        if !state.has_live(agent_id) {
            self.inner.mismatches.forget(agent_id);
        }
        for members in state.members.values_mut() {
            members.retain(|c| !Arc::ptr_eq(c, connection));
        }
        if removed {
            tracing::info!(assigned_id = %connection.assigned_id(), %reason, "agent connection removed from pool");
        }
    }

    /// Replaces the logical agents (on configuration reload) and sends a ConfigUpdate to every
    /// live connection whose pushed config changed. Returns how many were sent.
    pub fn set_logical_agents(&self, logical: Vec<LogicalAgent>) -> usize {
        let pushes: Vec<(Arc<AgentConnection>, Option<Value>)> = {
            let mut state = self.write();
            let all = state.connections();
            state.members = logical
                .iter()
                .map(|l| {
                    let serving = all.iter().filter(|c| l.serves(c.agent_id())).cloned();
                    (l.name.clone(), serving.collect())
                })
                .collect();
            let pushes = all
                .into_iter()
                .map(|c| {
                    let config = logical::config_for(&logical, c.agent_id()).cloned();
                    (c, config)
                })
                .collect();
            state.logical = logical;
            self.reevaluate_mismatches(&state);
            pushes
        };
        self.announce_change();
        pushes
            .iter()
            .filter(|(connection, config)| connection.push_config(config.as_ref()))
            .count()
    }

    /// Resolves at the next change that may give a logical agent a live connection: one joined,
    /// the logical agents were replaced, or [`AgentPool::announce_change`] was called. Enable
    /// the future before looking at the pool, so a change in between is not missed.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.changed.notified()
    }

    /// Wakes every [`AgentPool::changed`] waiter, e.g. after a new configuration changed which
    /// logical agents routes consult.
    pub(crate) fn announce_change(&self) {
        self.inner.changed.notify_waiters();
    }

    pub(crate) fn all_connections(&self) -> Vec<Arc<AgentConnection>> {
        self.read().connections()
    }

    /// Whether `logical_agent` has a live connection that takes new requests.
    pub fn has_available(&self, logical_agent: &str) -> bool {
        self.read()
            .members
            .get(logical_agent)
            .is_some_and(|members| members.iter().any(|c| c.is_available()))
    }

    /// Agent ids the pool keeps an entry for, live or reserved. With no connection live and no
    /// registration in progress it is zero; `crate::fuzzing` checks that nothing leaks.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn tracked_agent_ids(&self) -> usize {
        self.read().agents.len()
    }

    /// Live connections in the pool.
    pub fn connection_count(&self) -> usize {
        self.read()
            .agents
            .values()
            .map(|e| e.connections.len())
            .sum()
    }

    /// Health of one agent id, or `None` if it has no live connection.
    pub fn get_health(&self, agent_id: &str) -> Option<AgentHealth> {
        let state = self.read();
        let entry = state.agents.get(agent_id)?;
        if entry.connections.is_empty() {
            return None;
        }
        let connections: Vec<_> = entry.connections.iter().map(|c| c.snapshot()).collect();
        Some(health::summarize(&connections))
    }

    /// Every registered agent id with its connections and counters.
    pub fn snapshot(&self) -> Vec<AgentSnapshot> {
        let state = self.read();
        state
            .agents
            .iter()
            .filter(|(_, e)| !e.connections.is_empty())
            .map(|(agent_id, entry)| AgentSnapshot {
                agent_id: agent_id.clone(),
                metadata: entry
                    .connections
                    .last()
                    .map(|c| c.metadata().clone())
                    .unwrap_or_default(),
                logical_agents: state
                    .logical
                    .iter()
                    .filter(|l| l.serves(agent_id))
                    .map(|l| l.name.clone())
                    .collect(),
                connections: entry.connections.iter().map(|c| c.snapshot()).collect(),
            })
            .collect()
    }

    /// Sends CancelAll on every connection and fails every request awaiting a reply.
    pub fn cancel_all(&self, reason: impl Into<CancelReason>) {
        let reason = reason.into();
        for connection in self.all_connections() {
            connection.cancel_all(reason.clone());
        }
    }

    /// Gracefully drains one connection: GoAway now, close once its requests are done or
    /// `grace` has passed. Returns `false` if no such connection is live.
    pub async fn drain(&self, assigned_id: &str, grace: Duration) -> bool {
        let Some(connection) = self
            .all_connections()
            .into_iter()
            .find(|c| c.assigned_id() == assigned_id)
        else {
            return false;
        };
        connection.start_draining("drain", grace);
        wait_for_idle(std::slice::from_ref(&connection), grace).await;
        connection.close();
        true
    }

    /// Refuses new registrations, sends GoAway to every connection, lets in-flight requests
    /// finish within `grace`, then closes every connection.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutting_down.store(true, Ordering::Release);
        let connections = self.all_connections();
        tracing::info!(
            connections = connections.len(),
            ?grace,
            "draining agent connections"
        );
        for connection in &connections {
            connection.start_draining("shutdown", grace);
        }
        wait_for_idle(&connections, grace).await;
        let connections = self.all_connections();
        for connection in &connections {
            connection.close();
        }
        // The GoAways queued above go out before the process may exit; each writer gives up
        // on its last frames after its final-flush bound, so this wait is bounded too.
        let written = futures::future::join_all(connections.iter().map(|c| c.written()));
        let _ = tokio::time::timeout(WRITERS_FINISHING, written).await;
    }

    /// Whether [`AgentPool::shutdown`] has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }
}

/// Longest [`AgentPool::shutdown`] waits for the writers after closing: a writer's own bound on
/// its final flush, plus as much again for scheduling.
const WRITERS_FINISHING: Duration = FINAL_FLUSH_TIMEOUT.saturating_mul(2);

async fn wait_for_idle(connections: &[Arc<AgentConnection>], grace: Duration) {
    futures::future::join_all(connections.iter().map(|c| c.idle_or_closed(grace))).await;
}
