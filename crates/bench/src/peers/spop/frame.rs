//! SPOP frames (SPOE.txt section 3.2): a 4-byte big-endian length, then the frame type, the
//! 4-byte flags, the stream and frame ids (varints) and a payload that is a KV-LIST (HELLO,
//! DISCONNECT), a LIST-OF-MESSAGES (NOTIFY) or a LIST-OF-ACTIONS (ACK). Encodes and decodes
//! every frame type both ways (the bench's SPOA only receives HAProxy's and sends its own;
//! the tests play HAProxy). Fragmented payloads are refused: the SPOA does not announce the
//! `fragmentation` capability, so HAProxy must not send them. Owns bytes, not sockets.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::data::{put_bytes, Reader, TypedData};
use super::varint::put_varint;
use super::SpopError;

/// The final (or only) fragment of a payload.
pub const FLAG_FIN: u32 = 0x1;
/// Length prefix before every frame.
pub const LENGTH_PREFIX: usize = 4;
/// The smallest max-frame-size a peer may announce.
pub const MIN_FRAME_SIZE: u32 = 256;

const TYPE_UNSET: u8 = 0;
const TYPE_HAPROXY_HELLO: u8 = 1;
const TYPE_HAPROXY_DISCONNECT: u8 = 2;
const TYPE_NOTIFY: u8 = 3;
const TYPE_AGENT_HELLO: u8 = 101;
const TYPE_AGENT_DISCONNECT: u8 = 102;
const TYPE_ACK: u8 = 103;

const ACTION_SET_VAR: u8 = 1;
const ACTION_UNSET_VAR: u8 = 2;

/// A KV-LIST: names (no type byte) and typed values, in order.
pub type KvList = Vec<(Bytes, TypedData)>;

/// HAPROXY-HELLO: what HAProxy offers when it opens a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyHello {
    /// Comma-separated "Major.Minor" versions, e.g. "2.0".
    pub supported_versions: String,
    /// The largest frame HAProxy accepts.
    pub max_frame_size: u32,
    /// Comma-separated capabilities.
    pub capabilities: String,
    /// A health check: answer AGENT-HELLO, then close.
    pub healthcheck: bool,
    /// The engine's unique id, if sent.
    pub engine_id: Option<String>,
}

/// AGENT-HELLO: the agent's answer to HAPROXY-HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHello {
    /// The SPOP version the agent speaks.
    pub version: String,
    /// The frame size both sides use from now on.
    pub max_frame_size: u32,
    /// Comma-separated capabilities.
    pub capabilities: String,
}

/// HAPROXY-DISCONNECT or AGENT-DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// SPOE.txt section 3.5 status code (0: normal).
    pub status_code: u32,
    /// Human-readable reason.
    pub message: String,
}

/// One message of a NOTIFY: the spoe-message name and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The `spoe-message` name.
    pub name: Bytes,
    /// The `args`, by name (unnamed arguments have an empty name).
    pub args: KvList,
}

impl Message {
    /// The first argument called `name`.
    pub fn arg(&self, name: &str) -> Option<&TypedData> {
        self.args
            .iter()
            .find(|(n, _)| n.as_ref() == name.as_bytes())
            .map(|(_, v)| v)
    }
}

/// NOTIFY: messages about one stream, to be acknowledged with the same ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The stream.
    pub stream_id: u64,
    /// The frame within the stream.
    pub frame_id: u64,
    /// The messages.
    pub messages: Vec<Message>,
}

/// A variable scope of a set-var or unset-var action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarScope {
    /// `proc`.
    Process = 0,
    /// `sess`.
    Session = 1,
    /// `txn`.
    Transaction = 2,
    /// `req`.
    Request = 3,
    /// `res`.
    Response = 4,
}

