//! Test fixture for agents: a real Sentinel reverse listener and agent pool (the proxy's own
//! code, no mocks) on a temp-dir Unix socket and a loopback TCP port, with helpers to send
//! events to the agents that registered, push configuration, and stop and restart the proxy on
//! the same addresses; plus [`AgentProcess`], which runs a built agent binary on test-support's
//! supervisor and stops it with SIGTERM; and [`pki`], throw-away certificates for TLS tests.
//! Waiting is test-support's [`eventually`]. Used by the SDK's and the example agents' tests;
//! agent authors can use it for theirs.
#![allow(
    clippy::disallowed_methods,
    reason = "test support: it writes PEM fixtures before anything runs"
)]
#![warn(missing_docs)]

pub mod pki;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sentinel::reverse::{RegistrationStats, RegistrationStatsSnapshot};
use sentinel::ReverseConnectionListener;
use sentinel_agent_protocol::{BodyChunk, RequestHeaders, ResponseHeaders};
use sentinel_test_support::process::{ProcessSpec, Stream, Supervised};
use sentinel_test_support::wait::wait_for;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The one `eventually` of the tests (test-support's): async conditions, a deadline, and what
/// was awaited in the panic.
pub use sentinel_test_support::wait::eventually;

pub use sentinel::pool::{AgentSnapshot, PoolSettings};
pub use sentinel::reverse::{ReverseTls, TlsFiles};
pub use sentinel::{
    AgentPool, AgentReply, DispatchError, Event, LogicalAgent, ReverseListenerConfig, TokenRule,
    TokenSource,
};

/// How long the fixtures wait for a condition before failing the test.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A running proxy side: listener + pool.
pub struct TestProxy {
    /// The live pool (replaced on restart).
    pub pool: AgentPool,
    socket: PathBuf,
    tcp: SocketAddr,
    logical: Arc<Mutex<Vec<LogicalAgent>>>,
    configure: Arc<dyn Fn(&mut ReverseListenerConfig) + Send + Sync>,
    settings: PoolSettings,
    stats: Arc<RegistrationStats>,
    shutdown: CancellationToken,
    listener: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// Builds a [`TestProxy`].
pub struct TestProxyBuilder {
    logical: Vec<LogicalAgent>,
    configure: Arc<dyn Fn(&mut ReverseListenerConfig) + Send + Sync>,
    settings: PoolSettings,
}

impl TestProxyBuilder {
    /// Adds a logical agent (default when none is added: `agents`, served by every id).
    pub fn logical(mut self, agent: LogicalAgent) -> Self {
        self.logical.push(agent);
        self
    }

    /// Adjusts the listener settings (auth, allowlist, limits); the addresses are set by the
    /// fixture.
    pub fn listener(
        mut self,
        f: impl Fn(&mut ReverseListenerConfig) + Send + Sync + 'static,
    ) -> Self {
        self.configure = Arc::new(f);
        self
    }

    /// Pool settings (heartbeat interval, …).
    pub fn pool_settings(mut self, settings: PoolSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Binds and starts the proxy.
    pub async fn start(self) -> TestProxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let logical = if self.logical.is_empty() {
            vec![LogicalAgent::new("agents", &["*"])]
        } else {
            self.logical
        };
        let mut proxy = TestProxy {
            pool: AgentPool::new(Vec::new(), self.settings),
            socket: dir.path().join("agents.sock"),
            tcp: "127.0.0.1:0".parse().expect("loopback"),
            logical: Arc::new(Mutex::new(logical)),
            configure: self.configure,
            settings: self.settings,
            stats: Arc::default(),
            shutdown: CancellationToken::new(),
            listener: None,
            _dir: dir,
        };
        proxy.bind().await;
        proxy
    }
}

impl TestProxy {
    /// A proxy with one logical agent, `agents`, served by every agent id.
    pub async fn start() -> TestProxy {
        TestProxy::builder().start().await
    }

    /// Configure before starting.
    pub fn builder() -> TestProxyBuilder {
        TestProxyBuilder {
            logical: Vec::new(),
            configure: Arc::new(|_| {}),
            settings: PoolSettings::default(),
        }
    }

    async fn bind(&mut self) {
        let mut config = ReverseListenerConfig {
            path: Some(self.socket.clone()),
            tcp_address: Some(self.tcp),
            ..ReverseListenerConfig::default()
        };
        (self.configure)(&mut config);
        let logical = self.logical.lock().expect("logical agents").clone();
        self.pool = AgentPool::new(logical, self.settings);
        let listener = ReverseConnectionListener::bind(config, self.pool.clone())
            .await
            .expect("the test listener binds");
        self.tcp = listener.tcp_address().expect("tcp bound");
        self.stats = listener.stats();
        self.shutdown = CancellationToken::new();
        self.listener = Some(tokio::spawn(listener.run(self.shutdown.clone())));
    }

    /// `unix:<socket path>`, as agents take it.
    pub fn unix_addr(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// `tcp:127.0.0.1:<port>`, as agents take it.
    pub fn tcp_addr(&self) -> String {
        format!("tcp:{}", self.tcp)
    }

    /// `tls:127.0.0.1:<port>`, for a proxy built with TLS on its TCP listener
    /// (`.listener(|c| c.tls = Some(…))`).
    pub fn tls_addr(&self) -> String {
        format!("tls:{}", self.tcp)
    }

    /// Registration counters of the current listener.
    pub fn stats(&self) -> RegistrationStatsSnapshot {
        self.stats.snapshot()
    }

    /// Live agent connections in the pool.
    pub fn connection_count(&self) -> usize {
        self.pool.connection_count()
    }

    /// Waits until the pool holds exactly `n` connections; fails the test after [`PATIENCE`].
    pub async fn wait_for_connections(&self, n: usize) {
        let pool = self.pool.clone();
        eventually(&format!("{n} agent connections"), PATIENCE, || {
            std::future::ready(pool.connection_count() == n)
        })
        .await;
    }

    /// Sends one event to the logical agent `logical` as a new request and waits for the reply.
    pub async fn send(
        &self,
        logical: &str,
        event: Event,
        timeout: Duration,
    ) -> Result<AgentReply, DispatchError> {
        let mut request = self.pool.begin(logical)?;
        request.send(event, timeout).await
    }

    /// Replaces `logical`'s pushed configuration; returns how many ConfigUpdates were sent.
    pub fn push_config(&self, logical: &str, config: serde_json::Value) -> usize {
        let mut agents = self.logical.lock().expect("logical agents");
        for agent in agents.iter_mut().filter(|a| a.name == logical) {
            agent.config = Some(config.clone());
        }
        self.pool.set_logical_agents(agents.clone())
    }

    /// Stops the proxy as a real one does: GoAway to every agent, `grace` for in-flight
    /// requests, close everything, remove the socket file. Addresses stay reserved for
    /// [`TestProxy::restart`].
    pub async fn stop(&mut self, grace: Duration) {
        self.shutdown.cancel();
        self.pool.shutdown(grace).await;
        if let Some(listener) = self.listener.take() {
            let _ = listener.await;
        }
    }

    /// Starts a fresh proxy (new pool, new counters) on the same socket path and TCP port.
    pub async fn restart(&mut self) {
        self.bind().await;
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Header pairs as the protocol carries them.
pub fn header_pairs(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// A request's headers message: HTTP/1.1 from `127.0.0.1:40000` on route `default`, request
/// id 0, no body; tests that need other values override fields with `..request_headers(…)`.
pub fn request_headers(method: &str, uri: &str, headers: &[(&str, &str)]) -> RequestHeaders {
    RequestHeaders {
        request_id: 0,
        method: method.into(),
        uri: uri.into(),
        version: "HTTP/1.1".into(),
        headers: header_pairs(headers),
        client_addr: "127.0.0.1:40000".into(),
        route: "default".into(),
        has_body: false,
    }
}

/// A RequestHeaders event (`has_body` false).
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Event {
    Event::RequestHeaders(request_headers(method, uri, headers))
}

/// A RequestHeaders event announcing a body.
pub fn request_with_body(method: &str, uri: &str, headers: &[(&str, &str)]) -> Event {
    match request(method, uri, headers) {
        Event::RequestHeaders(mut h) => {
            h.has_body = true;
            Event::RequestHeaders(h)
        }
        other => other,
    }
}

/// A RequestBodyChunk event.
pub fn body_chunk(chunk_index: u64, data: &[u8], is_last: bool) -> Event {
    Event::RequestBodyChunk(BodyChunk {
        request_id: 0,
        chunk_index,
        data: data.to_vec().into(),
        is_last,
    })
}

/// A ResponseHeaders event.
pub fn response(status: u16, headers: &[(&str, &str)]) -> Event {
    Event::ResponseHeaders(ResponseHeaders {
        request_id: 0,
        status,
        headers: header_pairs(headers),
        has_body: false,
    })
}

/// An agent binary running as a child process (test-support's supervisor: its own process
/// group, its output kept), with its stderr (the log) readable. Killed when dropped.
pub struct AgentProcess {
    inner: Supervised,
}

impl AgentProcess {
    /// Starts `program` with `args` and extra environment variables; `RUST_LOG` defaults to
    /// `info`.
    pub fn spawn(program: &str, args: &[&str], envs: &[(&str, &str)]) -> AgentProcess {
        let spec = envs.iter().fold(
            ProcessSpec::new(program, program)
                .args(args)
                .env("RUST_LOG", "info"),
            |spec, (key, value)| spec.env(key, value),
        );
        let inner = Supervised::spawn(spec).unwrap_or_else(|e| panic!("{e}"));
        AgentProcess { inner }
    }

    /// Starts the agent binary `program` dialling `connect` (`unix:…`, `tcp:…`, `tls:…`) as
    /// `agent_id`, with the further flags `extra` and environment `envs`.
    pub fn dial(
        program: &str,
        connect: &str,
        agent_id: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> AgentProcess {
        let args: Vec<&str> = ["--connect", connect, "--agent-id", agent_id]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        AgentProcess::spawn(program, &args, envs)
    }

    /// Everything the agent logged so far (all of it once it has exited).
    pub fn log(&self) -> String {
        self.inner.log().text(Stream::Stderr)
    }

    /// Waits until the log contains `needle`; panics with the log after [`PATIENCE`].
    pub async fn wait_for_log(&self, needle: &str) {
        let log = self.inner.log().clone();
        let what = format!("{needle:?} in the agent's log");
        let found = wait_for(&what, PATIENCE, || std::future::ready(log.contains(needle)));
        if let Err(e) = found.await {
            panic!("{e}; its log:\n{}", self.log());
        }
    }

    /// Sends SIGTERM and waits for the process to exit; panics if it takes longer than `within`.
    pub async fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let sent = self.inner.signal(libc::SIGTERM);
        sent.unwrap_or_else(|e| panic!("{e}"));
        self.wait(within).await
    }

    /// Waits for the process to exit on its own (e.g. after a configuration error), then for
    /// the rest of its log; panics if it takes longer than `within`.
    pub async fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let status = match self.inner.wait_exit(within).await {
            Ok(status) => status,
            Err(e) => panic!("{e}; its log:\n{}", self.log()),
        };
        let log = self.inner.log().clone();
        // The pipes close with the process; their last lines may still be on the way.
        let drained = wait_for("the agent's log to be read", Duration::from_secs(2), || {
            std::future::ready(log.drained())
        });
        let _ = drained.await;
        status
    }
}
