//! Fixtures for the HTTP data-plane tests: a real upstream (a small hyper server on port 0 that
//! records what it received), the real HTTP listener wired to a real reverse listener and agent
//! pool, scripted agents that answer over real sockets, and a real HTTP client.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sentinel::config::{
    AgentConfig, BodyOverflow, Config, EventSet, FailureMode, RouteConfig, RouteMatch,
    UpstreamConfig,
};
use sentinel::pool::PoolSettings;
use sentinel::state::ProxyState;
use sentinel::telemetry::Metrics;
use sentinel_agent_protocol::{AgentPattern, Message, Pong, RegistrationRequest};
use sentinel_test_support::ports::RefusingPort;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::common::{Proxy, Via};

/// A generous bound for anything that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- configuration

/// A logical agent `name` served by ids `name-*`, receiving `events`.
pub fn agent(
    name: &str,
    events: &[&str],
    failure_mode: FailureMode,
    timeout: Duration,
) -> AgentConfig {
    let mut set = EventSet::default();
    for event in events {
        match *event {
            "request_headers" => set.request_headers = true,
            "request_body" => set.request_body = true,
            "response_headers" => set.response_headers = true,
            "response_body" => set.response_body = true,
            other => panic!("unknown event {other}"),
        }
    }
    AgentConfig {
        name: name.into(),
        agent_ids: vec![AgentPattern::new(format!("{name}-*"))],
        events: set,
        timeout,
        failure_mode,
        config: None,
    }
}

/// An upstream group over `targets`, marking a target down after one failure for a minute.
pub fn upstream(name: &str, targets: &[SocketAddr]) -> UpstreamConfig {
    UpstreamConfig {
        name: name.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
        max_fails: 1,
        fail_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
    }
}

/// A route for `prefix` to `upstream`, consulting `agents`, inspecting up to 1 MiB.
pub fn route(name: &str, prefix: &str, upstream: &str, agents: &[&str]) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        matches: RouteMatch {
            path_prefix: Some(prefix.into()),
            host: None,
        },
        upstream: upstream.into(),
        agents: agents.iter().map(|a| a.to_string()).collect(),
        max_body_inspect: 1024 * 1024,
        body_overflow: BodyOverflow::Reject,
    }
}

/// A whole configuration.
pub fn config(
    upstreams: Vec<UpstreamConfig>,
    agents: Vec<AgentConfig>,
    routes: Vec<RouteConfig>,
) -> Config {
    Config {
        reverse_listener: None,
        pool: PoolSettings::default(),
        listeners: vec![],
        upstreams,
        agents,
        routes,
        admin: None,
        shutdown_grace: Duration::from_secs(5),
        wait_for_agents: Duration::ZERO,
    }
}

// ---------------------------------------------------------------- the proxy

/// The real HTTP listener, agent pool and reverse listener.
pub struct Harness {
    pub proxy: Proxy,
    pub state: Arc<ProxyState>,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub serve: tokio::task::JoinHandle<()>,
}

