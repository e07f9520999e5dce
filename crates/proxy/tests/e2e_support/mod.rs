//! Fixtures for the end-to-end tests, all real processes and real sockets: child processes
//! (`process.rs`: the built `sentinel` binary and the example agents found next to it, on
//! test-support's supervisor); the proxy started from a configuration the typed builder
//! writes and waited for through its admin `/health` (`proxy.rs`); here, a real upstream (a
//! small hyper server on port 0 that echoes what it received as JSON) and a real HTTP client
//! for the proxy and its admin endpoints.
#![allow(dead_code)]

mod process;
mod proxy;

pub use process::{agent_binary, sentinel_binary, Process};
// Not every test file uses every fixture.
#[allow(unused_imports)]
pub use proxy::{config, Extras, Policy, Sentinel};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How long anything that should happen promptly may take before the test fails. Generous:
/// the tests must pass on a loaded two-core machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How long one HTTP exchange may take before the test fails.
pub const REQUEST_PATIENCE: Duration = Duration::from_secs(20);

/// The bearer token the auth agent accepts in these tests, for user `alice`.
pub const ALICE_TOKEN: &str = "e2e-token-alice-0123456789";

// ---------------------------------------------------------------- upstream

/// What the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Bytes,
}

/// A real upstream on `127.0.0.1:0`. Every request is answered 200 with a JSON echo of what
/// it received: `{"method", "uri", "headers": [[name, value], …], "body"}` (body as lossy
/// UTF-8) and the response header `x-upstream: e2e`. `GET /slow` answers after ~1 s
/// (`/slow?ms=N`: after N ms), and not before [`Upstream::release`] while
/// [`Upstream::hold`] is in force. Stops when dropped.
pub struct Upstream {
    /// Where it listens.
    pub address: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    seen: Mutex<Vec<Seen>>,
    slow_started: AtomicUsize,
    /// `true` while `/slow` may answer.
    open: tokio::sync::watch::Sender<bool>,
}

impl Upstream {
    /// Binds and serves.
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the upstream binds");
        let address = listener.local_addr().expect("upstream address");
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            slow_started: AtomicUsize::new(0),
            open: tokio::sync::watch::Sender::new(true),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(echo(request, &shared).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            address,
            shared,
            task,
        }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("seen").clone()
    }

    /// How many requests it received so far.
    pub fn count(&self) -> usize {
        self.shared.seen.lock().expect("seen").len()
    }

    /// How many `/slow` requests have started.
    pub fn slow_started(&self) -> usize {
        self.shared.slow_started.load(Ordering::SeqCst)
    }

    /// From now on `/slow` requests wait for [`Upstream::release`] before answering.
    pub fn hold(&self) {
        self.shared.open.send_replace(false);
    }

    /// Lets held `/slow` requests answer.
    pub fn release(&self) {
        self.shared.open.send_replace(true);
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            let mut response = Response::new(Full::new(Bytes::from(format!(
                "upstream could not read the body: {e}"
            ))));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
    };
    let uri = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    shared.seen.lock().expect("seen").push(Seen {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });
    if parts.uri.path() == "/slow" {
        let mut open = shared.open.subscribe();
        shared.slow_started.fetch_add(1, Ordering::SeqCst);
        let ms = parts
            .uri
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let _ = open.wait_for(|open| *open).await;
    }
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": uri,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut response = Response::new(Full::new(Bytes::from(json.to_string())));
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("x-upstream", http::HeaderValue::from_static("e2e"));
    response
}

// ---------------------------------------------------------------- HTTP client

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the upstream answered (its echo, not a response made by the proxy).
    pub fn by_upstream(&self) -> bool {
        self.header("x-upstream") == Some("e2e")
    }

    /// The upstream's JSON echo; panics if this response is not one.
    pub fn echo(&self) -> Value {
        assert!(
            self.by_upstream(),
            "expected the upstream's echo, got {} {:?}: {}",
            self.status,
            self.headers,
            self.text()
        );
        serde_json::from_slice(&self.body).expect("the upstream's echo is JSON")
    }

    /// The values of header `name` as the upstream received it.
    pub fn upstream_saw(&self, name: &str) -> Vec<String> {
        self.echo()["headers"]
            .as_array()
            .expect("headers list")
            .iter()
            .filter(|pair| pair[0].as_str() == Some(name))
            .map(|pair| pair[1].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The body as the upstream received it.
    pub fn upstream_body(&self) -> String {
        self.echo()["body"]
            .as_str()
            .expect("body string")
            .to_string()
    }
}

/// A real HTTP/1.1 client (hyper-util's legacy client) bound to one address.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    address: SocketAddr,
}

impl Http {
    /// A client for `address`.
    pub fn new(address: SocketAddr) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            address,
        }
    }

    /// The address requests go to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sends a request; `Err` describes a transport failure or a timeout.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.address));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("bad request: {e}"))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let source = std::error::Error::source(&e)
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                format!("request failed: {e}{source}")
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("reading the body failed: {e}"))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_PATIENCE, exchange)
            .await
            .map_err(|_| format!("no response within {REQUEST_PATIENCE:?}"))?
    }

    /// Sends a request; panics on a transport failure.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let method_name = method.to_string();
        self.try_send(method, path, headers, body.into())
            .await
            .unwrap_or_else(|e| panic!("{method_name} http://{}{path}: {e}", self.address))
    }

    /// `GET path` with `headers`.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers, Bytes::new()).await
    }

    /// `POST path` with `headers` and `body`.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        self.send(Method::POST, path, headers, body).await
    }
}
