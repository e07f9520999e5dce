//! One registered agent connection: its identity, its in-flight slots and reply map, and the two
//! tasks that own its socket halves. The reader task decodes frames, routes replies to the
//! waiting callers, answers and sends pings, and removes the connection from the pool when it
//! ends; the writer task batches outbound frames under a write timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::{SinkExt, StreamExt};
use sentinel_agent_protocol::{
    Cancel, CancelAll, Capabilities, ConfigUpdate, Encoding, Frame, FrameCodec, GoAway, Message,
    MessageType, Ping, Pong, ProtocolError,
};
use serde_json::{Map, Value};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use super::dispatch::AgentReply;
use super::health::{ConnectionCounters, ConnectionSnapshot};
use super::in_flight::InFlight;
use crate::transport::{BoxedStream, Transport};

/// Frames queued for one connection's writer before senders wait.
const OUTBOUND_QUEUE: usize = 256;
/// A read or write buffer that grew beyond this is released once empty, so a connection that
/// carried one large body chunk does not keep its memory while idle.
const IDLE_BUFFER: usize = 16 * 1024;
/// Longest grace period honoured when an agent sends GoAway.
const MAX_AGENT_GRACE: Duration = Duration::from_secs(60);

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
    config: Mutex<Option<Value>>,
    counters: ConnectionCounters,
}

impl AgentConnection {
    /// Creates the connection and starts its reader and writer tasks. `on_close` runs once,
    /// after the connection has failed every waiting request.
    pub(crate) fn start(
        identity: ConnectionIdentity,
        config: Option<Value>,
        stream: BoxedStream,
        read_buffer: bytes::BytesMut,
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
            config: Mutex::new(config),
            counters: ConnectionCounters::default(),
        });
        let (read_half, write_half) = tokio::io::split(stream);
        let codec = FrameCodec::with_max_frame_length(settings.max_frame_length);
        let mut reader = FramedRead::new(read_half, codec);
        *reader.read_buffer_mut() = read_buffer;
        let mut writer = FramedWrite::new(write_half, codec);
        // Buffers start empty and grow to the frames actually sent (idle connections stay small).
        *writer.write_buffer_mut() = bytes::BytesMut::new();
        tokio::spawn(write_loop(
            connection.clone(),
            outbound_rx,
            writer,
            settings.write_timeout,
        ));
        tokio::spawn(read_loop(
            connection.clone(),
            reader,
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

    /// Registers the waiter for `request_id`'s reply; `false` if the connection is closed.
    pub(crate) fn expect_reply(&self, request_id: u64, reply: oneshot::Sender<AgentReply>) -> bool {
        let Ok(mut waiting) = self.waiting.lock() else {
            return false;
        };
        waiting.insert(request_id, reply);
        drop(waiting);
        // `close` cancels before it clears the map, so a waiter inserted after the clear sees
        // the cancellation here and is not left waiting for its timeout.
        if self.closed.is_cancelled() {
            self.forget_reply(request_id);
            return false;
        }
        true
    }

    /// Requests waiting for a reply on this connection.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn awaited_replies(&self) -> usize {
        self.waiting.lock().map_or(0, |w| w.len())
    }

    /// Drops the waiter for `request_id`; `true` if a reply was still awaited.
    pub(crate) fn forget_reply(&self, request_id: u64) -> bool {
        self.waiting
            .lock()
            .map(|mut w| w.remove(&request_id).is_some())
            .unwrap_or(false)
    }

    /// Queues a frame; `false` if the connection is closed.
    pub(crate) async fn send_frame(&self, frame: Frame) -> bool {
        tokio::select! {
            sent = self.outbound.send(frame) => sent.is_ok(),
            _ = self.closed.cancelled() => false,
        }
    }

    /// Queues a control message without waiting. Returns `false` (and logs) if it was dropped
    /// because the queue is full or the connection closed.
    pub(crate) fn send_control(&self, message: Message) -> bool {
        let frame = match message.to_frame(self.encoding()) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!(assigned_id = %self.assigned_id(), "cannot encode control frame: {e}");
                return false;
            }
        };
        let queued = self.outbound.try_send(frame).is_ok();
        if !queued && !self.is_closed() {
            tracing::warn!(assigned_id = %self.assigned_id(), message = %message.message_type(), "outbound queue full; control frame dropped");
        }
        queued
    }

    pub(crate) fn send_cancel(&self, request_id: u64, reason: &str) {
        let _ = self.send_control(Message::Cancel(Cancel {
            request_id,
            reason: reason.to_string(),
        }));
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

    /// Stops new requests here and tells the agent with a GoAway.
    pub(crate) fn start_draining(&self, reason: &str, grace: Duration) {
        if !self.draining.swap(true, Ordering::AcqRel) {
            let _ = self.send_control(Message::GoAway(GoAway {
                reason: reason.to_string(),
                grace_ms: grace.as_millis() as u64,
            }));
        }
    }

    /// Sends a ConfigUpdate if `config` differs from what this connection last received.
    /// The new config is recorded only once queued, so a dropped update is sent again on the
    /// next reload.
    pub(crate) fn push_config(&self, config: Option<&Value>) -> bool {
        let Ok(mut current) = self.config.lock() else {
            return false;
        };
        if current.as_ref() == config {
            return false;
        }
        let queued = self.send_control(Message::ConfigUpdate(ConfigUpdate {
            config: config.cloned().unwrap_or(Value::Null),
        }));
        if queued {
            *current = config.cloned();
        }
        queued
    }

    /// Sends CancelAll and fails every request waiting for a reply on this connection.
    pub(crate) fn cancel_all(&self, reason: &str) {
        let _ = self.send_control(Message::CancelAll(CancelAll {
            reason: reason.to_string(),
        }));
        self.forget_all_replies();
    }

    /// Closes the connection: new sends fail, every waiting request fails at once.
    pub(crate) fn close(&self) {
        self.closed.cancel();
        self.forget_all_replies();
    }

    fn forget_all_replies(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            // Dropping the senders wakes every waiter with an error.
            waiting.clear();
        }
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

    fn deliver(&self, request_id: u64, reply: AgentReply) {
        let waiter = self
            .waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(&request_id));
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(reply);
            }
            None => {
                self.counters.record_late_reply();
                tracing::debug!(assigned_id = %self.assigned_id(), request_id, "reply for a cancelled or unknown request dropped");
            }
        }
    }
}

