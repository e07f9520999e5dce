//! [`check_session`]: an agent registers through the real handshake, the proxy starts requests
//! on its connection, and the agent plays an [`AgentScript`] (decisions for known and unknown
//! ids, pongs, pings, GoAway, junk types and payloads, partial frames, silence) through the
//! pooled connection's reader. What is checked:
//!
//! - every request gets a definite outcome (a reply carrying its own `request_id`, a timeout,
//!   the connection lost, or cancelled) no later than its timeout after the script ends;
//! - once every request has ended, the connection holds no in-flight slot;
//! - everything the proxy writes is a well-formed frame that decodes in the negotiated encoding;
//! - once the agent hangs up, the connection closes, forgets every waiter, and the pool
//!   forgets the agent id.

use std::time::Duration;

use futures::StreamExt;
use sentinel_agent_protocol::{
    AuthToken, Capabilities, Encoding, Frame, FrameCodec, Message, MessageType,
    RegistrationRequest, RegistrationResponse, RequestHeaders,
};
use tokio::io::{AsyncWriteExt, DuplexStream, WriteHalf};
use tokio::task::JoinHandle;
use tokio_util::codec::{Encoder, FramedRead};

use super::harness::{read_all_frames, Fixture, FUZZ_TOKEN, LOGICAL_AGENT, SETTLE};
use super::script::{wire_bytes, AgentOp, AgentScript};
use super::{violation, Checked};
use crate::pool::AgentConnection;
use crate::{AgentReply, DispatchError, Event};

/// Each event's timeout (virtual time).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How each request ended and how much the proxy wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    /// One entry per request the script asked for: `decision`, `error`, `timeout`,
    /// `connection_lost`, `cancelled`, `dropped` (by the caller) or `saturated` (never sent).
    pub outcomes: Vec<&'static str>,
    /// Frames the proxy wrote after the RegistrationResponse.
    pub frames_from_proxy: usize,
}

type Outcome = Result<AgentReply, DispatchError>;

struct Started {
    request_id: u64,
    task: JoinHandle<Outcome>,
}

/// Registers an agent, starts `script.requests` requests, plays the script and checks the
/// invariants listed in the module docs.
pub async fn check_session(script: &AgentScript) -> Checked<SessionReport> {
    let fixture = Fixture::new()?;
    let connection = fixture.connect();
    let (read, mut writer) = tokio::io::split(connection.agent);
    let mut frames = FramedRead::new(read, FrameCodec::new());
    register(script, &mut writer, &mut frames).await?;
    let Some(pooled) = fixture.pool.all_connections().into_iter().next() else {
        return violation("the registered connection is not in the pool");
    };
    let reader = tokio::spawn(read_all_frames(frames));
    let mut outcomes = Vec::new();
    let mut started = Vec::new();
    for _ in 0..script.requests.min(super::script::MAX_REQUESTS) {
        match fixture.pool.begin(LOGICAL_AGENT) {
            Ok(mut request) => {
                let request_id = request.request_id();
                let task =
                    tokio::spawn(
                        async move { request.send(headers_event(), REQUEST_TIMEOUT).await },
                    );
                started.push(Started { request_id, task });
            }
            Err(DispatchError::Saturated(_)) => outcomes.push("saturated"),
            Err(e) => {
                return violation(format!("no request could start on a fresh connection: {e}"))
            }
        }
    }
    tokio::task::yield_now().await;
    play(script, &mut writer, &started).await;
    if script.hang_up {
        let _ = writer.shutdown().await;
    }
    for request in started {
        outcomes.push(outcome_of(request).await?);
    }
    if pooled.in_flight() != 0 {
        return violation(format!(
            "{} in-flight slot(s) held after every request ended",
            pooled.in_flight()
        ));
    }
    let _ = writer.shutdown().await;
    let frames_from_proxy = check_proxy_frames(reader, script.encoding).await?;
    check_closed(&fixture, &pooled, connection.handshake).await?;
    Ok(SessionReport {
        outcomes,
        frames_from_proxy,
    })
}

