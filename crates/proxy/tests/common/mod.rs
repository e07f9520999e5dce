//! Test fixtures: a real listener on a temp-dir Unix socket and a port-0 TCP address, and a
//! bare-bones agent that speaks raw frames (so these tests depend on nothing but the protocol
//! crate and real sockets).
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sentinel::pool::PoolSettings;
use sentinel::reverse::{RegistrationStats, ReverseConnectionListener, ReverseListenerConfig};
use sentinel::transport::BoxedStream;
use sentinel::{AgentPool, LogicalAgent};
use sentinel_agent_protocol::*;
use serde_json::json;
use std::sync::Arc;
use tokio::net::{TcpStream, UnixStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

// The one `eventually` of the test support, for the test files that `use common::*`.
pub use sentinel_test_support::wait::eventually;

/// Which socket a test agent dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Uds,
    Tcp,
}

pub const BOTH: [Via; 2] = [Via::Uds, Via::Tcp];

pub struct Proxy {
    pub pool: AgentPool,
    pub stats: Arc<RegistrationStats>,
    pub socket: PathBuf,
    pub tcp: std::net::SocketAddr,
    pub shutdown: CancellationToken,
    pub listener_task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    pub async fn start() -> Proxy {
        Proxy::start_with(|_| {}, PoolSettings::default(), default_logical()).await
    }

    pub async fn start_with(
        configure: impl FnOnce(&mut ReverseListenerConfig),
        settings: PoolSettings,
        logical: Vec<LogicalAgent>,
    ) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("agents.sock");
        let mut config = ReverseListenerConfig {
            path: Some(socket.clone()),
            tcp_address: Some("127.0.0.1:0".parse().unwrap()),
            ..ReverseListenerConfig::default()
        };
        configure(&mut config);
        let pool = AgentPool::new(logical, settings);
        let listener = ReverseConnectionListener::bind(config, pool.clone())
            .await
            .expect("listener binds");
        let tcp = listener.tcp_address().expect("tcp bound");
        let stats = listener.stats();
        let shutdown = CancellationToken::new();
        let listener_task = tokio::spawn(listener.run(shutdown.clone()));
        Proxy {
            pool,
            stats,
            socket,
            tcp,
            shutdown,
            listener_task,
            _dir: dir,
        }
    }

    pub async fn dial(&self, via: Via) -> TestAgent {
        let stream: BoxedStream = match via {
            Via::Uds => Box::new(
                UnixStream::connect(&self.socket)
                    .await
                    .expect("uds connect"),
            ),
            Via::Tcp => Box::new(TcpStream::connect(self.tcp).await.expect("tcp connect")),
        };
        TestAgent {
            framed: Framed::new(stream, FrameCodec::new()),
            encoding: Encoding::Json,
        }
    }

    /// Dials and registers `agent_id`, asserting acceptance.
    pub async fn register(&self, via: Via, agent_id: &str) -> (TestAgent, String) {
        self.register_request(via, RegistrationRequest::new(agent_id))
            .await
    }

    pub async fn register_request(
        &self,
        via: Via,
        request: RegistrationRequest,
    ) -> (TestAgent, String) {
        let mut agent = self.dial(via).await;
        match agent.register(request).await {
            RegistrationResponse::Accepted { assigned_id, .. } => (agent, assigned_id),
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    /// Waits until the pool holds `n` connections.
    pub async fn wait_for_connections(&self, n: usize) {
        let pool = self.pool.clone();
        eventually("pool connection count", CONDITION_TIMEOUT, move || {
            std::future::ready(pool.connection_count() == n)
        })
        .await;
    }
}

pub fn default_logical() -> Vec<LogicalAgent> {
    vec![
        LogicalAgent::new("waf", &["waf-*"]).with_config(json!({"rules_version": "3.4.0"})),
        LogicalAgent::new("auth", &["auth-agent"]),
    ]
}

/// How long a condition of these in-process tests may take to hold.
pub const CONDITION_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestAgent {
    pub framed: Framed<BoxedStream, FrameCodec>,
    pub encoding: Encoding,
}

impl TestAgent {
    pub async fn register(&mut self, request: RegistrationRequest) -> RegistrationResponse {
        self.send(Message::from(request)).await;
        match self.recv().await {
            Some(Message::RegistrationResponse(response)) => {
                if let RegistrationResponse::Accepted { encoding, .. } = &*response {
                    self.encoding = *encoding;
                }
                *response
            }
            other => panic!("expected a RegistrationResponse, got {other:?}"),
        }
    }

    pub async fn send(&mut self, message: Message) {
        let frame = message.to_frame(self.encoding).expect("encodes");
        self.framed.send(frame).await.expect("send");
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.framed.get_mut().write_all(bytes).await.expect("write");
    }

    /// The next message, or `None` once the proxy closed the connection (end of stream, or a
    /// reset because it closed with our bytes unread). Fails after 10 s, and fails when the
    /// proxy sends bytes that are not a well-formed frame: that is a bug, not a close.
    pub async fn recv(&mut self) -> Option<Message> {
        let next = tokio::time::timeout(Duration::from_secs(10), self.framed.next())
            .await
            .expect("a frame or EOF within 10 s");
        match next {
            Some(Ok(frame)) => Some(Message::from_frame(&frame, self.encoding).expect("decodes")),
            None => None,
            Some(Err(ProtocolError::Io(e))) if is_a_close(&e) => None,
            Some(Err(e)) => panic!("the proxy sent something that is not a well-formed frame: {e}"),
        }
    }

    /// Every byte the proxy still sends until it closes the connection, unparsed (for a peer
    /// that does not speak the protocol, such as a plain-TCP client on a TLS port).
    pub async fn rest_of_stream(mut self) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut bytes = self.framed.read_buffer().to_vec();
        let read = self.framed.get_mut().read_to_end(&mut bytes);
        // A reset after the last byte is still the end of the stream.
        let _ = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the proxy closes the connection within 10 s");
        bytes
    }

    /// The next message that is not a Ping (Pings are answered).
    pub async fn recv_event(&mut self) -> Option<Message> {
        loop {
            match self.recv().await? {
                Message::Ping(ping) => self.send(Pong { nonce: ping.nonce }.into()).await,
                other => return Some(other),
            }
        }
    }

    /// Asserts the proxy closes the connection (after any frames still in flight).
    pub async fn expect_closed(&mut self) {
        while let Some(message) = self.recv().await {
            assert!(
                matches!(message, Message::Ping(_) | Message::GoAway(_)),
                "expected the connection to close, got {message:?}"
            );
        }
    }

    pub async fn decide(&mut self, decision: Decision) {
        self.send(decision.into()).await;
    }
}

pub fn headers_event(path: &str) -> sentinel::Event {
    sentinel::Event::RequestHeaders(RequestHeaders {
        request_id: 0,
        method: "GET".into(),
        uri: path.into(),
        version: "HTTP/1.1".into(),
        headers: vec![("host".into(), "example.com".into())],
        client_addr: "127.0.0.1:1".into(),
        route: "default".into(),
        has_body: false,
    })
}

pub fn request_with_token(agent_id: &str, token: Option<&str>) -> RegistrationRequest {
    let mut request = RegistrationRequest::new(agent_id);
    request.auth_token = token.map(AuthToken::new);
    request
}

/// Whether a read error only says the peer closed the connection.
fn is_a_close(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        error.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}
