//! The agent's replies: Decision (0x20) with its action, header operations, chunk replacement
//! and audit record, and RequestError (0x22) (PROTOCOL.md §4).

use bytes::Bytes;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::HeaderPair;

/// Default status of a `block` decision.
pub const DEFAULT_BLOCK_STATUS: u16 = 403;
/// Default status of a `redirect` decision.
pub const DEFAULT_REDIRECT_STATUS: u16 = 302;

/// What the agent wants done with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Proceed; this agent is done with the current phase.
    Allow,
    /// No verdict yet: send the next event of this phase (`allow` if it was the last).
    Continue,
    /// Answer the client directly.
    Block {
        /// Response status (default 403).
        status: u16,
        /// Response body, if any.
        body: Option<String>,
        /// Response headers.
        headers: Vec<HeaderPair>,
    },
    /// Send the client elsewhere.
    Redirect {
        /// The `Location` header.
        location: String,
        /// Response status (default 302).
        status: u16,
    },
}

impl Action {
    /// The wire name: `allow`, `continue`, `block` or `redirect`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Continue => "continue",
            Action::Block { .. } => "block",
            Action::Redirect { .. } => "redirect",
        }
    }

    /// Whether this action ends the phase for the agent (everything but `continue`).
    pub fn is_final(&self) -> bool {
        !matches!(self, Action::Continue)
    }
}

/// A header operation applied to the request (before the upstream) or the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum HeaderOp {
    /// Replace every value of `name` with `value`.
    Set {
        /// Header name.
        name: String,
        /// New value.
        value: String,
    },
    /// Append one more value.
    Add {
        /// Header name.
        name: String,
        /// Added value.
        value: String,
    },
    /// Remove every value of `name`.
    Remove {
        /// Header name.
        name: String,
    },
}

/// Why the agent decided as it did, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Audit {
    /// Free-form classification, e.g. `sqli`.
    pub tags: Vec<String>,
    /// Ids of the rules that fired.
    pub rule_ids: Vec<String>,
    /// One human sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Decision (0x20): the reply to every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The request decided on.
    pub request_id: u64,
    /// The verdict.
    pub action: Action,
    /// Operations on the request headers sent upstream.
    pub request_headers: Vec<HeaderOp>,
    /// Operations on the response headers sent to the client.
    pub response_headers: Vec<HeaderOp>,
    /// On an `allow`/`continue` reply to a body-chunk event: the replacement for that chunk.
    /// Ignored on `block` (whose body is [`Action::Block::body`]) and on `redirect`.
    pub body: Option<Bytes>,
    /// Why.
    pub audit: Option<Audit>,
}

impl Decision {
    /// A decision with `action` and nothing else.
    pub fn new(request_id: u64, action: Action) -> Decision {
        Decision {
            request_id,
            action,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            body: None,
            audit: None,
        }
    }

    /// `allow`.
    pub fn allow(request_id: u64) -> Decision {
        Decision::new(request_id, Action::Allow)
    }

    /// `continue`.
    pub fn continue_(request_id: u64) -> Decision {
        Decision::new(request_id, Action::Continue)
    }

    /// `block` with `status` and no body.
    pub fn block(request_id: u64, status: u16) -> Decision {
        Decision::new(
            request_id,
            Action::Block {
                status,
                body: None,
                headers: Vec::new(),
            },
        )
    }