async fn register(
    script: &AgentScript,
    writer: &mut WriteHalf<DuplexStream>,
    frames: &mut FramedRead<tokio::io::ReadHalf<DuplexStream>, FrameCodec>,
) -> Checked<()> {
    let mut request = RegistrationRequest::new("fuzz-1");
    request.auth_token = Some(AuthToken::new(FUZZ_TOKEN));
    request.encodings = vec![script.encoding.as_str().to_string()];
    request.capabilities = Capabilities {
        handles_request_headers: true,
        supports_cancellation: true,
        max_concurrent_requests: script.max_concurrent_requests,
        ..Capabilities::default()
    };
    let mut bytes = bytes::BytesMut::new();
    let frame = Frame::encode(MessageType::RegistrationRequest, &request, Encoding::Json)
        .map_err(|e| super::Violation(format!("cannot encode the registration: {e}")))?;
    FrameCodec::new()
        .encode(frame, &mut bytes)
        .map_err(|e| super::Violation(format!("cannot frame the registration: {e}")))?;
    if writer.write_all(&bytes).await.is_err() {
        return violation("the proxy hung up before the registration was sent");
    }
    let answer = match tokio::time::timeout(SETTLE, frames.next()).await {
        Ok(Some(Ok(frame))) => serde_json::from_slice::<RegistrationResponse>(&frame.payload),
        _ => return violation("no RegistrationResponse to a valid registration"),
    };
    match answer {
        Ok(RegistrationResponse::Accepted { encoding, .. }) if encoding == script.encoding => {
            Ok(())
        }
        other => violation(format!("a valid registration was answered {other:?}")),
    }
}

fn headers_event() -> Event {
    Event::RequestHeaders(RequestHeaders {
        request_id: 0,
        method: "GET".into(),
        uri: "/fuzz".into(),
        version: "HTTP/1.1".into(),
        headers: Vec::new(),
        client_addr: "127.0.0.1:1".into(),
        route: "fuzz".into(),
        has_body: false,
    })
}

async fn play(script: &AgentScript, writer: &mut WriteHalf<DuplexStream>, started: &[Started]) {
    for op in &script.ops {
        match op {
            AgentOp::Wait { millis } => {
                tokio::time::sleep(Duration::from_millis(*millis)).await;
            }
            AgentOp::DropRequest { request_id } => {
                if let Some(request) = started.iter().find(|r| r.request_id == *request_id) {
                    request.task.abort();
                }
            }
            op => {
                if let Some(bytes) = wire_bytes(op, script.encoding) {
                    // The proxy may have closed the connection already; the rest goes nowhere.
                    let _ = writer.write_all(&bytes).await;
                }
            }
        }
        tokio::task::yield_now().await;
    }
}

/// A request whose own deadline has long passed must have ended.
async fn outcome_of(request: Started) -> Checked<&'static str> {
    let id = request.request_id;
    let result = match tokio::time::timeout(REQUEST_TIMEOUT * 2, request.task).await {
        Err(_) => return violation(format!("request {id} got no outcome")),
        Ok(Err(e)) if e.is_cancelled() => return Ok("dropped"),
        Ok(Err(e)) => return violation(format!("request {id}'s task failed: {e}")),
        Ok(Ok(result)) => result,
    };
    match result {
        Ok(AgentReply::Decision(d)) if d.request_id == id => Ok("decision"),
        Ok(AgentReply::Error(e)) if e.request_id == id => Ok("error"),
        Ok(reply) => violation(format!("request {id} was given another's reply: {reply:?}")),
        Err(DispatchError::Timeout { .. }) => Ok("timeout"),
        Err(DispatchError::ConnectionLost(_)) => Ok("connection_lost"),
        Err(DispatchError::Cancelled(_)) => Ok("cancelled"),
        Err(e) => violation(format!("request {id} failed unexpectedly: {e}")),
    }
}

async fn check_proxy_frames(
    reader: JoinHandle<Checked<Vec<Frame>>>,
    encoding: Encoding,
) -> Checked<usize> {
    let frames = match reader.await {
        Ok(frames) => frames?,
        Err(e) => return violation(format!("the frame reader failed: {e}")),
    };
    for frame in &frames {
        if let Err(e) = Message::from_frame(frame, encoding) {
            return violation(format!("the proxy sent an undecodable frame: {e}"));
        }
    }
    Ok(frames.len())
}

async fn check_closed(
    fixture: &Fixture,
    pooled: &AgentConnection,
    handshake: JoinHandle<()>,
) -> Checked<()> {
    if tokio::time::timeout(SETTLE, pooled.closed()).await.is_err() {
        return violation("the connection stayed open after the agent hung up");
    }
    if pooled.awaited_replies() != 0 {
        return violation("a closed connection still holds reply waiters");
    }
    if handshake.await.is_err() {
        return violation("the handshake task failed");
    }
    fixture.settled().await
}
