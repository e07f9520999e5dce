//! Settings of the reverse listener, equivalent to the `reverse-listener` KDL block, with their
//! defaults and the rules that make a set of them usable ([`ReverseListenerConfig::check`]).
//! Reading them from KDL is the config loader's business; binding them is the listener's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sentinel_agent_protocol::{AgentPattern, DEFAULT_MAX_FRAME_LENGTH};

use super::{PeerFilter, ReverseTls, ThrottleSettings, TokenRule};

/// Everything the reverse listener needs to know. Defaults follow PROTOCOL.md §7.
#[derive(Debug, Clone)]
pub struct ReverseListenerConfig {
    /// Unix socket path for local agents.
    pub path: Option<PathBuf>,
    /// TCP address for remote agents.
    pub tcp_address: Option<SocketAddr>,
    /// Time allowed for the whole RegistrationRequest frame to arrive (default 10 s).
    pub handshake_timeout: Duration,
    /// Live connections allowed per `agent_id` (default 4).
    pub max_connections_per_agent: usize,
    /// Whether a valid token is required (default false).
    pub require_auth: bool,
    /// Tokens and the agent ids each one is for.
    pub tokens: Vec<TokenRule>,
    /// If set, only matching agent ids may register.
    pub allowed_agents: Option<Vec<AgentPattern>>,
    /// Agent connections allowed at once, all agents together (default 1024); more are
    /// refused with `connection_limit`.
    pub max_agent_connections: usize,
    /// How failed registrations from one peer address are delayed and then refused.
    pub failed_registrations: ThrottleSettings,
    /// Handshakes allowed to be pending at once; beyond it the oldest pending one is dropped
    /// so that a flood of silent connections cannot starve honest agents (default 1024).
    pub max_pending_handshakes: usize,
    /// Largest frame accepted from a registered agent (default 16 MiB).
    pub max_frame_length: usize,
    /// Largest RegistrationRequest frame (default 64 KiB): an unauthenticated peer gets less.
    pub max_registration_frame_length: usize,
    /// Unix socket file mode (default 0o660: owner and group may connect).
    pub socket_mode: u32,
    /// Which Unix socket peers (by uid/gid) may register (default: all).
    pub peer_filter: PeerFilter,
    /// TLS on the TCP listener (default: none, plain TCP).
    pub tls: Option<ReverseTls>,
}

impl Default for ReverseListenerConfig {
    fn default() -> ReverseListenerConfig {
        ReverseListenerConfig {
            path: None,
            tcp_address: None,
            handshake_timeout: Duration::from_secs(10),
            max_connections_per_agent: 4,
            require_auth: false,
            tokens: Vec::new(),
            allowed_agents: None,
            max_agent_connections: 1024,
            failed_registrations: ThrottleSettings::default(),
            max_pending_handshakes: 1024,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            max_registration_frame_length: 64 * 1024,
            socket_mode: 0o660,
            peer_filter: PeerFilter::default(),
            tls: None,
        }
    }
}

/// A reverse-listener setting that cannot work with the others. The text is what a user sees
/// next to the position of the `reverse-listener` block (or its `tls` block) in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReverseListener {
    /// Neither a socket path nor a TCP address is configured.
    #[error("reverse-listener needs a `path` or a `tcp-address`")]
    NothingToBind,
    /// TLS is configured without a TCP address to serve it on.
    #[error("`tls` applies to the TCP listener: add a `tcp-address`")]
    TlsWithoutTcp,
    /// A uid/gid filter is configured without the Unix socket it filters.
    #[error("`allowed-uids` and `allowed-gids` apply to the Unix socket: add a `path`")]
    PeerFilterWithoutSocket,
    /// Authentication is required but no token could ever pass it.
    #[error("`require-auth true` needs at least one `auth-token`")]
    AuthWithoutToken,
}

impl ReverseListenerConfig {
    /// Whether there is something to bind, and TLS only where it can apply: what
    /// [`crate::ReverseConnectionListener::bind`] needs.
    pub fn check_sockets(&self) -> Result<(), InvalidReverseListener> {
        if self.path.is_none() && self.tcp_address.is_none() {
            return Err(InvalidReverseListener::NothingToBind);
        }
        if self.tls.is_some() && self.tcp_address.is_none() {
            return Err(InvalidReverseListener::TlsWithoutTcp);
        }
        Ok(())
    }

    /// Every rule a configuration file must follow: [`Self::check_sockets`], and settings
    /// that would silently do nothing (a peer filter without a socket, required
    /// authentication without a token) are refused too.
    pub fn check(&self) -> Result<(), InvalidReverseListener> {
        self.check_sockets()?;
        if self.peer_filter.is_active() && self.path.is_none() {
            return Err(InvalidReverseListener::PeerFilterWithoutSocket);
        }
        if self.require_auth && self.tokens.is_empty() {
            return Err(InvalidReverseListener::AuthWithoutToken);
        }
        Ok(())
    }
}