impl VarScope {
    fn from_byte(byte: u8) -> Result<VarScope, SpopError> {
        Ok(match byte {
            0 => VarScope::Process,
            1 => VarScope::Session,
            2 => VarScope::Transaction,
            3 => VarScope::Request,
            4 => VarScope::Response,
            other => return Err(SpopError::Invalid(format!("variable scope {other}"))),
        })
    }
}

/// One action of an ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// set-var: scope, name (HAProxy adds the agent's prefix), value.
    SetVar {
        /// Scope.
        scope: VarScope,
        /// Name without prefix.
        name: Bytes,
        /// Value.
        value: TypedData,
    },
    /// unset-var: scope and name.
    UnsetVar {
        /// Scope.
        scope: VarScope,
        /// Name without prefix.
        name: Bytes,
    },
}

/// ACK: the answer to one NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The NOTIFY's stream id.
    pub stream_id: u64,
    /// The NOTIFY's frame id.
    pub frame_id: u64,
    /// What HAProxy should do.
    pub actions: Vec<Action>,
}

/// One SPOP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// HAPROXY-HELLO (type 1).
    HaproxyHello(HaproxyHello),
    /// HAPROXY-DISCONNECT (type 2).
    HaproxyDisconnect(Disconnect),
    /// NOTIFY (type 3).
    Notify(Notify),
    /// AGENT-HELLO (type 101).
    AgentHello(AgentHello),
    /// AGENT-DISCONNECT (type 102).
    AgentDisconnect(Disconnect),
    /// ACK (type 103).
    Ack(Ack),
    /// A type this codec does not know; the spec lets a peer skip it.
    Unknown(u8),
}

impl Frame {
    /// Appends the frame, length prefix included, to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u32(0);
        let (frame_type, stream_id, frame_id) = match self {
            Frame::HaproxyHello(_) => (TYPE_HAPROXY_HELLO, 0, 0),
            Frame::HaproxyDisconnect(_) => (TYPE_HAPROXY_DISCONNECT, 0, 0),
            Frame::Notify(n) => (TYPE_NOTIFY, n.stream_id, n.frame_id),
            Frame::AgentHello(_) => (TYPE_AGENT_HELLO, 0, 0),
            Frame::AgentDisconnect(_) => (TYPE_AGENT_DISCONNECT, 0, 0),
            Frame::Ack(a) => (TYPE_ACK, a.stream_id, a.frame_id),
            Frame::Unknown(t) => (*t, 0, 0),
        };
        out.put_u8(frame_type);
        out.put_u32(FLAG_FIN);
        put_varint(out, stream_id);
        put_varint(out, frame_id);
        match self {
            Frame::HaproxyHello(h) => put_kv_list(out, &haproxy_hello_items(h)),
            Frame::AgentHello(h) => put_kv_list(out, &agent_hello_items(h)),
            Frame::HaproxyDisconnect(d) | Frame::AgentDisconnect(d) => {
                put_kv_list(out, &disconnect_items(d))
            }
            Frame::Notify(n) => put_messages(out, &n.messages),
            Frame::Ack(a) => put_actions(out, &a.actions),
            Frame::Unknown(_) => {}
        }
        let len = (out.len() - start - LENGTH_PREFIX) as u32;
        out[start..start + LENGTH_PREFIX].copy_from_slice(&len.to_be_bytes());
    }

    /// Takes one whole frame off the front of `input`: `Ok(None)` while it is incomplete, an
    /// error if it is larger than `max_frame_size` or malformed (the frame's bytes are then
    /// consumed, but the connection should be closed anyway).
    pub fn decode(input: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, SpopError> {
        if input.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let len = u32::from_be_bytes([input[0], input[1], input[2], input[3]]);
        if len > max_frame_size {
            return Err(SpopError::TooBig {
                size: len,
                max: max_frame_size,
            });
        }
        let total = LENGTH_PREFIX + len as usize;
        if input.len() < total {
            input.reserve(total - input.len());
            return Ok(None);
        }
        input.advance(LENGTH_PREFIX);
        let frame = input.split_to(len as usize).freeze();
        Frame::parse(frame).map(Some)
    }

    /// Parses one frame without its length prefix.
    pub fn parse(frame: Bytes) -> Result<Frame, SpopError> {
        let mut reader = Reader::new(frame);
        let frame_type = reader.u8("frame type")?;
        let flags = reader.u32("flags")?;
        let stream_id = reader.varint("stream id")?;
        let frame_id = reader.varint("frame id")?;
        if frame_type == TYPE_UNSET || flags & FLAG_FIN == 0 {
            return Err(SpopError::Fragmented);
        }
        let connection_level = matches!(
            frame_type,
            TYPE_HAPROXY_HELLO | TYPE_HAPROXY_DISCONNECT | TYPE_AGENT_HELLO | TYPE_AGENT_DISCONNECT
        );
        if connection_level && (stream_id != 0 || frame_id != 0) {
            return Err(SpopError::Invalid(
                "HELLO and DISCONNECT frames carry stream and frame id 0".into(),
            ));
        }
        Ok(match frame_type {
            TYPE_HAPROXY_HELLO => Frame::HaproxyHello(haproxy_hello(read_kv_list(&mut reader)?)?),
            TYPE_AGENT_HELLO => Frame::AgentHello(agent_hello(read_kv_list(&mut reader)?)?),
            TYPE_HAPROXY_DISCONNECT => {
                Frame::HaproxyDisconnect(disconnect(read_kv_list(&mut reader)?)?)
            }
            TYPE_AGENT_DISCONNECT => {
                Frame::AgentDisconnect(disconnect(read_kv_list(&mut reader)?)?)
            }
            TYPE_NOTIFY => Frame::Notify(Notify {
                stream_id,
                frame_id,
                messages: read_messages(&mut reader)?,
            }),
            TYPE_ACK => Frame::Ack(Ack {
                stream_id,
                frame_id,
                actions: read_actions(&mut reader)?,
            }),
            other => Frame::Unknown(other),
        })
    }
}

