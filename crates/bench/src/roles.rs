//! The processes the benchmarks start besides the proxy, all in this binary as hidden
//! subcommands so every role is built by one `cargo run`: an SDK agent (`agent`), the raw
//! frame echo server of the baselines (`raw-echo`), an HTTP upstream (`upstream`) and the HTTP
//! load generator (`load`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sentinel_agent_protocol::Encoding;
use sentinel_agent_sdk::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The SDK agent of the decision benchmarks: answers every request as the echo agent does
/// (allow, one request header, one response header) without logging.
struct BenchAgent {
    agent_id: String,
}

impl Agent for BenchAgent {
    async fn on_request_headers(
        &self,
        _req: &RequestHeaders,
        _ctx: &mut RequestContext,
    ) -> Verdict {
        Verdict::allow()
            .set_request_header("x-echo-agent", &self.agent_id)
            .set_response_header("x-echo-agent", &self.agent_id)
    }
}

/// `agent`: runs [`BenchAgent`] with `connections` connections speaking `encoding`.
pub fn agent(
    connect: &str,
    agent_id: &str,
    connections: usize,
    encoding: Encoding,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut config = RunnerConfig::new(agent_id);
        config.proxies.push(connect.parse()?);
        config.connections_per_proxy = connections;
        config.max_concurrent_requests = 256;
        config.encodings = vec![encoding];
        let agent = BenchAgent {
            agent_id: agent_id.to_string(),
        };
        Runner::new(agent, config)?.run_until_signal().await?;
        Ok(())
    })
}

/// `raw-echo`: answers every frame received with one `reply_len`-byte frame, on a Unix socket
/// and a TCP port: the floor any agent transport is compared with.
pub fn raw_echo(uds: PathBuf, tcp: SocketAddr, reply_len: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let reply = crate::wire::filler_frame(reply_len, 0x20);
        let uds = tokio::net::UnixListener::bind(&uds).context("binding the raw echo socket")?;
        let tcp = tokio::net::TcpListener::bind(tcp).await?;
        announce_listening(tcp.local_addr()?)?;
        loop {
            tokio::select! {
                accepted = uds.accept() => {
                    let (stream, _) = accepted?;
                    tokio::spawn(echo_frames(stream, reply.clone()));
                }
                accepted = tcp.accept() => {
                    let (stream, _) = accepted?;
                    stream.set_nodelay(true)?;
                    tokio::spawn(echo_frames(stream, reply.clone()));
                }
            }
        }
    })
}

/// Reads whatever arrived, answers each complete frame in it, writes all answers at once.
async fn echo_frames(mut stream: impl AsyncRead + AsyncWrite + Unpin, reply: Bytes) {
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = Vec::with_capacity(64 * 1024);
    loop {
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while input.len() >= 4 {
            let len = u32::from_be_bytes([input[0], input[1], input[2], input[3]]) as usize;
            if input.len() < 4 + len {
                break;
            }
            input.advance(4 + len);
            output.extend_from_slice(&reply);
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
    }
}

/// The first stdout line of a role that listens: the bench starts it on port 0 and reads
/// the port from this line ([`crate::sys::Proc::listening_address`]).
fn announce_listening(address: SocketAddr) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{LISTENING_ON}{address}")?;
    stdout.flush()?;
    Ok(())
}

/// The prefix of [`announce_listening`]'s line.
pub const LISTENING_ON: &str = "listening on ";

/// `upstream`: a minimal HTTP/1.1 server answering `200 ok` after reading the body.
pub fn upstream(address: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address).await?;
        announce_listening(listener.local_addr()?)?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|request: hyper::Request<Incoming>| async {
                        let _ = request.into_body().collect().await;
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok from upstream\n",
                        ))))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// What one `load` run measured; printed as one JSON line.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadResult {
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Requests that failed or got another status.
    pub errors: u64,
    /// Wall time of the measured window.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// CPU time the watched process (the proxy) used during the measured window.
    pub watched_cpu: Duration,
}

impl LoadResult {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The JSON line `load` prints.
    pub fn to_json(self) -> String {
        serde_json::json!({
            "ok": self.ok, "errors": self.errors,
            "elapsed_us": self.elapsed.as_micros() as u64,
            "p50_us": self.p50.as_micros() as u64, "p99_us": self.p99.as_micros() as u64,
            "watched_cpu_us": self.watched_cpu.as_micros() as u64,
        })
        .to_string()
    }

