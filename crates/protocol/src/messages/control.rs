//! Control messages: cancellation, pushed configuration, draining and liveness
//! (PROTOCOL.md §4–§6).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cancel_reason::CancelReason;

/// Cancel (0x30): stop working on one request; no reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The request to stop.
    pub request_id: u64,
    /// Why, e.g. [`CancelReason::ClientDisconnected`].
    #[serde(default)]
    pub reason: CancelReason,
}

/// CancelAll (0x31): stop working on every request of this connection; no reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAll {
    /// Why.
    #[serde(default)]
    pub reason: CancelReason,
}

/// ConfigUpdate (0x40): new configuration for the agent's logical group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    /// The whole new configuration (not a diff).
    pub config: Value,
}

/// GoAway (0x41): the sender starts no new requests on this connection (proxy) or asks to be
/// given none (agent); in-flight requests finish within `grace_ms`, then the connection closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoAway {
    /// Why, e.g. `shutdown`.
    #[serde(default)]
    pub reason: String,
    /// How long in-flight work may take before the connection closes.
    #[serde(default)]
    pub grace_ms: u64,
}

/// Ping (0xF0): answered by a Pong with the same nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Echoed back in the Pong.
    pub nonce: u64,
}

/// Pong (0xF1): the answer to a Ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The Ping's nonce.
    pub nonce: u64,
}
