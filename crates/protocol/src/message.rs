//! [`Message`]: one enum over every frame type, and the conversion between typed messages and
//! raw [`Frame`]s in a given encoding.

use serde::de::DeserializeOwned;

use crate::{
    BodyChunk, Cancel, CancelAll, ConfigUpdate, Decision, Encoding, Frame, GoAway, MessageType,
    Ping, Pong, ProtocolError, RegistrationRequest, RegistrationResponse, RequestError,
    RequestHeaders, ResponseHeaders,
};

/// Every message of PROTOCOL.md §2.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Message {
    RegistrationRequest(Box<RegistrationRequest>),
    RegistrationResponse(Box<RegistrationResponse>),
    RequestHeaders(Box<RequestHeaders>),
    RequestBodyChunk(BodyChunk),
    ResponseHeaders(Box<ResponseHeaders>),
    ResponseBodyChunk(BodyChunk),
    Decision(Box<Decision>),
    RequestError(RequestError),
    Cancel(Cancel),
    CancelAll(CancelAll),
    ConfigUpdate(ConfigUpdate),
    GoAway(GoAway),
    Ping(Ping),
    Pong(Pong),
}

impl Message {
    /// The frame type this message travels as.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::RegistrationRequest(_) => MessageType::RegistrationRequest,
            Message::RegistrationResponse(_) => MessageType::RegistrationResponse,
            Message::RequestHeaders(_) => MessageType::RequestHeaders,
            Message::RequestBodyChunk(_) => MessageType::RequestBodyChunk,
            Message::ResponseHeaders(_) => MessageType::ResponseHeaders,
            Message::ResponseBodyChunk(_) => MessageType::ResponseBodyChunk,
            Message::Decision(_) => MessageType::Decision,
            Message::RequestError(_) => MessageType::RequestError,
            Message::Cancel(_) => MessageType::Cancel,
            Message::CancelAll(_) => MessageType::CancelAll,
            Message::ConfigUpdate(_) => MessageType::ConfigUpdate,
            Message::GoAway(_) => MessageType::GoAway,
            Message::Ping(_) => MessageType::Ping,
            Message::Pong(_) => MessageType::Pong,
        }
    }

    /// The `request_id` this message is about, if it is about one request.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            Message::RequestHeaders(m) => Some(m.request_id),
            Message::RequestBodyChunk(m) | Message::ResponseBodyChunk(m) => Some(m.request_id),
            Message::ResponseHeaders(m) => Some(m.request_id),
            Message::Decision(m) => Some(m.request_id),
            Message::RequestError(m) => Some(m.request_id),
            Message::Cancel(m) => Some(m.request_id),
            _ => None,
        }
    }

    /// The `request_id` this message is about, to set it, if it is about one request. A sender
    /// that learns the id only when it picks a connection fills it in here before encoding.
    pub fn request_id_mut(&mut self) -> Option<&mut u64> {
        match self {
            Message::RequestHeaders(m) => Some(&mut m.request_id),
            Message::RequestBodyChunk(m) | Message::ResponseBodyChunk(m) => Some(&mut m.request_id),
            Message::ResponseHeaders(m) => Some(&mut m.request_id),
            Message::Decision(m) => Some(&mut m.request_id),
            Message::RequestError(m) => Some(&mut m.request_id),
            Message::Cancel(m) => Some(&mut m.request_id),
            _ => None,
        }
    }

    /// Encodes the payload in `encoding` (registration frames always in JSON).
    pub fn to_frame(&self, encoding: Encoding) -> Result<Frame, ProtocolError> {
        let t = self.message_type();
        match self {
            Message::RegistrationRequest(m) => Frame::encode(t, m, encoding),
            Message::RegistrationResponse(m) => Frame::encode(t, m, encoding),
            Message::RequestHeaders(m) => Frame::encode(t, m, encoding),
            Message::RequestBodyChunk(m) | Message::ResponseBodyChunk(m) => {
                Frame::encode(t, m, encoding)
            }
            Message::ResponseHeaders(m) => Frame::encode(t, m, encoding),
            Message::Decision(m) => Frame::encode(t, m, encoding),
            Message::RequestError(m) => Frame::encode(t, m, encoding),
            Message::Cancel(m) => Frame::encode(t, m, encoding),
            Message::CancelAll(m) => Frame::encode(t, m, encoding),
            Message::ConfigUpdate(m) => Frame::encode(t, m, encoding),
            Message::GoAway(m) => Frame::encode(t, m, encoding),
            Message::Ping(m) => Frame::encode(t, m, encoding),
            Message::Pong(m) => Frame::encode(t, m, encoding),
        }
    }

    /// Decodes a frame whose payload is in `encoding` (registration frames always in JSON).
    /// A type byte this version does not know gives [`ProtocolError::UnknownMessageType`],
    /// which a receiver past registration should log and ignore.
    pub fn from_frame(frame: &Frame, encoding: Encoding) -> Result<Message, ProtocolError> {
        let message_type = frame
            .message_type()
            .ok_or(ProtocolError::UnknownMessageType(frame.type_byte))?;
        let encoding = message_type.payload_encoding(encoding);
        let payload = &frame.payload;
        let message = match message_type {
            MessageType::RegistrationRequest => {
                Message::RegistrationRequest(decode(message_type, encoding, payload)?)
            }
            MessageType::RegistrationResponse => {
                Message::RegistrationResponse(decode(message_type, encoding, payload)?)
            }
            MessageType::RequestHeaders => {
                Message::RequestHeaders(decode(message_type, encoding, payload)?)
            }
            MessageType::RequestBodyChunk => {
                Message::RequestBodyChunk(decode(message_type, encoding, payload)?)
            }
            MessageType::ResponseHeaders => {
                Message::ResponseHeaders(decode(message_type, encoding, payload)?)
            }
            MessageType::ResponseBodyChunk => {
                Message::ResponseBodyChunk(decode(message_type, encoding, payload)?)
            }
            MessageType::Decision => Message::Decision(decode(message_type, encoding, payload)?),
            MessageType::RequestError => {
                Message::RequestError(decode(message_type, encoding, payload)?)
            }
            MessageType::Cancel => Message::Cancel(decode(message_type, encoding, payload)?),
            MessageType::CancelAll => Message::CancelAll(decode(message_type, encoding, payload)?),
            MessageType::ConfigUpdate => {
                Message::ConfigUpdate(decode(message_type, encoding, payload)?)
            }
            MessageType::GoAway => Message::GoAway(decode(message_type, encoding, payload)?),
            MessageType::Ping => Message::Ping(decode(message_type, encoding, payload)?),
            MessageType::Pong => Message::Pong(decode(message_type, encoding, payload)?),
        };
        Ok(message)
    }
}

