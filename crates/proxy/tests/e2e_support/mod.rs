//! Fixtures for the end-to-end tests, all real processes and real sockets: child processes
//! (the built `sentinel` binary and the example agents found next to it) with their output
//! collected, signals sent to them, and their whole process group killed when the handle is
//! dropped, even when the test panics; a real upstream (a small hyper server on port 0 that
//! echoes what it received as JSON); the proxy started from a KDL file written by the test and
//! waited for through its admin `/health`; and a real HTTP client for the proxy and its admin
//! endpoints (`/agents`, `/metrics`).
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
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
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How long anything that should happen promptly may take before the test fails. Generous:
/// the tests must pass on a loaded two-core machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How long one HTTP exchange may take before the test fails.
pub const REQUEST_PATIENCE: Duration = Duration::from_secs(20);

/// The bearer token the auth agent accepts in these tests, for user `alice`.
pub const ALICE_TOKEN: &str = "e2e-token-alice-0123456789";

// ---------------------------------------------------------------- binaries

/// The built `sentinel` binary.
pub fn sentinel_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sentinel"))
}

/// An example agent binary from the same target directory as `sentinel`. Panics, saying how
/// to build it, when it is missing.
pub fn agent_binary(name: &str) -> PathBuf {
    let sentinel = sentinel_binary();
    let dir = sentinel
        .parent()
        .expect("the sentinel binary has a directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{name} was not found in {}: the end-to-end tests run the example agents as processes; \
         build them with `cargo test --workspace` (or `cargo build --workspace`) first",
        dir.display()
    );
    path
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- processes

/// A child process in its own process group, with stdout and stderr collected. Dropping it
/// kills the group (SIGKILL) unless the process was already seen to exit.
pub struct Process {
    name: String,
    child: tokio::process::Child,
    pid: i32,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

impl Process {
    /// Starts `program` with `args`; `name` is used in failure messages. Logs at info level
    /// without colours unless `RUST_LOG` is set in `envs`.
    pub fn spawn(name: &str, program: &Path, args: &[String], envs: &[(&str, &str)]) -> Process {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that dropping the handle also ends anything it started.
            .process_group(0);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        let pid = child.id().expect("a just-started child has a pid") as i32;
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect(out, stdout.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, stderr.clone()));
        }
        Process {
            name: name.to_string(),
            child,
            pid,
            stdout,
            stderr,
            readers,
            exited: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout").clone()
    }

    /// What it printed on stderr (its log) so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr").clone()
    }

    /// Both outputs, labelled, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}--- {} stderr ---\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }

    /// Sends `signal` to the process (not its group).
    pub fn signal(&self, signal: i32) {
        assert!(
            self.exited.is_none(),
            "{} has already exited; not signalling a reused pid",
            self.name
        );
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped (so the pid
        // cannot have been reused).
        let rc = unsafe { libc::kill(self.pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({}, {signal}) failed: {}",
            self.pid,
            std::io::Error::last_os_error()
        );
    }

    /// Stops the process (SIGSTOP) and waits until every one of its threads is stopped: the
    /// signal takes effect asynchronously, and a thread still running could answer one more
    /// request. Where `/proc` is not available, waits 200 ms instead.
    pub async fn freeze(&self) {
        self.signal(libc::SIGSTOP);
        let tasks = PathBuf::from(format!("/proc/{}/task", self.pid));
        if !tasks.is_dir() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        let stopped = |tasks: &Path| -> bool {
            let Ok(entries) = std::fs::read_dir(tasks) else {
                return false;
            };
            entries.flatten().all(|task| {
                // The state is the first field after the parenthesised command name.
                std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.trim_start().chars().next())
                        .is_some_and(|state| state == 'T' || state == 't')
                })
            })
        };
        eventually(&format!("{} to stop", self.name), || {
            let done = stopped(&tasks);
            async move { done }
        })
        .await;
    }

    /// Whether it has exited (reaps it if so).
    pub fn has_exited(&mut self) -> bool {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited.is_some()
    }

    /// Waits for it to exit, then for the rest of its output; panics after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let status = match self.exited {
            Some(status) => status,
            None => match tokio::time::timeout(within, self.child.wait()).await {
                Ok(status) => status.unwrap_or_else(|e| panic!("waiting for {}: {e}", self.name)),
                Err(_) => panic!(
                    "{} did not exit within {within:?}\n{}",
                    self.name,
                    self.output()
                ),
            },
        };
        self.exited = Some(status);
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        status
    }

    /// Waits until its stderr contains `needle`; panics with its output after [`PATIENCE`] or
    /// if it exits first.
    pub async fn wait_for_log(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.stderr().contains(needle) {
            assert!(
                !self.has_exited(),
                "{} exited before logging {needle:?}\n{}",
                self.name,
                self.output()
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} never logged {needle:?}\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited.is_some() {
            return;
        }
        // Until it is reaped the pid (and so its process group id) cannot be reused.
        // SAFETY: kill(2) on the process group we created for our own unreaped child.
        unsafe {
            libc::kill(-self.pid, libc::SIGKILL);
        }
        let _ = self.child.start_kill();
    }
}

fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut text = into.lock().expect("output");
            text.push_str(&line);
            text.push('\n');
        }
    })
}

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

// ---------------------------------------------------------------- metrics

/// The sum of every sample of `metric` whose labels include all of `labels`, from a
/// Prometheus text page (0 when there is none).
pub fn metric_sum(page: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, rest) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if name != metric {
                return None;
            }
            let wanted = labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|l| l == format!("{k}=\"{v}\"")));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

// ---------------------------------------------------------------- the proxy

/// A free loopback port: bound, then released for the proxy (or a helper) to take.
pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}

/// A whole configuration: the reverse listener on `socket`, one HTTP listener, the upstream
/// `backend` at `upstream`, the admin listener, a 30 s shutdown grace, and `body` (the test's
/// `agents` and `routes` blocks).
pub fn config_text(
    socket: &Path,
    http: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    body: &str,
) -> String {
    config_text_with(socket, http, admin, upstream, &Extras::default(), body)
}

/// Lines added inside the `reverse-listener` and `admin` blocks of [`config_text`].
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Inside `reverse-listener { … }` (a `tcp-address`, `require-auth`, tokens).
    pub reverse_listener: String,
    /// Inside `admin { … }` (a `token-file`).
    pub admin: String,
}

/// [`config_text`] with `extras` in its blocks.
pub fn config_text_with(
    socket: &Path,
    http: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    extras: &Extras,
    body: &str,
) -> String {
    format!(
        r#"reverse-listener {{
    path "{socket}"
    max-connections-per-agent 4
    handshake-timeout "10s"
    {reverse_extra}
}}
listeners {{
    listener "http" {{ address "{http}"; }}
}}
upstreams {{
    upstream "backend" {{ target "{upstream}"; }}
}}
admin {{
    address "{admin}"
    {admin_extra}
}}
shutdown-grace "30s"
{body}
"#,
        socket = socket.display(),
        reverse_extra = extras.reverse_listener,
        admin_extra = extras.admin,
    )
}

/// The `sentinel` binary running on a configuration written by the test.
pub struct Sentinel {
    /// The process.
    pub process: Process,
    /// Client for its HTTP listener.
    pub http: Http,
    /// Client for its admin listener.
    pub admin: Http,
    /// The agents' Unix socket.
    pub socket: PathBuf,
    /// The configuration file (re-read on SIGHUP).
    pub config_path: PathBuf,
    upstream: SocketAddr,
    extras: Extras,
}

impl Sentinel {
    /// Writes the configuration into `dir`, starts `sentinel --config FILE`, and waits until its
    /// admin `/health` answers 200. `body` holds the `agents` and `routes` blocks.
    pub async fn start(dir: &Path, upstream: &Upstream, body: &str) -> Sentinel {
        Sentinel::start_with(dir, upstream, Extras::default(), body).await
    }

