//! The SDK's error types, one per stage: parsing an address, building the runner's
//! configuration, dialing, registering, and running. Messages name addresses, agent ids and
//! environment variables, never a token.

use std::time::Duration;

use sentinel_agent_protocol::{MessageType, ProtocolError, RegistrationErrorCode};

use crate::tls::TlsConfigError;

/// A proxy address that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text is not `unix:/path`, `tcp:host:port` or `tls:host:port`.
    #[error("invalid proxy address {input:?}: {why}")]
    Invalid {
        /// What was given.
        input: String,
        /// What is wrong with it.
        why: String,
    },
}

/// The runner's configuration is unusable; nothing was dialled.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The agent id does not follow `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`.
    #[error("agent id {0:?} is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}$")]
    InvalidAgentId(String),
    /// No proxy address was given.
    #[error(
        "no proxy to connect to; give at least one address (--connect unix:/path or tcp:host:port)"
    )]
    NoProxy,
    /// The TLS settings for `tls:` proxies are missing or unusable.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// The environment variable meant to hold the auth token is unset, empty or not UTF-8.
    #[error("environment variable {0} (the auth token) is not set or empty")]
    MissingTokenEnv(String),
    /// A count that must be positive is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// The backoff settings contradict each other.
    #[error("invalid backoff: {0}")]
    Backoff(String),
    /// An address did not parse.
    #[error(transparent)]
    Address(#[from] AddressError),
}

/// Opening the socket to a proxy failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// A `tls:` address was dialled without TLS settings.
    #[error("cannot dial {0}: no TLS settings; pass --tls-ca FILE (and --tls-cert/--tls-key for mutual TLS)")]
    TlsNotConfigured(String),
    /// The TLS server name for the address is invalid.
    #[error("cannot dial {address}: {source}")]
    ServerName {
        /// The proxy address.
        address: String,
        /// Why.
        source: TlsConfigError,
    },
    /// The TLS handshake failed (untrusted or mismatching proxy certificate, client
    /// certificate refused, not a TLS listener, …).
    #[error("TLS handshake with {address} failed: {source}")]
    Tls {
        /// The proxy address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connect call failed (nothing listening, permission denied, …).
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The proxy address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connect call did not finish in time.
    #[error("connecting to {address} timed out after {after:?}")]
    Timeout {
        /// The proxy address.
        address: String,
        /// The timeout that elapsed.
        after: Duration,
    },
}

/// One registration attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The socket could not be opened.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The proxy refused the registration.
    #[error("the proxy refused the registration: {code}: {message}")]
    Rejected {
        /// The §3 error code.
        code: RegistrationErrorCode,
        /// The proxy's explanation.
        message: String,
    },
    /// No RegistrationResponse arrived in time.
    #[error("no registration response within {0:?}")]
    Timeout(Duration),
    /// The proxy closed the connection without answering.
    #[error("the proxy closed the connection before answering the registration")]
    Closed,
    /// The proxy answered with something other than a RegistrationResponse.
    #[error("expected a RegistrationResponse, got {0}")]
    Unexpected(MessageType),
    /// Framing, encoding or the stream failed.
    #[error("protocol error during registration: {0}")]
    Protocol(#[from] ProtocolError),
}

impl RegisterError {
    /// Whether retrying cannot help until the agent's or the proxy's configuration changes
    /// (PROTOCOL.md §3 "give up" codes, or an address this SDK cannot dial).
    pub fn is_permanent(&self) -> bool {
        match self {
            RegisterError::Rejected { code, .. } => !code.is_retryable(),
            RegisterError::Dial(DialError::TlsNotConfigured(_) | DialError::ServerName { .. }) => {
                true
            }
            _ => false,
        }
    }
}

/// The runner could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The SIGTERM / ctrl-c handler could not be installed.
    #[error("cannot install the shutdown signal handler: {0}")]
    Signal(std::io::Error),
}

/// What a handler may fail with; shown in the log, and for requests sent to the proxy as a
/// RequestError message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