fn name(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn haproxy_hello_items(hello: &HaproxyHello) -> KvList {
    let mut items = vec![
        (
            name("supported-versions"),
            TypedData::string(&hello.supported_versions),
        ),
        (
            name("max-frame-size"),
            TypedData::Uint32(hello.max_frame_size),
        ),
        (name("capabilities"), TypedData::string(&hello.capabilities)),
    ];
    if hello.healthcheck {
        items.push((name("healthcheck"), TypedData::Bool(true)));
    }
    if let Some(id) = &hello.engine_id {
        items.push((name("engine-id"), TypedData::string(id)));
    }
    items
}

fn agent_hello_items(hello: &AgentHello) -> KvList {
    vec![
        (name("version"), TypedData::string(&hello.version)),
        (
            name("max-frame-size"),
            TypedData::Uint32(hello.max_frame_size),
        ),
        (name("capabilities"), TypedData::string(&hello.capabilities)),
    ]
}

fn disconnect_items(disconnect: &Disconnect) -> KvList {
    vec![
        (
            name("status-code"),
            TypedData::Uint32(disconnect.status_code),
        ),
        (name("message"), TypedData::string(&disconnect.message)),
    ]
}

fn put_kv_list(out: &mut BytesMut, items: &[(Bytes, TypedData)]) {
    for (key, value) in items {
        put_bytes(out, key);
        value.encode(out);
    }
}

fn put_messages(out: &mut BytesMut, messages: &[Message]) {
    for message in messages {
        put_bytes(out, &message.name);
        // NB-ARGS is one byte: a message with more arguments cannot be expressed.
        let count = message.args.len().min(u8::MAX as usize);
        out.put_u8(count as u8);
        put_kv_list(out, &message.args[..count]);
    }
}

fn put_actions(out: &mut BytesMut, actions: &[Action]) {
    for action in actions {
        match action {
            Action::SetVar { scope, name, value } => {
                out.put_u8(ACTION_SET_VAR);
                out.put_u8(3);
                out.put_u8(*scope as u8);
                put_bytes(out, name);
                value.encode(out);
            }
            Action::UnsetVar { scope, name } => {
                out.put_u8(ACTION_UNSET_VAR);
                out.put_u8(2);
                out.put_u8(*scope as u8);
                put_bytes(out, name);
            }
        }
    }
}

fn read_kv_list(reader: &mut Reader) -> Result<KvList, SpopError> {
    let mut items = Vec::new();
    while !reader.is_empty() {
        let key = reader.bytes("item name")?;
        items.push((key, reader.typed()?));
    }
    Ok(items)
}

fn read_messages(reader: &mut Reader) -> Result<Vec<Message>, SpopError> {
    let mut messages = Vec::new();
    while !reader.is_empty() {
        let name = reader.bytes("message name")?;
        let count = reader.u8("argument count")?;
        let mut args = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let key = reader.bytes("argument name")?;
            args.push((key, reader.typed()?));
        }
        messages.push(Message { name, args });
    }
    Ok(messages)
}

