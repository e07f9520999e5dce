//! [`ReverseConnectionListener`]: binds the Unix socket and/or TCP address, and runs the accept
//! loop. The loop only accepts and spawns: every connection's handshake runs in its own task,
//! the number pending at once is capped, and an accept error never stops the loop. TLS and
//! the peer checks happen in the handshake task, not here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

use super::handshake::{run_handshake, HandshakeContext};
use super::pending::PendingHandshakes;
use super::uds::{bind_uds, SocketFile};
use super::SocketDirectoryProblem;
use super::{
    InvalidReverseListener, RegistrationStats, RegistrationValidator, Reloadable,
    ReverseListenerConfig, TlsSlot,
};
use crate::pool::AgentPool;
use crate::transport::{IncomingConnection, PeerCredentials, Transport};

/// Pause after an accept error (for example, out of file descriptors) so the loop cannot spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The settings leave nothing to bind, or put TLS where it cannot apply.
    #[error(transparent)]
    Invalid(#[from] InvalidReverseListener),
    /// A live process already listens on the socket path.
    #[error("another process is already listening on {0}; stop it or choose another path")]
    AlreadyListening(PathBuf),
    /// The path exists and is not a socket; it is left untouched.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// The socket's directory is missing or cannot be written.
    #[error("cannot listen on {path}: {problem}")]
    SocketDirectory {
        /// The socket path.
        path: PathBuf,
        /// What is wrong with its directory, and what to do.
        problem: SocketDirectoryProblem,
    },
    /// Binding failed. The cause is in the message and not chained as a `source`, so a
    /// report that prints the chain says it once.
    #[error("cannot listen on {address}: {reason}")]
    Bind {
        /// The path or address.
        address: String,
        /// Why.
        reason: std::io::Error,
    },
}

/// The reverse-connection listener: where agents dial in.
pub struct ReverseConnectionListener {
    uds: Option<(UnixListener, SocketFile)>,
    tcp: Option<TcpListener>,
    context: Arc<HandshakeContext>,
    pending: Arc<PendingHandshakes>,
}

impl ReverseConnectionListener {
    /// Binds the configured sockets. Registered connections go into `pool`.
    pub async fn bind(
        config: ReverseListenerConfig,
        pool: AgentPool,
    ) -> Result<ReverseConnectionListener, ListenerError> {
        config.check_sockets()?;
        let uds = match &config.path {
            Some(path) => Some(bind_uds(path, config.socket_mode)?),
            None => None,
        };
        let tcp =
            match config.tcp_address {
                Some(address) => Some(TcpListener::bind(address).await.map_err(|source| {
                    ListenerError::Bind {
                        address: address.to_string(),
                        reason: source,
                    }
                })?),
                None => None,
            };
        let context = Arc::new(HandshakeContext::new(&config, pool));
        let listener = ReverseConnectionListener {
            uds,
            tcp,
            context,
            pending: PendingHandshakes::new(config.max_pending_handshakes),
        };
        tracing::info!(
            path = ?listener.uds_path(),
            tcp = ?listener.tcp_address(),
            require_auth = config.require_auth,
            tls = config.tls.is_some(),
            mutual_tls = config.tls.as_ref().is_some_and(|t| t.is_mutual()),
            peer_filter = config.peer_filter.is_active(),
            "reverse listener bound"
        );
        Ok(listener)
    }

    /// The Unix socket path, if bound.
    pub fn uds_path(&self) -> Option<&Path> {
        self.uds.as_ref().map(|(_, file)| file.path())
    }

    /// The bound TCP address (with the real port when configured with port 0).
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The auth and allowlist rules in force; a reload replaces them for new registrations.
    pub fn validator_slot(&self) -> Arc<Reloadable<RegistrationValidator>> {
        self.context.validator.clone()
    }

    /// The TLS configuration new TCP handshakes use, for reloading certificates; `None` when
    /// the TCP listener is plain.
    pub fn tls_slot(&self) -> Option<Arc<TlsSlot>> {
        self.context.tls.clone()
    }

    /// Registration counters of this listener.
    pub fn stats(&self) -> Arc<RegistrationStats> {
        self.context.stats.clone()
    }

    /// Accepts connections until `shutdown` is cancelled, then removes the socket file.
    /// Handshakes still pending at that moment are answered `shutting_down`.
    pub async fn run(self, shutdown: CancellationToken) {
        let ReverseConnectionListener {
            uds,
            tcp,
            context,
            pending,
        } = self;
        let (uds, _socket_file) = match uds {
            Some((listener, file)) => (Some(listener), Some(file)),
            None => (None, None),
        };
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = accept_uds(uds.as_ref()) => accepted,
                accepted = accept_tcp(tcp.as_ref(), context.tls.is_some()) => accepted,
            };
            match accepted {
                Ok(incoming) if !admitted(&context, &incoming) => {
                    tracing::debug!(peer = %incoming.peer, "connection from a blocked address closed");
                }
                Ok(incoming) => {
                    tracing::debug!(peer = %incoming.peer, transport = %incoming.transport, "agent connection accepted");
                    let ticket = pending.admit();
                    tokio::spawn(run_handshake(
                        context.clone(),
                        incoming,
                        ticket,
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!("accepting an agent connection failed: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            }
        }
        tracing::info!("reverse listener stopped");
    }
}

/// Whether a connection may start a handshake: its address is not blocked for failed
/// registrations. Refused connections are dropped unread, the cheapest answer there is.
fn admitted(context: &HandshakeContext, incoming: &IncomingConnection) -> bool {
    incoming
        .address
        .is_none_or(|address| context.stats.throttle().admits(address))
}

async fn accept_uds(listener: Option<&UnixListener>) -> std::io::Result<IncomingConnection> {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    let (stream, _) = listener.accept().await?;
    // One getsockopt, no waiting: the check itself is the handshake task's.
    let credentials = match stream.peer_cred() {
        Ok(cred) => Some(PeerCredentials {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
        }),
        Err(e) => {
            tracing::debug!("cannot read the credentials of a Unix socket peer: {e}");
            None
        }
    };
    Ok(IncomingConnection {
        stream: Box::new(stream),
        transport: Transport::Uds,
        peer: "uds".to_string(),
        address: None,
        credentials,
    })
}

async fn accept_tcp(
    listener: Option<&TcpListener>,
    tls: bool,
) -> std::io::Result<IncomingConnection> {
    let Some(listener) = listener else {
        return std::future::pending().await;
    };
    let (stream, peer) = listener.accept().await?;
    // Decisions are small and latency-bound.
    let _ = stream.set_nodelay(true);
    Ok(IncomingConnection {
        stream: Box::new(stream),
        transport: if tls { Transport::Tls } else { Transport::Tcp },
        peer: peer.to_string(),
        address: Some(peer.ip()),
        credentials: None,
    })
}
