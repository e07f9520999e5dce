//! Sentinel Agent Protocol v2: the wire contract shared by the `sentinel` proxy and its agents.
//!
//! This crate owns the frame codec (length-prefixed frames over any `AsyncRead`/`AsyncWrite`,
//! via [`FrameCodec`]), the typed messages of every frame type, their two payload encodings
//! (JSON and MessagePack), the registration error vocabulary, the agent-id syntax and the
//! `*`/`?` pattern matcher. With the `tokio` feature, [`io`] adds the one type both sides use
//! to speak frames over a stream. It owns no sockets, no timers and no policy: which connection
//! to accept, when to ping or how to retry is decided by the proxy and the agent SDK.
//!
//! ```
//! use sentinel_agent_protocol::{Encoding, Message, Ping};
//!
//! let frame = Message::Ping(Ping { nonce: 7 }).to_frame(Encoding::Json)?;
//! assert_eq!(Message::from_frame(&frame, Encoding::Json)?, Message::Ping(Ping { nonce: 7 }));
//! # Ok::<(), sentinel_agent_protocol::ProtocolError>(())
//! ```
// No unwrap/expect on what can fail at run time; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod agent_id;
mod body;
mod encoding;
mod error;
mod frame;
#[cfg(feature = "tokio")]
pub mod io;
mod message;
mod messages;

pub use agent_id::{is_valid_agent_id, AgentPattern, AGENT_ID_MAX_LEN};
pub use encoding::Encoding;
pub use error::ProtocolError;
pub use frame::{Frame, FrameCodec, MessageType, DEFAULT_MAX_FRAME_LENGTH, FRAME_HEADER_LEN};
pub use message::Message;
pub use messages::cancel_reason::CancelReason;
pub use messages::control::{Cancel, CancelAll, ConfigUpdate, GoAway, Ping, Pong};
pub use messages::decision::{
    Action, Audit, Decision, HeaderOp, RequestError, DEFAULT_BLOCK_STATUS, DEFAULT_REDIRECT_STATUS,
};
pub use messages::events::{BodyChunk, RequestHeaders, ResponseHeaders};
pub use messages::registration::{
    AuthToken, Capabilities, RegistrationErrorCode, RegistrationRequest, RegistrationResponse,
    PROTOCOL_VERSION,
};

/// An HTTP header as it travels on the wire: `[name, value]`.
pub type HeaderPair = (String, String);
