//! Registration (PROTOCOL.md §3): the agent's first frame, the proxy's answer, and the error
//! vocabulary with which codes are permanent ("give up") and which are worth a retry.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::Encoding;

/// The only protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 2;

/// What an agent can do, announced at registration. Missing flags are `false`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    /// Wants RequestHeaders events.
    pub handles_request_headers: bool,
    /// Wants RequestBodyChunk events.
    pub handles_request_body: bool,
    /// Wants ResponseHeaders events.
    pub handles_response_headers: bool,
    /// Wants ResponseBodyChunk events.
    pub handles_response_body: bool,
    /// Can decide on body chunks one at a time.
    pub supports_streaming: bool,
    /// Honours Cancel / CancelAll.
    pub supports_cancellation: bool,
    /// Most requests the agent accepts in flight on one connection; `None` leaves it to the proxy.
    pub max_concurrent_requests: Option<u32>,
}

/// The agent's shared secret. Its `Debug` output is a mask so it cannot leak through logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthToken(String);

impl AuthToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> AuthToken {
        AuthToken(token.into())
    }

    /// The secret itself, for comparison; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(***)")
    }
}

/// The first frame on a reverse connection (type 0x01), always JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationRequest {
    /// Must be [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The agent's identity, see [`crate::is_valid_agent_id`].
    pub agent_id: String,
    /// What the agent handles.
    #[serde(default, deserialize_with = "null_as_default")]
    pub capabilities: Capabilities,
    /// Shared secret, when the proxy requires auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<AuthToken>,
    /// Free-form facts about the agent (version, hostname, …) shown by the admin API.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: Map<String, Value>,
    /// Payload encodings the agent speaks, preferred first; empty means `["json"]`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub encodings: Vec<String>,
}

impl RegistrationRequest {
    /// A request for `agent_id` with default capabilities and no token.
    pub fn new(agent_id: impl Into<String>) -> RegistrationRequest {
        RegistrationRequest {
            protocol_version: PROTOCOL_VERSION,
            agent_id: agent_id.into(),
            capabilities: Capabilities::default(),
            auth_token: None,
            metadata: Map::new(),
            encodings: Vec::new(),
        }
    }

    /// Decodes a registration payload, classifying failures as PROTOCOL.md §3 checks 1 and 2
    /// do: anything that is not a JSON object is `invalid_request`; a JSON object whose
    /// `protocol_version` is not 2 is `version_mismatch` even if the rest has another shape
    /// (a newer agent must learn that the version is the problem); a v2 object that does not
    /// fit the v2 schema is `invalid_request`.
    pub fn parse(payload: &[u8]) -> Result<RegistrationRequest, (RegistrationErrorCode, String)> {
        let invalid = |why: String| (RegistrationErrorCode::InvalidRequest, why);
        let value: Value = serde_json::from_slice(payload)
            .map_err(|e| invalid(format!("registration is not valid JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| invalid("registration must be a JSON object".into()))?;
        match object.get("protocol_version") {
            Some(v) if v.as_u64() == Some(u64::from(PROTOCOL_VERSION)) => {}
            Some(v) if v.is_number() => {
                return Err((
                    RegistrationErrorCode::VersionMismatch,
                    format!("protocol version {v} is not supported; this proxy speaks version {PROTOCOL_VERSION}"),
                ))
            }
            _ => {
                return Err(invalid(
                    "protocol_version is missing or not a number".into(),
                ))
            }
        }
        // serde's messages quote the offending value; a malformed token must not be echoed.
        if object
            .get("auth_token")
            .is_some_and(|t| !t.is_string() && !t.is_null())
        {
            return Err(invalid("auth_token must be a string or null".into()));
        }
        serde_json::from_value(value)
            .map_err(|e| invalid(format!("registration does not match the v2 schema: {e}")))
    }
}

/// Why a registration was refused (PROTOCOL.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationErrorCode {
    /// The first frame was not a well-formed RegistrationRequest.
    InvalidRequest,
    /// `protocol_version` is not 2.
    VersionMismatch,
    /// `agent_id` does not follow the id syntax.
    InvalidAgentId,
    /// Missing or wrong token (the two are not distinguished).
    AuthFailed,
    /// The id is not on the allowlist.
    NotAllowed,
    /// This id already has the maximum number of live connections.
    ConnectionLimit,
    /// The registration did not arrive within the handshake timeout.
    Timeout,
    /// The proxy is shutting down.
    ShuttingDown,
    /// A code from a newer proxy that this crate does not know; treated as retryable.
    #[serde(other)]
    Unknown,
}

impl RegistrationErrorCode {
    /// Every code, in the order of PROTOCOL.md §3.
    pub const ALL: [RegistrationErrorCode; 8] = [
        RegistrationErrorCode::InvalidRequest,
        RegistrationErrorCode::VersionMismatch,
        RegistrationErrorCode::InvalidAgentId,
        RegistrationErrorCode::AuthFailed,
        RegistrationErrorCode::NotAllowed,
        RegistrationErrorCode::ConnectionLimit,
        RegistrationErrorCode::Timeout,
        RegistrationErrorCode::ShuttingDown,
    ];

    /// The wire name, e.g. `auth_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationErrorCode::InvalidRequest => "invalid_request",
            RegistrationErrorCode::VersionMismatch => "version_mismatch",
            RegistrationErrorCode::InvalidAgentId => "invalid_agent_id",
            RegistrationErrorCode::AuthFailed => "auth_failed",
            RegistrationErrorCode::NotAllowed => "not_allowed",
            RegistrationErrorCode::ConnectionLimit => "connection_limit",
            RegistrationErrorCode::Timeout => "timeout",
            RegistrationErrorCode::ShuttingDown => "shutting_down",
            RegistrationErrorCode::Unknown => "unknown",
        }
    }

