//! [`AgentScript`]: what a registered agent does on its connection, and how fuzz input bytes
//! become one. One byte format serves the fuzz target, its corpus and the regression tests, so
//! a crashing input found by the fuzzer replays unchanged as a test.
//!
//! Layout: `encoding` (even: JSON, odd: MessagePack), `max_concurrent_requests` (0: none),
//! requests to start (mod 9), flags (bit 0: the agent hangs up at the end), then operations,
//! each a tag byte (mod 10) and its fields; a truncated field reads as zeros.

use bytes::{BufMut, Bytes, BytesMut};
use sentinel_agent_protocol::{
    Action, Decision, Encoding, Frame, FrameCodec, GoAway, Message, MessageType, Ping, Pong,
    RequestError,
};
use tokio_util::codec::Encoder;

/// Operations read from one input at most: enough for every interleaving that matters.
const MAX_OPS: usize = 64;
/// Requests started at most.
pub(crate) const MAX_REQUESTS: usize = 8;

/// One thing the agent does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOp {
    /// A Decision for `request_id` (known ids are 1..=requests).
    Decision {
        /// Request it answers.
        request_id: u64,
        /// 0 allow, 1 continue, 2 block, 3 redirect (mod 4).
        action: u8,
        /// Status of a block or redirect; any value, valid or not.
        status: u16,
    },
    /// A RequestError for `request_id`.
    RequestError {
        /// Request it fails.
        request_id: u64,
    },
    /// A Pong (the proxy's pings carry nonces 1, 2, …).
    Pong {
        /// Echoed nonce.
        nonce: u64,
    },
    /// A Ping the proxy must answer.
    Ping {
        /// Nonce.
        nonce: u64,
    },
    /// The agent asks to drain.
    GoAway {
        /// Grace period asked for.
        grace_ms: u64,
    },
    /// A whole frame of any type with any payload.
    Frame {
        /// Type byte, known or not.
        type_byte: u8,
        /// Payload, junk or not.
        payload: Vec<u8>,
    },
    /// Raw bytes: partial frames, stray lengths.
    Bytes(Vec<u8>),
    /// A frame header announcing `length` bytes, and nothing after it.
    Announce {
        /// The length field.
        length: u32,
    },
    /// Let (virtual) time pass.
    Wait {
        /// How long.
        millis: u64,
    },
    /// The proxy-side caller of a request gives up (client disconnected).
    DropRequest {
        /// Which request (1-based).
        request_id: u64,
    },
}

/// A registered agent's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentScript {
    /// Encoding offered at registration.
    pub encoding: Encoding,
    /// `max_concurrent_requests` announced at registration.
    pub max_concurrent_requests: Option<u32>,
    /// Requests the proxy starts once the agent is registered (at most 8).
    pub requests: usize,
    /// What the agent does.
    pub ops: Vec<AgentOp>,
    /// Whether the agent hangs up after its ops (otherwise it falls silent).
    pub hang_up: bool,
}

struct Input<'a> {
    bytes: &'a [u8],
}

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((first, rest)) => {
                self.bytes = rest;
                *first
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.bytes.len());
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        taken.to_vec()
    }
}

impl AgentScript {
    /// Reads a script from fuzz input; every input gives one.
    pub fn from_bytes(bytes: &[u8]) -> AgentScript {
        let mut input = Input { bytes };
        let encoding = if input.u8() % 2 == 0 {
            Encoding::Json
        } else {
            Encoding::MessagePack
        };
        let max_concurrent_requests = match input.u8() {
            0 => None,
            n => Some(u32::from(n % 10)),
        };
        let requests = usize::from(input.u8()) % (MAX_REQUESTS + 1);
        let hang_up = input.u8() & 1 == 1;
        let mut ops = Vec::new();
        while !input.bytes.is_empty() && ops.len() < MAX_OPS {
            ops.push(read_op(&mut input));
        }
        AgentScript {
            encoding,
            max_concurrent_requests,
            requests,
            ops,
            hang_up,
        }
    }

    /// The inverse of [`AgentScript::from_bytes`], for writing seeds and regression inputs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![
            u8::from(self.encoding == Encoding::MessagePack),
            self.max_concurrent_requests
                .map_or(0, |n| (n % 10) as u8 + 10),
            self.requests as u8,
            u8::from(self.hang_up),
        ];
        for op in &self.ops {
            write_op(op, &mut out);
        }
        out
    }
}

