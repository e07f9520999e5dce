//! Settings of the reverse listener, equivalent to the `reverse-listener` KDL block.

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
