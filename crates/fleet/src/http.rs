//! Real HTTP on the client host: the upstream (a hyper server that counts every request and
//! every request carrying the attack marker — the "wrongly allowed" count, by construction),
//! one request over a fresh connection (telling a refused connection apart from every other
//! failure), and reading a proxy's `GET /agents`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Every request the agents must block carries this in its query.
pub const ATTACK_MARKER: &str = "fleet-attack";

/// What the upstream saw.
#[derive(Default)]
pub struct UpstreamCounts {
    pub requests: AtomicU64,
    pub marked: AtomicU64,
}

/// Serves 200 after `delay` (so requests are in flight when links fail or proxies drain).
pub async fn start_upstream(
    addr: SocketAddr,
    delay: Duration,
) -> anyhow::Result<Arc<UpstreamCounts>> {
    let listener = TcpListener::bind(addr).await?;
    let counts = Arc::new(UpstreamCounts::default());
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counts = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let counts = counts.clone();
                    async move {
                        counts.requests.fetch_add(1, Ordering::Relaxed);
                        let uri = request.uri().to_string();
                        if uri.contains(ATTACK_MARKER) {
                            counts.marked.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(delay).await;
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok\n",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(counts)
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The proxy refused the TCP connection (nothing listening: stopped or not ready).
    Refused,
    /// Connecting failed otherwise (unreachable, timed out).
    Connect(String),
    /// Connected, but no complete answer (reset, closed, protocol error).
    Io(String),
    /// No answer within the request timeout.
    Timeout,
}

impl Failure {
    /// A short label for the report.
    pub fn label(&self) -> String {
        match self {
            Failure::Refused => "connection refused".into(),
            Failure::Connect(kind) => format!("connect: {kind}"),
            Failure::Io(what) => format!("io: {what}"),
            Failure::Timeout => "timeout".into(),
        }
    }
}

/// `GET path` on a fresh connection to `addr` (closed afterwards), within `timeout`.
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, Bytes), Failure> {
    match tokio::time::timeout(timeout, get_inner(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Timeout),
    }
}

async fn get_inner(addr: SocketAddr, path: &str) -> Result<(u16, Bytes), Failure> {
    let stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(Failure::Refused)
        }
        Err(e) => return Err(Failure::Connect(format!("{:?}", e.kind()))),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::Io(e.to_string()))?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(http::header::HOST, "fleet.test")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| Failure::Io(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Failure::Io(short(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| Failure::Io(short(&e)))?
        .to_bytes();
    Ok((status, body))
}

fn short(error: &hyper::Error) -> String {
    if error.is_incomplete_message() {
        "closed before a complete answer".into()
    } else if error.is_canceled() {
        "cancelled".into()
    } else {
        error.to_string()
    }
}

/// One connection as a proxy's `/agents` lists it.
#[derive(Debug, Clone)]
pub struct ListedConnection {
    pub transport: String,
    pub peer: String,
    pub decisions: u64,
}

/// One agent id with its connections.
#[derive(Debug, Clone)]
pub struct ListedAgent {
    pub agent_id: String,
    pub connections: Vec<ListedConnection>,
}

/// `GET /agents` on a proxy's admin address.
pub async fn agents(admin: SocketAddr, timeout: Duration) -> anyhow::Result<Vec<ListedAgent>> {
    let (status, body) = get(admin, "/agents", timeout)
        .await
        .map_err(|f| anyhow::anyhow!("GET /agents on {admin}: {}", f.label()))?;
    anyhow::ensure!(status == 200, "GET /agents on {admin}: status {status}");
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let list = json["agents"].as_array().cloned().unwrap_or_default();
    Ok(list
        .iter()
        .map(|agent| ListedAgent {
            agent_id: agent["agent_id"].as_str().unwrap_or_default().to_string(),
            connections: agent["connections"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|c| ListedConnection {
                    transport: c["transport"].as_str().unwrap_or_default().to_string(),
                    peer: c["peer"].as_str().unwrap_or_default().to_string(),
                    decisions: c["decisions"].as_u64().unwrap_or(0),
                })
                .collect(),
        })
        .collect())
}

/// Live connections of `agent_id` in a listing.
pub fn connections_of(listing: &[ListedAgent], agent_id: &str) -> usize {
    listing
        .iter()
        .find(|a| a.agent_id == agent_id)
        .map_or(0, |a| a.connections.len())
}

/// Decisions made by `agent_id`'s live connections in a listing.
pub fn decisions_of(listing: &[ListedAgent], agent_id: &str) -> u64 {
    listing
        .iter()
        .find(|a| a.agent_id == agent_id)
        .map_or(0, |a| a.connections.iter().map(|c| c.decisions).sum())
}
