//! The one error type of the protocol crate. Messages say what went wrong and on which frame,
//! so a peer author can act on them without reading this crate's source.

use crate::{Encoding, MessageType};

/// Everything that can go wrong while framing, encoding or decoding protocol messages.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The length prefix was zero; every frame carries at least its type byte.
    #[error("frame length is 0; a frame must contain at least its type byte")]
    EmptyFrame,

    /// The length prefix exceeds the configured maximum; nothing was allocated for it.
    #[error(
        "frame length {length} exceeds the maximum of {max} bytes; the connection must be closed"
    )]
    FrameTooLarge {
        /// The length the peer announced.
        length: u64,
        /// The configured maximum.
        max: usize,
    },

    /// A payload could not be decoded as the message its type byte announced.
    #[error("could not decode {message_type} frame ({encoding} payload of {payload_len} bytes): {reason}")]
    Decode {
        /// The frame's type.
        message_type: MessageType,
        /// The encoding that was expected.
        encoding: Encoding,
        /// The payload size, to help spot truncation.
        payload_len: usize,
        /// What the decoder reported.
        reason: String,
    },

    /// A message could not be encoded (a bug, or a value the encoding cannot express).
    #[error("could not encode {message_type} frame as {encoding}: {reason}")]
    Encode {
        /// The frame's type.
        message_type: MessageType,
        /// The requested encoding.
        encoding: Encoding,
        /// What the encoder reported.
        reason: String,
    },

    /// The frame's type byte is not one this version of the protocol knows.
    #[error("unknown message type 0x{0:02x}")]
    UnknownMessageType(u8),

    /// A frame arrived that is not allowed at this point of the conversation.
    #[error("expected a {expected} frame, got {got}")]
    UnexpectedMessage {
        /// What the state machine was waiting for.
        expected: MessageType,
        /// What arrived.
        got: MessageType,
    },

    /// The underlying stream failed.
    #[error("i/o error on the agent connection: {0}")]
    Io(#[from] std::io::Error),
}
