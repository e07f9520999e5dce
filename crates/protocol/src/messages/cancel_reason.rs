//! [`CancelReason`]: the vocabulary of the `reason` field of Cancel and CancelAll
//! (PROTOCOL.md §4). It owns the reason strings and their spelling on the wire; which reason
//! fits a given failure is decided by the proxy, and what an agent does with it by the agent.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why the proxy stopped a request (Cancel) or every request of a connection (CancelAll).
///
/// On the wire it is a plain string. The proxy only sends the named variants; any other string
/// from a peer (a newer proxy, a test harness) decodes as [`CancelReason::Other`], so receivers
/// never reject a Cancel for its reason. Two reasons are equal when they are spelled alike, so
/// `Other("timeout")` equals [`CancelReason::Timeout`].
#[derive(Debug, Clone)]
pub enum CancelReason {
    /// The client went away or stopped sending its body (`client_disconnected`).
    ClientDisconnected,
    /// The agent did not answer within its timeout (`timeout`).
    Timeout,
    /// Another agent blocked or redirected the request (`blocked`).
    Blocked,
    /// An agent with `failure-mode closed` gave no verdict (`agent_unavailable`).
    AgentUnavailable,
    /// A body exceeded the route's inspection limit (`body_too_large`).
    BodyTooLarge,
    /// The upstream failed or stalled (`upstream_error`).
    UpstreamError,
    /// Any other string, kept as received; empty when the sender gave none.
    Other(String),
}

impl CancelReason {
    /// The reason as it is spelled on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            CancelReason::ClientDisconnected => "client_disconnected",
            CancelReason::Timeout => "timeout",
            CancelReason::Blocked => "blocked",
            CancelReason::AgentUnavailable => "agent_unavailable",
            CancelReason::BodyTooLarge => "body_too_large",
            CancelReason::UpstreamError => "upstream_error",
            CancelReason::Other(reason) => reason,
        }
    }

    /// The named variant spelled `reason`, if there is one.
    fn known(reason: &str) -> Option<CancelReason> {
        Some(match reason {
            "client_disconnected" => CancelReason::ClientDisconnected,
            "timeout" => CancelReason::Timeout,
            "blocked" => CancelReason::Blocked,
            "agent_unavailable" => CancelReason::AgentUnavailable,
            "body_too_large" => CancelReason::BodyTooLarge,
            "upstream_error" => CancelReason::UpstreamError,
            _ => return None,
        })
    }
}

/// No reason given: what a Cancel without a `reason` field decodes to.
impl Default for CancelReason {
    fn default() -> Self {
        CancelReason::Other(String::new())
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for CancelReason {
    fn from(reason: &str) -> Self {
        CancelReason::known(reason).unwrap_or_else(|| CancelReason::Other(reason.to_string()))
    }
}

impl From<String> for CancelReason {
    fn from(reason: String) -> Self {
        CancelReason::known(&reason).unwrap_or(CancelReason::Other(reason))
    }
}

// Equality and hashing go by the wire spelling, so a reason built from a string and the named
// variant it spells are one and the same.
impl PartialEq for CancelReason {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for CancelReason {}

impl Hash for CancelReason {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for CancelReason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CancelReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for CancelReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CancelReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(CancelReason::from)
    }
}

#[cfg(test)]
mod tests {
    use super::CancelReason;

    const NAMED: [(CancelReason, &str); 6] = [
        (CancelReason::ClientDisconnected, "client_disconnected"),
        (CancelReason::Timeout, "timeout"),
        (CancelReason::Blocked, "blocked"),
        (CancelReason::AgentUnavailable, "agent_unavailable"),
        (CancelReason::BodyTooLarge, "body_too_large"),
        (CancelReason::UpstreamError, "upstream_error"),
    ];

    #[test]
    fn named_reasons_keep_their_wire_spelling() {
        for (reason, spelled) in NAMED {
            assert_eq!(serde_json::to_value(&reason).unwrap(), spelled);
            assert_eq!(CancelReason::from(spelled), reason);
            assert!(!matches!(
                CancelReason::from(spelled),
                CancelReason::Other(_)
            ));
        }
    }

    #[test]
    fn unknown_reasons_decode_as_they_came() {
        let reason: CancelReason = serde_json::from_str(r#""operator""#).unwrap();
        assert_eq!(reason, CancelReason::Other("operator".into()));
        assert_eq!(serde_json::to_string(&reason).unwrap(), r#""operator""#);
        assert_eq!(CancelReason::Other("timeout".into()), CancelReason::Timeout);
        assert_eq!(CancelReason::default(), "");
    }
}
