//! What goes to the agent: the outbound queue (events, Cancels and control frames queued by
//! anyone holding the connection) and the writer task that drains it in batches through the
//! protocol crate's batching writer. A write that fails or stalls beyond the write timeout
//! closes the connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sentinel_agent_protocol::io::{FrameWriter, WriteError};
use sentinel_agent_protocol::{
    Cancel, CancelAll, CancelReason, ConfigUpdate, Frame, GoAway, Message,
};
use serde_json::Value;
use tokio::io::WriteHalf;
use tokio::sync::mpsc;

use super::AgentConnection;
use crate::transport::BoxedStream;

pub(super) type Writer = FrameWriter<WriteHalf<BoxedStream>>;

impl AgentConnection {
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

    pub(crate) fn send_cancel(&self, request_id: u64, reason: CancelReason) {
        let _ = self.send_control(Message::Cancel(Cancel { request_id, reason }));
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
    pub(crate) fn cancel_all(&self, reason: CancelReason) {
        let _ = self.send_control(Message::CancelAll(CancelAll { reason }));
        self.forget_all_replies();
    }
}

/// Writes the outbound queue until the connection closes; once it has, what is still queued
/// (a GoAway, a last Cancel) goes out within a second and our side of the stream is shut down.
pub(super) async fn write_loop(
    connection: Arc<AgentConnection>,
    outbound: mpsc::Receiver<Frame>,
    writer: Writer,
    write_timeout: Duration,
) {
    let _written = connection.written.clone().drop_guard();
    let closed = connection.closed.cancelled();
    match writer.run(outbound, write_timeout, closed).await {
        Ok(()) => {}
        Err(WriteError::Failed(e)) => {
            tracing::debug!(assigned_id = %connection.assigned_id(), "write failed: {e}");
            connection.close();
        }
        Err(WriteError::Stalled(_)) => {
            tracing::warn!(assigned_id = %connection.assigned_id(), "agent did not read for {write_timeout:?}; closing");
            connection.close();
        }
    }
}
