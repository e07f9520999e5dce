//! One registered agent connection: who it is, its in-flight slots, whether it is draining or
//! closed, and the two tasks that own its stream halves. The reply map is in [`replies`], the
//! reader task (frames from the agent, heartbeat, GoAway) in [`reader`], the outbound queue and
//! the writer task in [`writer`]. Choosing a connection and removing it from the pool is the
//! pool's business.

mod reader;
mod replies;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sentinel_agent_protocol::io::FrameStream;
use sentinel_agent_protocol::{Capabilities, Encoding, Frame};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::dispatch::AgentReply;
use super::health::{ConnectionCounters, ConnectionSnapshot};
use super::in_flight::InFlight;
use crate::transport::{BoxedStream, Transport};

/// Frames queued for one connection's writer before senders wait.
const OUTBOUND_QUEUE: usize = 256;

/// Who a registered connection is and how it talks.
pub(crate) struct ConnectionIdentity {
    pub assigned_id: String,
    pub agent_id: String,
    pub transport: Transport,
    pub peer: String,
    pub capabilities: Capabilities,
    pub metadata: Map<String, Value>,
    pub encoding: Encoding,
}

/// Timing and size limits of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionSettings {
    pub heartbeat_interval: Duration,
    pub write_timeout: Duration,
    pub max_frame_length: usize,
    pub default_max_in_flight: usize,
    pub max_in_flight_limit: usize,
}

/// A live, registered agent connection. Shared by the pool and by in-flight requests.
pub struct AgentConnection {
    identity: ConnectionIdentity,
    connected_at: SystemTime,
    max_in_flight: usize,
    in_flight: InFlight,
    next_request_id: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<AgentReply>>>,
    outbound: mpsc::Sender<Frame>,
    draining: AtomicBool,
    closed: CancellationToken,
    /// Cancelled once the writer task has ended (its last frames sent or given up on).
    written: CancellationToken,
    config: Mutex<Option<Value>>,
    counters: ConnectionCounters,
}

impl AgentConnection {
    /// Creates the connection on the registered `stream` (frames the agent sent behind its
    /// registration are still in its buffer and are read first) and starts its reader and
    /// writer tasks. `on_close` runs once, after the connection has failed every waiting
    /// request.
    pub(crate) fn start(
        identity: ConnectionIdentity,
        config: Option<Value>,
        mut stream: FrameStream<BoxedStream>,
        settings: ConnectionSettings,
        on_close: impl FnOnce(&Arc<AgentConnection>, &str) + Send + 'static,
    ) -> Arc<AgentConnection> {
        let (outbound, outbound_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let max_in_flight = identity
            .capabilities
            .max_concurrent_requests
            .map_or(settings.default_max_in_flight, |n| n as usize)
            .clamp(1, settings.max_in_flight_limit);
        let connection = Arc::new(AgentConnection {
            identity,
            connected_at: SystemTime::now(),
            max_in_flight,
            in_flight: InFlight::default(),
            next_request_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            outbound,
            draining: AtomicBool::new(false),
            closed: CancellationToken::new(),
            written: CancellationToken::new(),
            config: Mutex::new(config),
            counters: ConnectionCounters::default(),
        });
        // The registration had its own, smaller limit.
        stream.set_max_frame_length(settings.max_frame_length);
        let (frames_in, frames_out) = stream.split();
        tokio::spawn(writer::write_loop(
            connection.clone(),
            outbound_rx,
            frames_out,
            settings.write_timeout,
        ));
        tokio::spawn(reader::read_loop(
            connection.clone(),
            frames_in,
            settings.heartbeat_interval,
            on_close,
        ));
        connection
    }

    /// `<agent_id>-conn-<n>`.
    pub fn assigned_id(&self) -> &str {
        &self.identity.assigned_id
    }

    /// The registering agent's id.
    pub fn agent_id(&self) -> &str {
        &self.identity.agent_id
    }

    /// The negotiated payload encoding.
    pub fn encoding(&self) -> Encoding {
        self.identity.encoding
    }

    /// What the agent announced.
    pub fn capabilities(&self) -> &Capabilities {
        &self.identity.capabilities
    }

    /// Requests in flight right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Whether new requests may be started here.
    pub fn is_available(&self) -> bool {
        !self.closed.is_cancelled() && !self.draining.load(Ordering::Acquire)
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves once the connection has closed.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    pub(crate) fn try_acquire_slot(&self) -> bool {
        self.in_flight.try_acquire(self.max_in_flight)
    }

    pub(crate) fn has_free_slot(&self) -> bool {
        self.in_flight() < self.max_in_flight
    }

    pub(crate) fn release_slot(&self) {
        self.in_flight.release();
    }

    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Resolves once no request is in flight, the connection closed, or `grace` passed.
    pub(crate) async fn idle_or_closed(&self, grace: Duration) {
        let idle_or_closed = async {
            tokio::select! {
                _ = self.in_flight.zero() => {}
                _ = self.closed.cancelled() => {}
            }
        };
        // Elapsed grace is an answer too: the caller closes the connection either way.
        let _ = tokio::time::timeout(grace, idle_or_closed).await;
    }

    /// Closes the connection: new sends fail, every waiting request fails at once.
    pub(crate) fn close(&self) {
        self.closed.cancel();
        self.forget_all_replies();
    }

    /// Resolves once the writer task has ended: after [`AgentConnection::close`], what was
    /// still queued (a GoAway) has been written, within the writer's final-flush bound. A
    /// process about to exit waits for this, or its last frames could be lost with it.
    pub(crate) async fn written(&self) {
        self.written.cancelled().await
    }

    pub(crate) fn record_reply(&self, reply: &AgentReply) {
        self.counters.record_reply(reply);
    }

    pub(crate) fn record_timeout(&self) {
        self.counters.record_timeout();
    }

    pub(crate) fn metadata(&self) -> &Map<String, Value> {
        &self.identity.metadata
    }

    pub(crate) fn snapshot(&self) -> ConnectionSnapshot {
        ConnectionSnapshot {
            assigned_id: self.identity.assigned_id.clone(),
            transport: self.identity.transport,
            peer: self.identity.peer.clone(),
            encoding: self.identity.encoding.as_str(),
            in_flight: self.in_flight(),
            max_in_flight: self.max_in_flight,
            draining: self.draining.load(Ordering::Acquire),
            connected_secs: self.connected_at.elapsed().map_or(0, |d| d.as_secs()),
            counters: self.counters.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests;