    /// [`Sentinel::start`] with `extras` in the `reverse-listener` and `admin` blocks. When the
    /// admin block names a token, `/health` still answers without it.
    pub async fn start_with(
        dir: &Path,
        upstream: &Upstream,
        extras: Extras,
        body: &str,
    ) -> Sentinel {
        let socket = dir.join("agents.sock");
        let config_path = dir.join("sentinel.kdl");
        // The ports are picked free and released; should another process take one in between,
        // start again with new ones.
        for attempt in 1..=3 {
            let (http, admin) = (free_port(), free_port());
            write_atomically(
                &config_path,
                &config_text_with(&socket, http, admin, upstream.address, &extras, body),
            );
            let process = Process::spawn(
                "sentinel",
                &sentinel_binary(),
                &["--config".to_string(), config_path.display().to_string()],
                &[],
            );
            let mut sentinel = Sentinel {
                process,
                http: Http::new(http),
                admin: Http::new(admin),
                socket: socket.clone(),
                config_path: config_path.clone(),
                upstream: upstream.address,
                extras: extras.clone(),
            };
            match sentinel.wait_healthy().await {
                Ok(()) => return sentinel,
                Err(output) if attempt < 3 && output.contains("cannot listen") => continue,
                Err(output) => panic!("sentinel did not start\n{output}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if self.process.has_exited() {
                self.process.wait_exit(Duration::from_secs(5)).await;
                return Err(self.process.output());
            }
            if let Ok(reply) = self
                .admin
                .try_send(Method::GET, "/health", &[], Bytes::new())
                .await
            {
                if reply.status == StatusCode::OK {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "/health did not answer 200 within {PATIENCE:?}\n{}",
                    self.process.output()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The configuration this proxy would have with `body` as its `agents` and `routes`
    /// (same addresses), for rewriting the file before a reload.
    pub fn config_with(&self, body: &str) -> String {
        config_text_with(
            &self.socket,
            self.http.address(),
            self.admin.address(),
            self.upstream,
            &self.extras,
            body,
        )
    }

    /// Replaces the configuration file (atomically, so a reload never reads half a file).
    pub fn rewrite_config(&self, text: &str) {
        write_atomically(&self.config_path, text);
    }

    /// Starts an example agent (`sentinel-waf-agent`, …) dialling this proxy with
    /// `--agent-id agent_id --connections connections`, plus `extra` flags.
    pub fn agent(
        &self,
        binary: &str,
        agent_id: &str,
        connections: usize,
        extra: &[&str],
    ) -> Process {
        let mut args = vec![
            "--connect".to_string(),
            format!("unix:{}", self.socket.display()),
            "--agent-id".to_string(),
            agent_id.to_string(),
            "--connections".to_string(),
            connections.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Process::spawn(agent_id, &agent_binary(binary), &args, &[])
    }

    /// `GET /agents`, parsed.
    pub async fn agents(&self) -> Value {
        let reply = self.admin.get("/agents", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "/agents: {}", reply.text());
        serde_json::from_slice(&reply.body).expect("/agents is JSON")
    }

    /// The `assigned_id`s of the live connections of `agent_id`, sorted.
    pub async fn connections_of(&self, agent_id: &str) -> Vec<String> {
        let agents = self.agents().await;
        let mut ids: Vec<String> = agents["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["agent_id"] == agent_id)
            .flat_map(|a| a["connections"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["assigned_id"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids
    }

    /// Requests in flight over all live connections of `agent_id`, as `GET /agents` shows.
    pub async fn in_flight_of(&self, agent_id: &str) -> u64 {
        let agents = self.agents().await;
        agents["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["agent_id"] == agent_id)
            .flat_map(|a| a["connections"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["in_flight"].as_u64())
            .sum()
    }

    /// Waits until `GET /agents` lists each `(process, agent_id, connections)` with exactly that
    /// many connections and the process's pid in its metadata. Panics with the agents' output
    /// if one exits or they do not register within [`PATIENCE`].
    pub async fn wait_for_agents(&self, agents: &mut [(&mut Process, &str, usize)]) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let listed = self.agents().await;
            let ready = agents.iter().all(|(process, id, connections)| {
                listed["agents"].as_array().into_iter().flatten().any(|a| {
                    a["agent_id"] == *id
                        && a["metadata"]["pid"] == process.pid()
                        && a["connections"].as_array().map(Vec::len) == Some(*connections)
                })
            });
            if ready {
                return;
            }
            for (process, id, _) in agents.iter_mut() {
                assert!(
                    !process.has_exited(),
                    "agent {id} exited before registering\n{}",
                    process.output()
                );
            }
            if tokio::time::Instant::now() > deadline {
                let outputs: Vec<String> = agents.iter().map(|(p, _, _)| p.output()).collect();
                panic!(
                    "the agents did not register within {PATIENCE:?}; /agents: {listed}\n{}\n{}",
                    outputs.join("\n"),
                    self.process.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let reply = self.admin.get("/metrics", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "/metrics: {}", reply.text());
        reply.text()
    }

    /// How many decisions the logical agent `agent` has given, all actions together.
    pub async fn decisions(&self, agent: &str) -> f64 {
        metric_sum(
            &self.metrics().await,
            "sentinel_agent_decisions_total",
            &[("agent", agent)],
        )
    }
}

fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_extension("kdl.tmp");
    std::fs::write(&temporary, text).expect("write the configuration");
    std::fs::rename(&temporary, path).expect("move the configuration into place");
}