fn decode<T: DeserializeOwned>(
    message_type: MessageType,
    encoding: Encoding,
    payload: &[u8],
) -> Result<T, ProtocolError> {
    encoding
        .deserialize(payload)
        .map_err(|reason| ProtocolError::Decode {
            message_type,
            encoding,
            payload_len: payload.len(),
            reason,
        })
}

macro_rules! impl_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Message {
            fn from(message: $ty) -> Message {
                Message::$variant(message.into())
            }
        })*
    };
}

impl_from!(
    RegistrationRequest(RegistrationRequest),
    RegistrationResponse(RegistrationResponse),
    RequestHeaders(RequestHeaders),
    ResponseHeaders(ResponseHeaders),
    Decision(Decision),
    RequestError(RequestError),
    Cancel(Cancel),
    CancelAll(CancelAll),
    ConfigUpdate(ConfigUpdate),
    GoAway(GoAway),
    Ping(Ping),
    Pong(Pong),
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BodyChunk;

    #[test]
    fn request_id_is_set_on_messages_about_one_request_only() {
        let mut chunk = Message::ResponseBodyChunk(BodyChunk {
            request_id: 0,
            chunk_index: 3,
            data: bytes::Bytes::from_static(b"abc"),
            is_last: true,
        });
        if let Some(id) = chunk.request_id_mut() {
            *id = 42;
        }
        assert_eq!(chunk.request_id(), Some(42));
        let frame = chunk.to_frame(Encoding::MessagePack).unwrap();
        assert_eq!(frame.message_type(), Some(MessageType::ResponseBodyChunk));
        assert_eq!(
            Message::from_frame(&frame, Encoding::MessagePack).unwrap(),
            chunk
        );
        assert_eq!(Message::Ping(Ping { nonce: 1 }).request_id_mut(), None);
    }
}