type Reader = FramedRead<ReadHalf<BoxedStream>, FrameCodec>;
type Writer = FramedWrite<WriteHalf<BoxedStream>, FrameCodec>;

async fn read_loop(
    connection: Arc<AgentConnection>,
    mut reader: Reader,
    heartbeat: Duration,
    on_close: impl FnOnce(&Arc<AgentConnection>, &str),
) {
    // Re-armed only when it fires, not per frame: the next moment something may be due.
    let timer = tokio::time::sleep(heartbeat);
    tokio::pin!(timer);
    let mut last_heard = Instant::now();
    let mut unanswered_ping: Option<(u64, Instant)> = None;
    let mut next_nonce = 1u64;
    if let Err(reason) = handle_buffered(&connection, &mut reader, &mut unanswered_ping) {
        connection.close();
        on_close(&connection, &reason);
        return;
    }
    let reason = loop {
        tokio::select! {
            _ = connection.closed.cancelled() => break "closed by the proxy".to_string(),
            item = reader.next() => match item {
                None => break "the agent closed the connection".to_string(),
                Some(Err(e)) => break format!("protocol error: {e}"),
                Some(Ok(frame)) => {
                    last_heard = Instant::now();
                    if let Err(e) = handle_frame(&connection, &frame, &mut unanswered_ping) {
                        break format!("protocol error: {e}");
                    }
                    shrink_if_idle(&mut reader);
                }
            },
            _ = &mut timer => {
                let now = Instant::now();
                let next = match unanswered_ping {
                    Some((_, sent)) if now >= sent + heartbeat => {
                        break format!("no pong within {heartbeat:?}");
                    }
                    Some((_, sent)) => sent + heartbeat,
                    None if now >= last_heard + heartbeat => {
                        unanswered_ping = Some((next_nonce, now));
                        let _ = connection.send_control(Message::Ping(Ping { nonce: next_nonce }));
                        next_nonce += 1;
                        now + heartbeat
                    }
                    None => last_heard + heartbeat,
                };
                timer.as_mut().reset(next);
            }
        }
    };
    connection.close();
    on_close(&connection, &reason);
}

/// Frames the agent sent right behind its registration are already in the read buffer; the
/// reader would not look at them until more bytes arrive, so they are handled first.
fn handle_buffered(
    connection: &Arc<AgentConnection>,
    reader: &mut Reader,
    unanswered_ping: &mut Option<(u64, Instant)>,
) -> Result<(), String> {
    let mut codec = *reader.decoder();
    while let Some(frame) = codec
        .decode(reader.read_buffer_mut())
        .map_err(|e| format!("protocol error: {e}"))?
    {
        handle_frame(connection, &frame, unanswered_ping)
            .map_err(|e| format!("protocol error: {e}"))?;
    }
    Ok(())
}