impl Harness {
    pub async fn start(config: Config) -> Harness {
        let proxy =
            Proxy::start_with(|_| {}, PoolSettings::default(), config.logical_agents()).await;
        let state = Arc::new(ProxyState::new(
            config,
            proxy.pool.clone(),
            Arc::new(Metrics::default()),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let serve = tokio::spawn(sentinel::http::serve(
            listener,
            state.clone(),
            shutdown.clone(),
        ));
        Harness {
            proxy,
            state,
            addr,
            shutdown,
            serve,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Metrics as Prometheus text.
    pub fn metrics(&self) -> String {
        self.state.metrics().render(self.state.pool(), None)
    }
}

// ---------------------------------------------------------------- upstream

/// What an upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A real HTTP/1.1 server. `GET /size/N` answers N bytes of `a`; `/sleep/MS` answers after
/// MS milliseconds; otherwise it echoes a non-empty request body or says hello. Every response
/// carries `x-upstream: <name>` and a set of hop-by-hop headers the proxy must remove.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (name, log) = (name.to_string(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (name, log) = (name.clone(), log.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let (name, log) = (name.clone(), log.clone());
                        async move { Ok::<_, Infallible>(answer(&name, &log, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, seen }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.requests()
            .pop()
            .expect("the upstream received a request")
    }
}

async fn answer(
    name: &str,
    log: &Mutex<Vec<Seen>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    log.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let path = parts.uri.path();
    let text = if let Some(n) = path.strip_prefix("/size/") {
        Bytes::from(vec![b'a'; n.parse().unwrap_or(0)])
    } else if let Some(ms) = path.strip_prefix("/sleep/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        Bytes::from(format!("slept in {name}"))
    } else if body.is_empty() {
        Bytes::from(format!("hello from {name}"))
    } else {
        body
    };
    let mut response = Response::new(Full::new(text));
    let h = response.headers_mut();
    h.insert("x-upstream", HeaderValue::from_str(name).unwrap());
    h.insert("connection", HeaderValue::from_static("x-upstream-hop"));
    h.insert("x-upstream-hop", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
    response
}

/// An address nothing listens on: connections are refused for as long as the returned port
/// is held, and no other process can take it meanwhile.
pub fn dead_address() -> (RefusingPort, SocketAddr) {
    let port = RefusingPort::bind().expect("bind a refusing port");
    let address = port.address().expect("its address");
    (port, address)
}

// ---------------------------------------------------------------- agents

/// An agent connected through the reverse listener that answers each event with what its
/// script returns (`None`: no answer, the agent hangs) and reports every message it got.
pub struct ScriptedAgent {
    messages: mpsc::UnboundedReceiver<Message>,
}

impl ScriptedAgent {
    /// Registers `agent_id` and starts answering with `script`.
    pub async fn start(
        harness: &Harness,
        agent_id: &str,
        mut script: impl FnMut(&Message) -> Option<Message> + Send + 'static,
    ) -> ScriptedAgent {
        let (mut agent, _) = harness
            .proxy
            .register_request(Via::Uds, RegistrationRequest::new(agent_id))
            .await;
        let (tx, messages) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = agent.framed.next().await {
                let Ok(message) = Message::from_frame(&frame, agent.encoding) else {
                    return;
                };
                if let Message::Ping(ping) = &message {
                    let pong = Message::from(Pong { nonce: ping.nonce });
                    let _ = agent
                        .framed
                        .send(pong.to_frame(agent.encoding).unwrap())
                        .await;
                    continue;
                }
                let reply = script(&message);
                let _ = tx.send(message);
                if let Some(reply) = reply {
                    if agent
                        .framed
                        .send(reply.to_frame(agent.encoding).unwrap())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        ScriptedAgent { messages }
    }

    /// The next message the agent received (fails after 10 s).
    pub async fn next(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.messages.recv())
            .await
            .expect("the agent received a message within 10 s")
            .expect("the agent is running")
    }

    /// Every message received so far, without waiting.
    pub fn drain(&mut self) -> Vec<Message> {
        let mut all = Vec::new();
        while let Ok(message) = self.messages.try_recv() {
            all.push(message);
        }
        all
    }
}

/// `Some(decision)` as a reply message.
pub fn reply(decision: sentinel_agent_protocol::Decision) -> Option<Message> {
    Some(decision.into())
}

// ---------------------------------------------------------------- client

/// A keep-alive HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A client response, read whole.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` and reads the whole response (fails after 10 s).
pub async fn send(request: Request<Full<Bytes>>) -> Got {
    let response = tokio::time::timeout(WAIT, client().request(request))
        .await
        .expect("a response within 10 s")
        .expect("the request succeeds");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("the body arrives").to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// `GET url`.
pub async fn get(url: &str) -> Got {
    send(Request::get(url).body(Full::default()).unwrap()).await
}

/// `POST url` with `body`.
pub async fn post(url: &str, body: &'static [u8]) -> Got {
    send(
        Request::post(url)
            .body(Full::new(Bytes::from_static(body)))
            .unwrap(),
    )
    .await
}