fn read_op(input: &mut Input<'_>) -> AgentOp {
    match input.u8() % 10 {
        0 => AgentOp::Decision {
            request_id: u64::from(input.u8()),
            action: input.u8() % 4,
            status: input.u16(),
        },
        1 => AgentOp::RequestError {
            request_id: u64::from(input.u8()),
        },
        2 => AgentOp::Pong {
            nonce: u64::from(input.u8()),
        },
        3 => AgentOp::Ping {
            nonce: u64::from(input.u8()),
        },
        4 => AgentOp::GoAway {
            grace_ms: u64::from(input.u16()),
        },
        5 => {
            let type_byte = input.u8();
            let length = usize::from(input.u8());
            AgentOp::Frame {
                type_byte,
                payload: input.take(length),
            }
        }
        6 => {
            let length = usize::from(input.u8());
            AgentOp::Bytes(input.take(length))
        }
        7 => AgentOp::Announce {
            length: input.u32(),
        },
        8 => AgentOp::Wait {
            millis: u64::from(input.u16()),
        },
        _ => AgentOp::DropRequest {
            request_id: u64::from(input.u8()),
        },
    }
}

fn write_op(op: &AgentOp, out: &mut Vec<u8>) {
    let low = |n: u64| n as u8;
    let low16 = |n: u64| (n as u16).to_be_bytes();
    match op {
        AgentOp::Decision {
            request_id,
            action,
            status,
        } => {
            out.extend([0, low(*request_id), *action]);
            out.extend(status.to_be_bytes());
        }
        AgentOp::RequestError { request_id } => out.extend([1, low(*request_id)]),
        AgentOp::Pong { nonce } => out.extend([2, low(*nonce)]),
        AgentOp::Ping { nonce } => out.extend([3, low(*nonce)]),
        AgentOp::GoAway { grace_ms } => {
            out.push(4);
            out.extend(low16(*grace_ms));
        }
        AgentOp::Frame { type_byte, payload } => {
            let payload = &payload[..payload.len().min(255)];
            out.extend([5, *type_byte, payload.len() as u8]);
            out.extend_from_slice(payload);
        }
        AgentOp::Bytes(bytes) => {
            let bytes = &bytes[..bytes.len().min(255)];
            out.extend([6, bytes.len() as u8]);
            out.extend_from_slice(bytes);
        }
        AgentOp::Announce { length } => {
            out.push(7);
            out.extend(length.to_be_bytes());
        }
        AgentOp::Wait { millis } => {
            out.push(8);
            out.extend(low16(*millis));
        }
        AgentOp::DropRequest { request_id } => out.extend([9, low(*request_id)]),
    }
}

/// The bytes an op puts on the wire; `None` for ops that write nothing.
pub(crate) fn wire_bytes(op: &AgentOp, encoding: Encoding) -> Option<Bytes> {
    let message = match op {
        AgentOp::Decision {
            request_id,
            action,
            status,
        } => Message::Decision(Box::new(Decision::new(
            *request_id,
            decision_action(*action, *status),
        ))),
        AgentOp::RequestError { request_id } => Message::RequestError(RequestError {
            request_id: *request_id,
            code: "fuzz".into(),
            message: "scripted failure".into(),
        }),
        AgentOp::Pong { nonce } => Message::Pong(Pong { nonce: *nonce }),
        AgentOp::Ping { nonce } => Message::Ping(Ping { nonce: *nonce }),
        AgentOp::GoAway { grace_ms } => Message::GoAway(GoAway {
            reason: "fuzz".into(),
            grace_ms: *grace_ms,
        }),
        AgentOp::Frame { type_byte, payload } => {
            return encode_frame(Frame {
                type_byte: *type_byte,
                payload: Bytes::copy_from_slice(payload),
            })
        }
        AgentOp::Bytes(bytes) => return Some(Bytes::copy_from_slice(bytes)),
        AgentOp::Announce { length } => {
            let mut out = BytesMut::new();
            out.put_u32(*length);
            out.put_u8(MessageType::Decision as u8);
            return Some(out.freeze());
        }
        AgentOp::Wait { .. } | AgentOp::DropRequest { .. } => return None,
    };
    encode_frame(message.to_frame(encoding).ok()?)
}

fn decision_action(action: u8, status: u16) -> Action {
    match action % 4 {
        0 => Action::Allow,
        1 => Action::Continue,
        2 => Action::Block {
            status,
            body: Some("blocked by fuzz".into()),
            headers: Vec::new(),
        },
        _ => Action::Redirect {
            location: "/elsewhere".into(),
            status,
        },
    }
}

fn encode_frame(frame: Frame) -> Option<Bytes> {
    let mut out = BytesMut::new();
    // An empty payload still makes a valid one-byte frame; nothing here exceeds the maximum.
    FrameCodec::new().encode(frame, &mut out).ok()?;
    Some(out.freeze())
}