    /// `true` when retrying the same registration can succeed later (limit, timeout,
    /// shutdown, unknown); `false` when the agent must give up until its configuration changes.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            RegistrationErrorCode::ConnectionLimit
                | RegistrationErrorCode::Timeout
                | RegistrationErrorCode::ShuttingDown
                | RegistrationErrorCode::Unknown
        )
    }

    /// A plain sentence for the `message` field; never mentions tokens.
    pub fn default_message(self) -> &'static str {
        match self {
            RegistrationErrorCode::InvalidRequest => {
                "The first frame must be a JSON RegistrationRequest (type 0x01)"
            }
            RegistrationErrorCode::VersionMismatch => {
                "Unsupported protocol version; this proxy speaks version 2"
            }
            RegistrationErrorCode::InvalidAgentId => {
                "agent_id must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
            }
            RegistrationErrorCode::AuthFailed => "Authentication failed",
            RegistrationErrorCode::NotAllowed => "This agent_id is not on the proxy's allowlist",
            RegistrationErrorCode::ConnectionLimit => {
                "Too many live connections for this agent_id; retry later"
            }
            RegistrationErrorCode::Timeout => {
                "The registration did not arrive within the handshake timeout"
            }
            RegistrationErrorCode::ShuttingDown => "The proxy is shutting down; retry later",
            RegistrationErrorCode::Unknown => "Registration refused",
        }
    }
}

impl fmt::Display for RegistrationErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The proxy's answer to a registration (type 0x02), always JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistrationResponse {
    /// The connection is registered and will now carry requests.
    Accepted {
        /// `<agent_id>-conn-<n>`.
        assigned_id: String,
        /// Configuration pushed to this agent, if its logical agent has any.
        config: Option<Value>,
        /// Payload encoding of every later frame on this connection.
        encoding: Encoding,
        /// How often the proxy pings an idle connection, in milliseconds.
        heartbeat_interval_ms: u64,
    },
    /// The registration was refused; the proxy closes the connection.
    Rejected {
        /// Why.
        error: RegistrationErrorCode,
        /// A sentence for the agent's log.
        message: String,
    },
}

impl RegistrationResponse {
    /// A rejection with the code's default message.
    pub fn rejected(error: RegistrationErrorCode) -> RegistrationResponse {
        RegistrationResponse::Rejected {
            error,
            message: error.default_message().to_string(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ResponseWire {
    accepted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    assigned_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<Option<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoding: Option<Encoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    heartbeat_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<RegistrationErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl Serialize for RegistrationResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = match self.clone() {
            RegistrationResponse::Accepted {
                assigned_id,
                config,
                encoding,
                heartbeat_interval_ms,
            } => ResponseWire {
                accepted: true,
                assigned_id: Some(assigned_id),
                config: Some(config),
                encoding: Some(encoding),
                heartbeat_interval_ms: Some(heartbeat_interval_ms),
                error: None,
                message: None,
            },
            RegistrationResponse::Rejected { error, message } => ResponseWire {
                accepted: false,
                assigned_id: None,
                config: None,
                encoding: None,
                heartbeat_interval_ms: None,
                error: Some(error),
                message: Some(message),
            },
        };
        wire.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RegistrationResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = ResponseWire::deserialize(deserializer)?;
        if wire.accepted {
            Ok(RegistrationResponse::Accepted {
                assigned_id: wire
                    .assigned_id
                    .ok_or_else(|| de::Error::missing_field("assigned_id"))?,
                config: wire.config.flatten(),
                encoding: wire.encoding.unwrap_or_default(),
                heartbeat_interval_ms: wire.heartbeat_interval_ms.unwrap_or(0),
            })
        } else {
            let error = wire.error.unwrap_or(RegistrationErrorCode::Unknown);
            Ok(RegistrationResponse::Rejected {
                error,
                message: wire
                    .message
                    .unwrap_or_else(|| error.default_message().to_string()),
            })
        }
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