    /// `redirect` to `location` with 302.
    pub fn redirect(request_id: u64, location: impl Into<String>) -> Decision {
        Decision::new(
            request_id,
            Action::Redirect {
                location: location.into(),
                status: DEFAULT_REDIRECT_STATUS,
            },
        )
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ActionKind {
    Allow,
    Continue,
    Block,
    Redirect,
}

/// The `body` field as received: a string on `block`, chunk bytes otherwise.
enum WireBody {
    Text(String),
    Data(Bytes),
}

impl<'de> Deserialize<'de> for WireBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = WireBody;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or raw bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireBody, E> {
                Ok(WireBody::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<WireBody, E> {
                Ok(WireBody::Text(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<WireBody, E> {
                Ok(WireBody::Data(Bytes::copy_from_slice(v)))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<WireBody, E> {
                Ok(WireBody::Data(Bytes::from(v)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The wire form of a decision, as received.
#[derive(Deserialize)]
struct DecisionWire {
    request_id: u64,
    action: ActionKind,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    headers: Option<Vec<HeaderPair>>,
    #[serde(default)]
    request_headers: Vec<HeaderOp>,
    #[serde(default)]
    response_headers: Vec<HeaderOp>,
    #[serde(default)]
    body: Option<WireBody>,
    #[serde(default)]
    audit: Option<Audit>,
}

/// The serializing twin of [`DecisionWire`]: borrows everything, so encoding a decision
/// allocates nothing beyond the output buffer.
#[derive(Serialize)]
struct DecisionWireRef<'a> {
    request_id: u64,
    action: ActionKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<&'a [HeaderPair]>,
    #[serde(skip_serializing_if = "<[HeaderOp]>::is_empty")]
    request_headers: &'a [HeaderOp],
    #[serde(skip_serializing_if = "<[HeaderOp]>::is_empty")]
    response_headers: &'a [HeaderOp],
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<WireBodyRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audit: Option<&'a Audit>,
}

/// The `body` field when serializing: a string on `block`, chunk bytes otherwise.
enum WireBodyRef<'a> {
    Text(&'a str),
    Data(&'a Bytes),
}

impl Serialize for WireBodyRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WireBodyRef::Text(text) => serializer.serialize_str(text),
            WireBodyRef::Data(data) => crate::body::serialize(data, serializer),
        }
    }
}

impl Serialize for Decision {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut wire = DecisionWireRef {
            request_id: self.request_id,
            action: ActionKind::Allow,
            status: None,
            location: None,
            headers: None,
            request_headers: &self.request_headers,
            response_headers: &self.response_headers,
            body: self.body.as_ref().map(WireBodyRef::Data),
            audit: self.audit.as_ref(),
        };
        match &self.action {
            Action::Allow => {}
            Action::Continue => wire.action = ActionKind::Continue,
            Action::Block {
                status,
                body,
                headers,
            } => {
                wire.action = ActionKind::Block;
                wire.status = Some(*status);
                wire.body = body.as_deref().map(WireBodyRef::Text);
                wire.headers = (!headers.is_empty()).then_some(headers.as_slice());
            }
            Action::Redirect { location, status } => {
                wire.action = ActionKind::Redirect;
                wire.status = Some(*status);
                wire.location = Some(location);
                wire.body = None;
            }
        }
        wire.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Decision {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = DecisionWire::deserialize(deserializer)?;
        let mut chunk_body = None;
        let action = match wire.action {
            ActionKind::Allow | ActionKind::Continue => {
                chunk_body = wire.body.map(chunk_bytes).transpose()?;
                if wire.action == ActionKind::Allow {
                    Action::Allow
                } else {
                    Action::Continue
                }
            }
            ActionKind::Block => Action::Block {
                status: wire.status.unwrap_or(DEFAULT_BLOCK_STATUS),
                body: wire.body.map(|body| match body {
                    WireBody::Text(text) => text,
                    WireBody::Data(data) => String::from_utf8_lossy(&data).into_owned(),
                }),
                headers: wire.headers.unwrap_or_default(),
            },
            ActionKind::Redirect => Action::Redirect {
                location: wire
                    .location
                    .ok_or_else(|| de::Error::custom("a redirect decision needs a `location`"))?,
                status: wire.status.unwrap_or(DEFAULT_REDIRECT_STATUS),
            },
        };
        Ok(Decision {
            request_id: wire.request_id,
            action,
            request_headers: wire.request_headers,
            response_headers: wire.response_headers,
            body: chunk_body,
            audit: wire.audit,
        })
    }
}

fn chunk_bytes<E: de::Error>(body: WireBody) -> Result<Bytes, E> {
    use base64::{engine::general_purpose::STANDARD, Engine};
    match body {
        WireBody::Data(data) => Ok(data),
        WireBody::Text(text) => STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|e| E::custom(format_args!("replacement body is not valid base64: {e}"))),
    }
}

/// RequestError (0x22): the agent could not process an event; the proxy applies the agent's
/// failure mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestError {
    /// The request that failed.
    pub request_id: u64,
    /// A short machine-readable code, e.g. `internal`.
    pub code: String,
    /// A sentence for the proxy's log.
    #[serde(default)]
    pub message: String,
}
