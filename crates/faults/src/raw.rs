//! A hand-driven agent connection for the `frames` scenario: a Unix socket to the reverse
//! listener on which the harness writes any bytes it likes (well-formed frames, or malformed,
//! truncated and oversized ones) and reads the proxy's frames with the protocol crate's
//! codec. It speaks JSON only. It knows nothing about which bad frames to send; see
//! [`crate::scenarios::frames`].

use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use sentinel_agent_protocol::{Frame, FrameCodec};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::codec::Decoder;

use crate::error::FaultError;

/// Frame type bytes the scenario uses (PROTOCOL.md §2).
pub mod types {
    /// RegistrationRequest.
    pub const REGISTRATION_REQUEST: u8 = 0x01;
    /// RegistrationResponse.
    pub const REGISTRATION_RESPONSE: u8 = 0x02;
    /// RequestHeaders.
    pub const REQUEST_HEADERS: u8 = 0x10;
    /// Decision.
    pub const DECISION: u8 = 0x20;
    /// Ping.
    pub const PING: u8 = 0xF0;
    /// Pong.
    pub const PONG: u8 = 0xF1;
}

/// What the next read from the proxy gave.
#[derive(Debug)]
pub enum Read {
    /// A whole frame.
    Frame(Frame),
    /// The proxy closed the connection (or reset it, or sent a frame the codec refuses).
    Closed,
    /// Nothing within the time given.
    Silent,
}

/// One frame's bytes: `length` (type byte + payload), type, payload.
pub fn frame_bytes(type_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(payload.len() + 5);
    bytes.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
    bytes.push(type_byte);
    bytes.extend_from_slice(payload);
    bytes
}

/// A well-formed JSON RegistrationRequest frame for `agent_id` handling request headers.
pub fn registration_bytes(agent_id: &str) -> Vec<u8> {
    let request = json!({
        "protocol_version": 2,
        "agent_id": agent_id,
        "capabilities": { "handles_request_headers": true, "max_concurrent_requests": 16 },
        "encodings": ["json"],
    });
    frame_bytes(types::REGISTRATION_REQUEST, request.to_string().as_bytes())
}

/// A raw connection to the reverse listener.
pub struct RawConnection {
    stream: UnixStream,
    buffer: BytesMut,
    codec: FrameCodec,
}

impl RawConnection {
    /// Connects to `socket`.
    pub async fn connect(socket: &Path) -> Result<RawConnection, FaultError> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| FaultError::io(format!("connecting to {}", socket.display()), e))?;
        Ok(RawConnection {
            stream,
            buffer: BytesMut::new(),
            codec: FrameCodec::new(),
        })
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: UnixStream) -> RawConnection {
        RawConnection {
            stream,
            buffer: BytesMut::new(),
            codec: FrameCodec::new(),
        }
    }

    /// Writes `bytes`. A proxy that already closed the connection makes this fail.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), FaultError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| FaultError::io("writing to the proxy", e))
    }

    /// Reads the next frame, waiting at most `limit`.
    pub async fn read(&mut self, limit: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.codec.decode(&mut self.buffer) {
                Ok(Some(frame)) => return Read::Frame(frame),
                Ok(None) => {}
                Err(_) => return Read::Closed,
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Read::Silent,
                Ok(Ok(0)) | Ok(Err(_)) => return Read::Closed,
                Ok(Ok(n)) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads frames until the proxy closes the connection or `limit` passes; returns whether
    /// it closed, and the frames seen before.
    pub async fn read_until_closed(&mut self, limit: Duration) -> (bool, Vec<Frame>) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Read::Frame(frame) => frames.push(frame),
                Read::Closed => return (true, frames),
                Read::Silent => return (false, frames),
            }
        }
    }

    /// Sends a well-formed registration for `agent_id` and returns the proxy's answer.
    pub async fn register(&mut self, agent_id: &str, limit: Duration) -> Result<Value, FaultError> {
        self.send(&registration_bytes(agent_id)).await?;
        let frame = self.read_frame(limit, "a RegistrationResponse").await?;
        if frame.type_byte != types::REGISTRATION_RESPONSE {
            return Err(FaultError::Protocol(format!(
                "expected a RegistrationResponse, got type 0x{:02x}",
                frame.type_byte
            )));
        }
        json_payload(&frame)
    }

    /// Reads the next frame that is not a Ping (answering Pings), or fails after `limit`.
    pub async fn read_frame(&mut self, limit: Duration, what: &str) -> Result<Frame, FaultError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Read::Frame(frame) if frame.type_byte == types::PING => {
                    self.send(&frame_bytes(types::PONG, &frame.payload)).await?;
                }
                Read::Frame(frame) => return Ok(frame),
                Read::Closed => {
                    return Err(FaultError::Protocol(format!(
                        "the proxy closed the connection before {what}"
                    )))
                }
                Read::Silent => return Err(FaultError::timeout(what, limit)),
            }
        }
    }
}

/// The JSON payload of `frame`.
pub fn json_payload(frame: &Frame) -> Result<Value, FaultError> {
    serde_json::from_slice(&frame.payload).map_err(|e| {
        FaultError::Protocol(format!("payload of type 0x{:02x}: {e}", frame.type_byte))
    })
}
