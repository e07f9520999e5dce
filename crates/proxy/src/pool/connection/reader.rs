//! The reader task of one connection: it reads frames from the agent (those sent right behind
//! the registration first), routes Decisions and RequestErrors to the waiting callers, answers
//! Pings, pings an agent that has gone quiet and closes it when the Pong does not come, and
//! honours an agent's GoAway. When the connection ends, for whatever reason, it closes it and
//! runs `on_close` once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sentinel_agent_protocol::io::FrameReader;
use sentinel_agent_protocol::{Frame, GoAway, Message, MessageType, Ping, Pong, ProtocolError};
use tokio::io::ReadHalf;
use tokio::time::Instant;

use super::AgentConnection;
use crate::pool::dispatch::AgentReply;
use crate::transport::BoxedStream;

/// Longest grace period honoured when an agent sends GoAway.
const MAX_AGENT_GRACE: Duration = Duration::from_secs(60);

pub(super) type Reader = FrameReader<ReadHalf<BoxedStream>>;

/// The ping sent to a quiet agent that has not been answered yet: its nonce and when it left.
type UnansweredPing = Option<(u64, Instant)>;

pub(super) async fn read_loop(
    connection: Arc<AgentConnection>,
    mut reader: Reader,
    heartbeat: Duration,
    on_close: impl FnOnce(&Arc<AgentConnection>, &str),
) {
    // Re-armed only when it fires, not per frame: the next moment something may be due.
    let timer = tokio::time::sleep(heartbeat);
    tokio::pin!(timer);
    let mut last_heard = Instant::now();
    let mut unanswered_ping: UnansweredPing = None;
    let mut next_nonce = 1u64;
    let reason = loop {
        tokio::select! {
            _ = connection.closed.cancelled() => break "closed by the proxy".to_string(),
            read = reader.read_frame() => match read {
                Ok(None) => break "the agent closed the connection".to_string(),
                Err(e) => break format!("protocol error: {e}"),
                Ok(Some(frame)) => {
                    last_heard = Instant::now();
                    if let Err(e) = handle_frame(&connection, &frame, &mut unanswered_ping) {
                        break format!("protocol error: {e}");
                    }
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

fn handle_frame(
    connection: &Arc<AgentConnection>,
    frame: &Frame,
    unanswered_ping: &mut UnansweredPing,
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
        Message::GoAway(go_away) => on_agent_go_away(connection, &go_away),
        _ => {}
    }
    Ok(())
}

fn on_agent_go_away(connection: &Arc<AgentConnection>, go_away: &GoAway) {
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
