//! The registration path: how agents get in. Binding the Unix and TCP sockets, the accept loop,
//! the per-connection handshake task with its timeout (TLS included), the Unix socket peer
//! check, and validating the RegistrationRequest (version, id syntax, auth with the client
//! certificate's identity, allowlist). The per-agent connection limit is enforced by the
//! [`crate::AgentPool`], which owns the connection counts. What happens after a connection is
//! accepted into the pool is not this module's business.

mod auth;
mod config;
mod handshake;
mod listener;
mod peer;
mod pending;
mod reloadable;
mod stats;
mod throttle;
mod tls;
mod uds;
mod validator;

pub use auth::{TokenRule, TokenSource};
pub use config::{InvalidReverseListener, ReverseListenerConfig};
pub use listener::{ListenerError, ReverseConnectionListener};
pub use peer::PeerFilter;
pub use reloadable::Reloadable;
pub use stats::{RegistrationStats, RegistrationStatsSnapshot};
pub use throttle::{ThrottleSettings, ThrottleSnapshot};
pub use tls::{ClientIdentity, ReverseTls, TlsError, TlsFiles, TlsSlot};
pub use uds::{socket_directory_problem, SocketDirectoryProblem};
pub use validator::{RegistrationValidator, Rejection};

// For `crate::fuzzing`, which drives one connection's handshake without the accept loop.
#[cfg(feature = "fuzzing")]
pub(crate) use handshake::{run_handshake, HandshakeContext};
#[cfg(feature = "fuzzing")]
pub(crate) use pending::PendingHandshakes;
