//! Request and response events the proxy sends to an agent (PROTOCOL.md §4).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::HeaderPair;

/// RequestHeaders (0x10): the start of a request's request phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHeaders {
    /// Unique per connection; every reply carries it back.
    pub request_id: u64,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path and query as the client sent them.
    pub uri: String,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub version: String,
    /// Ordered `[name, value]` pairs; repeated names stay repeated.
    #[serde(default)]
    pub headers: Vec<HeaderPair>,
    /// The client's socket address.
    #[serde(default)]
    pub client_addr: String,
    /// The name of the route that matched.
    #[serde(default)]
    pub route: String,
    /// Whether body chunks may follow.
    #[serde(default)]
    pub has_body: bool,
}

/// RequestBodyChunk (0x11) and ResponseBodyChunk (0x13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyChunk {
    /// The request this chunk belongs to.
    pub request_id: u64,
    /// 0 for the first chunk of the body, then 1, 2, …
    pub chunk_index: u64,
    /// The bytes: base64 in JSON, raw `bin` in MessagePack.
    #[serde(with = "crate::body")]
    pub data: Bytes,
    /// Whether this is the body's last chunk.
    #[serde(default)]
    pub is_last: bool,
}

/// ResponseHeaders (0x12): the start of a request's response phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHeaders {
    /// The request this response belongs to.
    pub request_id: u64,
    /// Upstream status code.
    pub status: u16,
    /// Ordered `[name, value]` pairs.
    #[serde(default)]
    pub headers: Vec<HeaderPair>,
    /// Whether body chunks may follow.
    #[serde(default)]
    pub has_body: bool,
}
