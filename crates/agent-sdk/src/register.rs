//! One registration attempt (PROTOCOL.md §3): dial the proxy, send the RegistrationRequest
//! (always JSON), and read the RegistrationResponse, all within one timeout. Success yields a
//! [`Registered`] connection ready to serve; a refusal yields its error code, which decides
//! between "retry" and "give up" upstream in the runner.

use std::time::Duration;

use sentinel_agent_protocol::io::{BoxedStream, FrameStream};
use sentinel_agent_protocol::{
    Encoding, FrameCodec, Message, RegistrationRequest, RegistrationResponse,
};
use serde_json::Value;

use crate::address::ProxyAddr;
use crate::error::{DialError, RegisterError};
use crate::tls::TlsDialer;

/// A connection the proxy accepted.
pub(crate) struct Registered {
    /// The stream, with any frames the proxy sent right behind its response still buffered.
    pub stream: FrameStream<BoxedStream>,
    pub assigned_id: String,
    pub encoding: Encoding,
    pub config: Option<Value>,
    /// `None` when the proxy announced no heartbeat (0 ms).
    pub heartbeat: Option<Duration>,
}

/// Dials `proxy` (through `tls` for `tls:` addresses) and registers with `request`. The whole exchange is bounded by `timeout`.
pub(crate) async fn register(
    proxy: &ProxyAddr,
    tls: Option<&TlsDialer>,
    request: &RegistrationRequest,
    timeout: Duration,
    max_frame_length: usize,
) -> Result<Registered, RegisterError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = proxy.dial(timeout, tls).await?;
    let mut stream = FrameStream::new(stream, FrameCodec::with_max_frame_length(max_frame_length));
    let frame = Message::RegistrationRequest(Box::new(request.clone())).to_frame(Encoding::Json)?;
    let exchange = async {
        stream.write_frame(frame).await?;
        match stream.read_frame().await {
            Ok(None) => Err(RegisterError::Closed),
            Err(e) => Err(RegisterError::Protocol(e)),
            Ok(Some(frame)) => match Message::from_frame(&frame, Encoding::Json)? {
                Message::RegistrationResponse(response) => Ok(*response),
                other => Err(RegisterError::Unexpected(other.message_type())),
            },
        }
    };
    let response = match tokio::time::timeout_at(deadline, exchange).await {
        Ok(result) => result?,
        Err(_) => return Err(RegisterError::Timeout(timeout)),
    };
    match response {
        RegistrationResponse::Accepted {
            assigned_id,
            config,
            encoding,
            heartbeat_interval_ms,
        } => Ok(Registered {
            stream,
            assigned_id,
            encoding,
            config,
            heartbeat: (heartbeat_interval_ms > 0)
                .then(|| Duration::from_millis(heartbeat_interval_ms)),
        }),
        RegistrationResponse::Rejected { error, message } => Err(RegisterError::Rejected {
            code: error,
            message,
        }),
    }
}

impl RegisterError {
    /// Whether the proxy was reached at all (for log levels: an unreachable proxy is routine
    /// while it restarts).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            RegisterError::Dial(DialError::Connect { .. } | DialError::Timeout { .. })
        )
    }
}
