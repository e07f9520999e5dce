//! Checks a RegistrationRequest in the order of PROTOCOL.md §3 (first frame well formed,
//! version, id syntax, auth, allowlist), stopping at the first failure. Auth has two parts:
//! under mutual TLS the agent_id must be named by the client certificate, and when
//! `require-auth` is on the token must be valid; both fail as `auth_failed`. The connection limit
//! (check 6) needs the live connection counts and is applied by the pool.

use sentinel_agent_protocol::{
    is_valid_agent_id, AgentPattern, Frame, MessageType, RegistrationErrorCode, RegistrationRequest,
};

use super::auth::{token_is_valid, TokenRule};
use super::ClientIdentity;
use super::ReverseListenerConfig;

/// A refused registration: the code sent to the agent and a sentence for both logs.
/// The message never contains the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The §3 error code.
    pub code: RegistrationErrorCode,
    /// What went wrong, for the agent's and the proxy's log.
    pub message: String,
}

impl Rejection {
    /// A rejection with the code's default message.
    pub fn new(code: RegistrationErrorCode) -> Rejection {
        Rejection {
            code,
            message: code.default_message().to_string(),
        }
    }
}

/// The stateless part of registration validation.
#[derive(Debug, Clone)]
pub struct RegistrationValidator {
    require_auth: bool,
    tokens: Vec<TokenRule>,
    allowed_agents: Option<Vec<AgentPattern>>,
}

impl RegistrationValidator {
    /// A validator for the listener settings in `config`.
    pub fn new(config: &ReverseListenerConfig) -> RegistrationValidator {
        RegistrationValidator {
            require_auth: config.require_auth,
            tokens: config.tokens.clone(),
            allowed_agents: config.allowed_agents.clone(),
        }
    }

    /// Validates the first frame of a connection that has no client certificate.
    pub fn validate(&self, frame: &Frame) -> Result<RegistrationRequest, Rejection> {
        self.validate_with_identity(frame, None)
    }

    /// Validates the first frame of a connection. `identity` is the verified client
    /// certificate's identity on a mutual-TLS connection, and `None` otherwise.
    pub fn validate_with_identity(
        &self,
        frame: &Frame,
        identity: Option<&ClientIdentity>,
    ) -> Result<RegistrationRequest, Rejection> {
        if frame.message_type() != Some(MessageType::RegistrationRequest) {
            return Err(Rejection {
                code: RegistrationErrorCode::InvalidRequest,
                message: format!(
                    "the first frame must be a RegistrationRequest (type 0x01), got type 0x{:02x}",
                    frame.type_byte
                ),
            });
        }
        let request = RegistrationRequest::parse(&frame.payload)
            .map_err(|(code, message)| Rejection { code, message })?;
        if !is_valid_agent_id(&request.agent_id) {
            return Err(Rejection::new(RegistrationErrorCode::InvalidAgentId));
        }
        if let Some(identity) = identity {
            if !identity.names(&request.agent_id) {
                return Err(Rejection {
                    code: RegistrationErrorCode::AuthFailed,
                    message: format!(
                        "Authentication failed: agent_id {:?} is neither a DNS name in the client certificate's subject alternative names nor its subject common name",
                        request.agent_id
                    ),
                });
            }
        }
        if self.require_auth {
            let token = request.auth_token.as_ref().map(|t| t.expose());
            if !token_is_valid(&self.tokens, &request.agent_id, token) {
                return Err(Rejection::new(RegistrationErrorCode::AuthFailed));
            }
        }
        if let Some(allowed) = &self.allowed_agents {
            if !allowed.iter().any(|p| p.matches(&request.agent_id)) {
                return Err(Rejection::new(RegistrationErrorCode::NotAllowed));
            }
        }
        Ok(request)
    }
}
