//! Frames and the frame codec (PROTOCOL.md §1): a big-endian `u32` length counting the type
//! byte plus the payload, the type byte, then the payload. The codec works on any stream
//! (Unix, TCP, TLS); the proxy and the SDK use it through `crate::io` (the `tokio` feature).

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::ProtocolError;

/// Default maximum of the length field: 16 MiB.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 16 * 1024 * 1024;

/// Bytes before the payload: 4 length bytes and the type byte.
pub const FRAME_HEADER_LEN: usize = 5;

/// The frame types of PROTOCOL.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum MessageType {
    RegistrationRequest = 0x01,
    RegistrationResponse = 0x02,
    RequestHeaders = 0x10,
    RequestBodyChunk = 0x11,
    ResponseHeaders = 0x12,
    ResponseBodyChunk = 0x13,
    Decision = 0x20,
    RequestError = 0x22,
    Cancel = 0x30,
    CancelAll = 0x31,
    ConfigUpdate = 0x40,
    GoAway = 0x41,
    Ping = 0xF0,
    Pong = 0xF1,
}

impl MessageType {
    /// Every known type, in wire order.
    pub const ALL: [MessageType; 14] = [
        MessageType::RegistrationRequest,
        MessageType::RegistrationResponse,
        MessageType::RequestHeaders,
        MessageType::RequestBodyChunk,
        MessageType::ResponseHeaders,
        MessageType::ResponseBodyChunk,
        MessageType::Decision,
        MessageType::RequestError,
        MessageType::Cancel,
        MessageType::CancelAll,
        MessageType::ConfigUpdate,
        MessageType::GoAway,
        MessageType::Ping,
        MessageType::Pong,
    ];

    /// The type for a wire byte, or `None` for a type this version does not know.
    pub fn from_byte(byte: u8) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| *t as u8 == byte)
    }

    /// The encoding of this type's payload on a connection that negotiated `negotiated`:
    /// registration frames are always JSON.
    pub fn payload_encoding(self, negotiated: crate::Encoding) -> crate::Encoding {
        match self {
            MessageType::RegistrationRequest | MessageType::RegistrationResponse => {
                crate::Encoding::Json
            }
            _ => negotiated,
        }
    }

    /// The human name used in logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::RegistrationRequest => "RegistrationRequest",
            MessageType::RegistrationResponse => "RegistrationResponse",
            MessageType::RequestHeaders => "RequestHeaders",
            MessageType::RequestBodyChunk => "RequestBodyChunk",
            MessageType::ResponseHeaders => "ResponseHeaders",
            MessageType::ResponseBodyChunk => "ResponseBodyChunk",
            MessageType::Decision => "Decision",
            MessageType::RequestError => "RequestError",
            MessageType::Cancel => "Cancel",
            MessageType::CancelAll => "CancelAll",
            MessageType::ConfigUpdate => "ConfigUpdate",
            MessageType::GoAway => "GoAway",
            MessageType::Ping => "Ping",
            MessageType::Pong => "Pong",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02x})", self.name(), *self as u8)
    }
}

/// One undecoded frame: its raw type byte and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The type byte as received; may be a type this version does not know.
    pub type_byte: u8,
    /// The payload (everything after the type byte).
    pub payload: Bytes,
}

impl Frame {
    /// Builds a frame of a known type.
    pub fn new(message_type: MessageType, payload: impl Into<Bytes>) -> Frame {
        Frame {
            type_byte: message_type as u8,
            payload: payload.into(),
        }
    }

    /// Serializes `payload` in `encoding` into a frame of `message_type`. Use
    /// [`crate::Message::to_frame`] unless you hold the payload by reference and want to avoid
    /// building a [`crate::Message`]. Registration types are always encoded as JSON.
    pub fn encode<T: serde::Serialize>(
        message_type: MessageType,
        payload: &T,
        encoding: crate::Encoding,
    ) -> Result<Frame, ProtocolError> {
        let encoding = message_type.payload_encoding(encoding);
        let bytes = encoding
            .serialize(payload)
            .map_err(|reason| ProtocolError::Encode {
                message_type,
                encoding,
                reason,
            })?;
        Ok(Frame::new(message_type, bytes))
    }

    /// The frame's type if known.
    pub fn message_type(&self) -> Option<MessageType> {
        MessageType::from_byte(self.type_byte)
    }
}

/// Length-prefixed frame codec with a maximum frame size.
///
/// Decoding rejects a zero length and a length above the maximum as soon as the 4 length bytes
/// are in, before reserving any memory for the claimed size. While a frame is incomplete it
/// reserves only what the frame still needs, so one peer cannot make the buffer grow beyond
/// `max_frame_length + FRAME_HEADER_LEN`.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame_length: usize,
}

impl FrameCodec {
    /// A codec with the default maximum (16 MiB).
    pub fn new() -> FrameCodec {
        FrameCodec::with_max_frame_length(DEFAULT_MAX_FRAME_LENGTH)
    }

    /// A codec whose length field may not exceed `max_frame_length` (clamped to `1..=u32::MAX`).
    pub fn with_max_frame_length(max_frame_length: usize) -> FrameCodec {
        FrameCodec {
            max_frame_length: max_frame_length.clamp(1, u32::MAX as usize),
        }
    }

    /// The configured maximum of the length field.
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    fn check_length(&self, length: u64) -> Result<usize, ProtocolError> {
        if length == 0 {
            return Err(ProtocolError::EmptyFrame);
        }
        if length > self.max_frame_length as u64 {
            return Err(ProtocolError::FrameTooLarge {
                length,
                max: self.max_frame_length,
            });
        }
        Ok(length as usize)
    }
}

impl Default for FrameCodec {
    fn default() -> FrameCodec {
        FrameCodec::new()
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let announced = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let length = self.check_length(u64::from(announced))?;
        let total = 4 + length;
        if src.len() < total {
            // Safe to reserve: `length` has already been checked against the maximum.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(4);
        let type_byte = src.get_u8();
        let payload = src.split_to(length - 1).freeze();
        Ok(Some(Frame { type_byte, payload }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = ProtocolError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtocolError> {
        let length = self.check_length(frame.payload.len() as u64 + 1)?;
        dst.reserve(4 + length);
        dst.put_u32(length as u32);
        dst.put_u8(frame.type_byte);
        dst.extend_from_slice(&frame.payload);
        Ok(())
    }
}