fn read_actions(reader: &mut Reader) -> Result<Vec<Action>, SpopError> {
    let mut actions = Vec::new();
    while !reader.is_empty() {
        let action_type = reader.u8("action type")?;
        let count = reader.u8("action argument count")?;
        let action = match (action_type, count) {
            (ACTION_SET_VAR, 3) => Action::SetVar {
                scope: VarScope::from_byte(reader.u8("variable scope")?)?,
                name: reader.bytes("variable name")?,
                value: reader.typed()?,
            },
            (ACTION_UNSET_VAR, 2) => Action::UnsetVar {
                scope: VarScope::from_byte(reader.u8("variable scope")?)?,
                name: reader.bytes("variable name")?,
            },
            (t, n) => return Err(SpopError::Invalid(format!("action {t} with {n} arguments"))),
        };
        actions.push(action);
    }
    Ok(actions)
}

fn find<'a>(items: &'a KvList, key: &str) -> Option<&'a TypedData> {
    items
        .iter()
        .find(|(k, _)| k.as_ref() == key.as_bytes())
        .map(|(_, v)| v)
}

fn text_item(items: &KvList, key: &'static str) -> Result<String, SpopError> {
    let value = find(items, key).ok_or(SpopError::MissingItem(key))?;
    let bytes = match value {
        TypedData::String(b) => b,
        _ => return Err(SpopError::MissingItem(key)),
    };
    String::from_utf8(bytes.to_vec()).map_err(|_| SpopError::Invalid(format!("{key} is not UTF-8")))
}

fn u32_item(items: &KvList, key: &'static str) -> Result<u32, SpopError> {
    find(items, key)
        .and_then(TypedData::as_u64)
        .ok_or(SpopError::MissingItem(key))
        .and_then(|v| u32::try_from(v).map_err(|_| SpopError::OutOfRange(key)))
}

fn haproxy_hello(items: KvList) -> Result<HaproxyHello, SpopError> {
    Ok(HaproxyHello {
        supported_versions: text_item(&items, "supported-versions")?,
        max_frame_size: u32_item(&items, "max-frame-size")?,
        capabilities: text_item(&items, "capabilities")?,
        healthcheck: matches!(find(&items, "healthcheck"), Some(TypedData::Bool(true))),
        engine_id: text_item(&items, "engine-id").ok(),
    })
}

fn agent_hello(items: KvList) -> Result<AgentHello, SpopError> {
    Ok(AgentHello {
        version: text_item(&items, "version")?,
        max_frame_size: u32_item(&items, "max-frame-size")?,
        capabilities: text_item(&items, "capabilities")?,
    })
}

fn disconnect(items: KvList) -> Result<Disconnect, SpopError> {
    Ok(Disconnect {
        status_code: u32_item(&items, "status-code")?,
        message: text_item(&items, "message")?,
    })
}
