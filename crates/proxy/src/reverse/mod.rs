//! The registration path: how agents get in. Binding the Unix and TCP sockets, the accept loop,
//! the per-connection handshake task with its timeout, and validating the RegistrationRequest
//! (version, id syntax, auth, allowlist). The per-agent connection limit is enforced by the
//! [`crate::AgentPool`], which owns the connection counts. What happens after a connection is
//! accepted into the pool is not this module's business.

mod auth;
mod config;
mod handshake;
mod listener;
mod pending;
mod stats;
mod uds;
mod validator;

pub use auth::{TokenRule, TokenSource};
pub use config::ReverseListenerConfig;
pub use listener::{ListenerError, ReverseConnectionListener};
pub use stats::{RegistrationStats, RegistrationStatsSnapshot};
pub use validator::{RegistrationValidator, Rejection};
