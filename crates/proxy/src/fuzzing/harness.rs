//! The fixture both drivers share: a pool with one logical agent, a listener context with auth,
//! an allowlist and a connection limit, and a way to open an in-memory connection whose
//! handshake runs in the listener's own task function.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sentinel_agent_protocol::{AgentPattern, Frame, FrameCodec};
use tokio::io::{DuplexStream, ReadHalf};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::{violation, Checked};
use crate::pool::{AgentPool, LogicalAgent, PoolSettings};
use crate::reverse::{run_handshake, HandshakeContext, PendingHandshakes, TokenRule, TokenSource};
use crate::transport::{IncomingConnection, Transport};
use crate::ReverseListenerConfig;

/// The token every `fuzz-*` id must present. It must never come back in a response.
pub const FUZZ_TOKEN: &str = "fuzz-secret-token";
/// The logical agent the pool serves with `fuzz-*` connections.
pub(crate) const LOGICAL_AGENT: &str = "fuzz";
/// Handshake timeout of the fixture listener (virtual time).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Heartbeat interval of the fixture pool (virtual time).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// Largest frame of a registered connection: small, so hostile lengths are cheap to reach.
pub(crate) const MAX_FRAME_LENGTH: usize = 64 * 1024;
/// Largest RegistrationRequest frame.
pub(crate) const MAX_REGISTRATION_FRAME_LENGTH: usize = 4 * 1024;
/// Bytes buffered in each direction of an in-memory connection.
const DUPLEX_BUFFER: usize = 256 * 1024;
/// Longest (virtual) wait for anything the proxy must do on its own: answer, close, forget.
pub(crate) const SETTLE: Duration = Duration::from_secs(120);

/// A listener's worth of state without the sockets.
pub(crate) struct Fixture {
    pub pool: AgentPool,
    pub context: Arc<HandshakeContext>,
    pending: Arc<PendingHandshakes>,
    shutdown: CancellationToken,
}

/// One in-memory connection: the agent's end and the proxy's handshake task.
pub(crate) struct Connection {
    pub agent: DuplexStream,
    pub handshake: JoinHandle<()>,
}

impl Fixture {
    /// Auth required (`fuzz-*` with [`FUZZ_TOKEN`]), allowlist `fuzz-1` and `fuzz-2*` (so
    /// `fuzz-3` authenticates and is then not allowed), one connection per agent id.
    pub fn new() -> Checked<Fixture> {
        let token = match TokenRule::load("fuzz-*", &TokenSource::Value(FUZZ_TOKEN.into())) {
            Ok(token) => token,
            Err(e) => return violation(format!("fixture token: {e}")),
        };
        let config = ReverseListenerConfig {
            require_auth: true,
            tokens: vec![token],
            allowed_agents: Some(vec![
                AgentPattern::new("fuzz-1"),
                AgentPattern::new("fuzz-2*"),
            ]),
            max_connections_per_agent: 1,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_frame_length: MAX_FRAME_LENGTH,
            max_registration_frame_length: MAX_REGISTRATION_FRAME_LENGTH,
            ..ReverseListenerConfig::default()
        };
        let logical = LogicalAgent::new(LOGICAL_AGENT, &["fuzz-*"])
            .with_config(serde_json::json!({ "rules": ["fuzz"] }));
        let pool = AgentPool::new(
            vec![logical],
            PoolSettings {
                heartbeat_interval: HEARTBEAT,
                write_timeout: Duration::from_secs(1),
                default_max_in_flight: 4,
                max_in_flight_limit: 8,
            },
        );
        let context = Arc::new(HandshakeContext::new(&config, pool.clone()));
        Ok(Fixture {
            pool,
            context,
            pending: PendingHandshakes::new(config.max_pending_handshakes),
            shutdown: CancellationToken::new(),
        })
    }

    /// What the accept loop does for a new TCP connection: admit it and spawn its handshake.
    pub fn connect(&self) -> Connection {
        let (agent, proxy) = tokio::io::duplex(DUPLEX_BUFFER);
        let incoming = IncomingConnection {
            stream: Box::new(proxy),
            transport: Transport::Tcp,
            peer: "fuzz".to_string(),
            // An address, so that failures go through the throttle as they do over TCP.
            address: Some(std::net::IpAddr::from([192, 0, 2, 1])),
            credentials: None,
        };
        let handshake = tokio::spawn(run_handshake(
            self.context.clone(),
            incoming,
            self.pending.admit(),
            self.shutdown.clone(),
        ));
        Connection { agent, handshake }
    }

    /// Waits until no connection is live, no agent id is tracked and no handshake is pending:
    /// what must hold once every agent has hung up.
    pub async fn settled(&self) -> Checked<()> {
        let quiet = async {
            loop {
                let stats = self.context.stats.snapshot();
                if self.pool.connection_count() == 0
                    && self.pool.tracked_agent_ids() == 0
                    && stats.pending_handshakes == 0
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(SETTLE, quiet).await.is_err() {
            return violation(format!(
                "the pool did not settle after every agent hung up: {} live connection(s), {} tracked id(s), {} pending handshake(s)",
                self.pool.connection_count(),
                self.pool.tracked_agent_ids(),
                self.context.stats.snapshot().pending_handshakes
            ));
        }
        Ok(())
    }
}

/// Reads every frame the proxy sends until it closes the connection. A frame the codec refuses
/// is a violation: the proxy must only ever write well-formed frames.
pub(crate) async fn read_all_frames(
    mut frames: FramedRead<ReadHalf<DuplexStream>, FrameCodec>,
) -> Checked<Vec<Frame>> {
    let read = async {
        let mut received = Vec::new();
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(frame) => received.push(frame),
                Err(e) => return violation(format!("the proxy sent a malformed frame: {e}")),
            }
        }
        Ok(received)
    };
    match tokio::time::timeout(SETTLE, read).await {
        Ok(result) => result,
        Err(_) => violation("the proxy did not close a connection the agent had hung up"),
    }
}
