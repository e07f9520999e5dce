//! The byte streams agents arrive on. Unix, TCP and TLS streams are erased into one boxed type
//! (the protocol crate's, shared with the SDK) so that everything after the handshake has a
//! single code path.

use std::fmt;

pub use sentinel_agent_protocol::io::{AgentStream, BoxedStream};
use serde::Serialize;

/// How an agent connection reached the proxy, as reported by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A Unix domain socket.
    Uds,
    /// Plain TCP.
    Tcp,
    /// TCP with TLS.
    Tls,
}

impl Transport {
    /// `uds`, `tcp` or `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Uds => "uds",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The credentials of a Unix socket peer, as the kernel reports them (`SO_PEERCRED`): the
/// effective uid and gid of the process when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Effective user id.
    pub uid: u32,
    /// Effective (primary) group id; supplementary groups are not reported.
    pub gid: u32,
    /// Process id, where the platform reports it.
    pub pid: Option<i32>,
}

/// A freshly accepted, not yet registered connection.
pub struct IncomingConnection {
    /// The stream, as accepted: for [`Transport::Tls`] the TLS handshake has not run yet (it
    /// runs in the handshake task, bounded by the handshake timeout).
    pub stream: BoxedStream,
    /// Which listener it came through.
    pub transport: Transport,
    /// The peer's address, for logs (`unix` peers show as `uds`).
    pub peer: String,
    /// The peer's IP address (TCP and TLS only), which failed registrations are throttled by.
    pub address: Option<std::net::IpAddr>,
    /// The peer's credentials (Unix socket peers only; `None` if the kernel would not say).
    pub credentials: Option<PeerCredentials>,
}