    /// Parses what [`LoadResult::to_json`] printed.
    pub fn from_json(line: &str) -> anyhow::Result<LoadResult> {
        let v: serde_json::Value =
            serde_json::from_str(line.trim()).with_context(|| format!("load printed {line:?}"))?;
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Ok(LoadResult {
            ok: n("ok"),
            errors: n("errors"),
            elapsed: Duration::from_micros(n("elapsed_us")),
            p50: Duration::from_micros(n("p50_us")),
            p99: Duration::from_micros(n("p99_us")),
            watched_cpu: Duration::from_micros(n("watched_cpu_us")),
        })
    }
}

/// Settings of one `load` run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The proxy's HTTP address.
    pub address: SocketAddr,
    /// Request path.
    pub path: String,
    /// Keep-alive connections, each with one request in flight.
    pub connections: usize,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// POST this many body bytes (0: GET without a body).
    pub body_bytes: usize,
    /// Process whose CPU time is read at the start and end of the measured window.
    pub watch_pid: Option<u32>,
}

/// Most latencies kept per connection (bounds memory; the window is time-bounded anyway).
const MAX_SAMPLES_PER_CONNECTION: usize = 1 << 20;

/// `load`: closed-loop HTTP/1.1 load, `connections` keep-alive connections.
pub fn load(spec: LoadSpec) -> anyhow::Result<LoadResult> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let spec = Arc::new(spec);
        let body = Bytes::from(if spec.body_bytes > 0 {
            crate::wire::clean_body()
                .into_iter()
                .cycle()
                .take(spec.body_bytes)
                .collect()
        } else {
            Vec::new()
        });
        let start = Instant::now() + Duration::from_millis(50);
        let measure_from = start + spec.warmup;
        let end = measure_from + spec.duration;
        let mut tasks = Vec::new();
        for _ in 0..spec.connections {
            tasks.push(tokio::spawn(connection_loop(
                spec.clone(),
                body.clone(),
                measure_from,
                end,
            )));
        }
        let watch_pid = spec.watch_pid;
        let watcher = tokio::spawn(async move {
            let Some(pid) = watch_pid else {
                return Duration::ZERO;
            };
            tokio::time::sleep_until(measure_from.into()).await;
            let before = crate::sys::cpu_time(pid).unwrap_or_default();
            tokio::time::sleep_until(end.into()).await;
            crate::sys::cpu_time(pid)
                .unwrap_or_default()
                .saturating_sub(before)
        });
        let mut samples = Vec::new();
        let (mut ok, mut errors) = (0, 0);
        for task in tasks {
            let (s, o, e) = task.await??;
            samples.extend(s);
            ok += o;
            errors += e;
        }
        samples.sort_unstable();
        Ok(LoadResult {
            ok,
            errors,
            elapsed: end - measure_from,
            p50: Duration::from_micros(crate::sys::quantile(&samples, 0.50)),
            p99: Duration::from_micros(crate::sys::quantile(&samples, 0.99)),
            watched_cpu: watcher.await?,
        })
    })
}

async fn connection_loop(
    spec: Arc<LoadSpec>,
    body: Bytes,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<(Vec<u64>, u64, u64)> {
    let stream = tokio::net::TcpStream::connect(spec.address).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut samples = Vec::with_capacity(16 * 1024);
    let (mut ok, mut errors) = (0u64, 0u64);
    let host = spec.address.to_string();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let mut builder = hyper::Request::builder()
            .method(if body.is_empty() { "GET" } else { "POST" })
            .uri(&spec.path);
        for (name, value) in crate::wire::HEADERS.iter().skip(1) {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .header("host", &host)
            .body(Full::new(body.clone()))?;
        let sent = Instant::now();
        let result = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        }
        .await;
        let done = Instant::now();
        if sent < measure_from || done > end {
            if result.is_err() {
                anyhow::bail!("request failed: {:?}", result.err());
            }
            continue;
        }
        match result {
            Ok(status) if status.is_success() => {
                ok += 1;
                if samples.len() < MAX_SAMPLES_PER_CONNECTION {
                    samples.push((done - sent).as_micros() as u64);
                }
            }
            Ok(_) => errors += 1,
            Err(e) => anyhow::bail!("request failed: {e}"),
        }
    }
    Ok((samples, ok, errors))
}