fn handle_frame(
    connection: &Arc<AgentConnection>,
    frame: &Frame,
    unanswered_ping: &mut Option<(u64, Instant)>,
) -> Result<(), ProtocolError> {
    let Some(message_type) = frame.message_type() else {
        tracing::debug!(assigned_id = %connection.assigned_id(), type_byte = frame.type_byte, "unknown message type ignored");
        return Ok(());
    };
    if !matches!(
        message_type,
        MessageType::Decision
            | MessageType::RequestError
            | MessageType::Ping
            | MessageType::Pong
            | MessageType::GoAway
    ) {
        tracing::debug!(assigned_id = %connection.assigned_id(), message = %message_type, "message not expected from an agent; ignored");
        return Ok(());
    }
    match Message::from_frame(frame, connection.encoding())? {
        Message::Decision(decision) => {
            connection.deliver(decision.request_id, AgentReply::Decision(*decision))
        }
        Message::RequestError(error) => {
            connection.deliver(error.request_id, AgentReply::Error(error))
        }
        Message::Ping(ping) => {
            let _ = connection.send_control(Message::Pong(Pong { nonce: ping.nonce }));
        }
        Message::Pong(pong) if unanswered_ping.is_some_and(|(nonce, _)| nonce == pong.nonce) => {
            *unanswered_ping = None;
        }
        Message::GoAway(go_away) => {
            tracing::info!(assigned_id = %connection.assigned_id(), reason = %go_away.reason, grace_ms = go_away.grace_ms, "agent asked to drain");
            if !connection.draining.swap(true, Ordering::AcqRel) {
                // Close once idle or after the grace period (capped), so the connection does not
                // keep counting against the agent's connection limit.
                let grace = Duration::from_millis(go_away.grace_ms).min(MAX_AGENT_GRACE);
                let connection = connection.clone();
                tokio::spawn(async move {
                    connection.idle_or_closed(grace).await;
                    connection.close();
                });
            }
        }
        _ => {}
    }
    Ok(())
}

fn shrink_if_idle(reader: &mut Reader) {
    let buffer = reader.read_buffer_mut();
    if buffer.is_empty() && buffer.capacity() > IDLE_BUFFER {
        *buffer = bytes::BytesMut::new();
    }
}

async fn write_loop(
    connection: Arc<AgentConnection>,
    mut outbound: mpsc::Receiver<Frame>,
    mut writer: Writer,
    write_timeout: Duration,
) {
    loop {
        let frame = tokio::select! {
            frame = outbound.recv() => frame,
            _ = connection.closed.cancelled() => None,
        };
        let Some(frame) = frame else { break };
        // Let the tasks that are ready run first: the callers woken together (by one read of
        // several decisions) queue their next frames, and one write carries them all instead
        // of one syscall per frame.
        tokio::task::yield_now().await;
        let written = tokio::time::timeout(
            write_timeout,
            write_batch(&mut writer, frame, &mut outbound),
        )
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(assigned_id = %connection.assigned_id(), "write failed: {e}");
                connection.close();
                return;
            }
            Err(_) => {
                tracing::warn!(assigned_id = %connection.assigned_id(), "agent did not read for {write_timeout:?}; closing");
                connection.close();
                return;
            }
        }
    }
    // Send what is still queued (a GoAway, a last Cancel), within a second, then close our side.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(frame) = outbound.try_recv() {
            if writer.feed(frame).await.is_err() {
                return;
            }
        }
        let _ = writer.flush().await;
        let _ = writer.get_mut().shutdown().await;
    })
    .await;
}

/// Writes `first` and everything else already queued, then flushes once.
async fn write_batch(
    writer: &mut Writer,
    first: Frame,
    outbound: &mut mpsc::Receiver<Frame>,
) -> Result<(), ProtocolError> {
    writer.feed(first).await?;
    while let Ok(frame) = outbound.try_recv() {
        writer.feed(frame).await?;
    }
    writer.flush().await?;
    let buffer = writer.write_buffer_mut();
    if buffer.is_empty() && buffer.capacity() > IDLE_BUFFER {
        *buffer = bytes::BytesMut::new();
    }
    Ok(())
}
