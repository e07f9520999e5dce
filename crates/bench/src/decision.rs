//! Benchmarks 1 and 2: the decision path itself. This process plays the proxy — the real
//! [`ReverseConnectionListener`] and [`AgentPool`], pinned to the proxy core with one runtime
//! worker — and a separate process on the other core plays the agent: this binary's `agent`
//! role (the real SDK runner) for the measurement, its `raw-echo` role (plain tokio socket
//! reads and writes, frames of the same sizes) for the baseline. Baseline and measurement
//! alternate run by run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use sentinel::pool::PoolSettings;
use sentinel::{AgentPool, Event, LogicalAgent, ReverseConnectionListener, ReverseListenerConfig};
use sentinel_agent_protocol::Encoding;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::report::{Row, Target};
use crate::sys::{self, Cores, Proc};
use crate::wire;

/// Which socket the agent dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    /// Unix domain socket.
    Uds,
    /// Loopback TCP.
    Tcp,
}

impl Socket {
    fn name(self) -> &'static str {
        match self {
            Socket::Uds => "uds",
            Socket::Tcp => "tcp",
        }
    }
}

/// Shared settings of benchmarks 1 and 2.
pub struct Settings {
    /// This binary (for the agent and raw-echo roles).
    pub exe: PathBuf,
    /// Core layout.
    pub cores: Cores,
    /// Runs per figure (median reported).
    pub runs: usize,
    /// Shorter windows (for a smoke run).
    pub quick: bool,
}

/// The proxy side plus one agent process and one raw echo process.
struct Fixture {
    pool: AgentPool,
    shutdown: CancellationToken,
    agent_addr: String,
    raw_uds: PathBuf,
    raw_tcp: std::net::SocketAddr,
    _agent: Proc,
    _raw: Proc,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start(
        settings: &Settings,
        socket: Socket,
        encoding: Encoding,
        connections: usize,
    ) -> anyhow::Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let pool = AgentPool::new(
            vec![LogicalAgent::new("bench", &["bench-*"])],
            PoolSettings::default(),
        );
        let config = ReverseListenerConfig {
            path: Some(dir.path().join("agents.sock")),
            tcp_address: Some("127.0.0.1:0".parse()?),
            max_connections_per_agent: 64,
            ..ReverseListenerConfig::default()
        };
        let listener = ReverseConnectionListener::bind(config, pool.clone()).await?;
        let agent_addr = match socket {
            Socket::Uds => format!("unix:{}", dir.path().join("agents.sock").display()),
            Socket::Tcp => format!("tcp:{}", listener.tcp_address().context("tcp bound")?),
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(listener.run(shutdown.clone()));
        let agent = Proc::spawn(
            "bench agent",
            settings.cores.others,
            &settings.exe,
            &[
                "agent".into(),
                "--connect".into(),
                agent_addr.clone(),
                "--connections".into(),
                connections.to_string(),
                "--encoding".into(),
                encoding.as_str().into(),
            ],
            &[],
        )?;
        let (_, reply_len) = wire::frame_sizes(encoding);
        let raw_uds = dir.path().join("raw.sock");
        let mut raw = Proc::spawn(
            "raw echo",
            settings.cores.others,
            &settings.exe,
            &[
                "raw-echo".into(),
                "--uds".into(),
                raw_uds.display().to_string(),
                "--tcp".into(),
                sentinel_test_support::ports::ANY_LOOPBACK.to_string(),
                "--reply-len".into(),
                reply_len.to_string(),
            ],
            &[],
        )?;
        let raw_tcp = raw.listening_address(Duration::from_secs(15))?;
        let mut fixture = Fixture {
            pool,
            shutdown,
            agent_addr,
            raw_uds,
            raw_tcp,
            _agent: agent,
            _raw: raw,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while fixture.pool.connection_count() < connections
            || !(fixture.raw_uds.exists() && std::net::TcpStream::connect(raw_tcp).is_ok())
        {
            fixture._agent.check_alive()?;
            fixture._raw.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "the agent ({}) or the raw echo server did not come up",
                    fixture.agent_addr
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(fixture)
    }

    async fn raw_stream(&self, socket: Socket) -> anyhow::Result<Box<dyn Stream>> {
        Ok(match socket {
            Socket::Uds => Box::new(tokio::net::UnixStream::connect(&self.raw_uds).await?),
            Socket::Tcp => {
                let s = tokio::net::TcpStream::connect(self.raw_tcp).await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
        })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

const TIMEOUT: Duration = Duration::from_secs(2);

fn event() -> Event {
    Event::RequestHeaders(wire::request_headers(0))
}

/// Runs `f` on a runtime whose threads are pinned to the proxy core, one worker (as the
/// `sentinel` binary runs when pinned to one CPU).
fn on_proxy_core<T>(
    cores: Cores,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    sys::pin_current_thread(cores.proxy)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build();
    let result = runtime.map_err(anyhow::Error::from).and_then(|rt| {
        let out = rt.block_on(f);
        rt.shutdown_timeout(Duration::from_secs(1));
        out
    });
    sys::unpin_current_thread();
    result
}

/// Benchmark 1: one request in flight, round-trip latency (median per run, median of runs).
pub fn rtt(settings: &Settings) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let iterations = if settings.quick { 500 } else { 4000 };
    for socket in [Socket::Uds, Socket::Tcp] {
        for encoding in [Encoding::Json, Encoding::MessagePack] {
            let (agent, raw) = on_proxy_core(settings.cores, async {
                let fixture = Fixture::start(settings, socket, encoding, 1).await?;
                let (req_len, _) = wire::frame_sizes(encoding);
                let request = wire::filler_frame(req_len, 0x10);
                let (mut agent, mut raw) = (Vec::new(), Vec::new());
                for _ in 0..settings.runs {
                    let mut stream = fixture.raw_stream(socket).await?;
                    raw.push(raw_rtt(&mut stream, &request, encoding, iterations).await?);
                    agent.push(agent_rtt(&fixture.pool, iterations).await?);
                }
                Ok((agent, raw))
            })?;
            let (a, r) = (sys::median(&agent), sys::median(&raw));
            let (req_len, rep_len) = wire::frame_sizes(encoding);
            eprintln!(
                "  rtt {} {}: agent {a:.1} us, raw {r:.1} us",
                socket.name(),
                encoding
            );
            rows.push(Row {
                group: "1 decision RTT".into(),
                case: format!("{} {}", socket.name(), encoding),
                measured: a,
                baseline: Some(r),
                unit: "us p50",
                target: Target::AtMost(1.5),
                note: format!(
                    "frames {req_len}/{rep_len} B; runs agent {} raw {}",
                    spread(&agent),
                    spread(&raw)
                ),
            });
        }
    }
    Ok(rows)
}

fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    format!("{min:.1}-{max:.1}")
}

/// Median latency (µs) of `iterations` round trips through the pool, after a warm-up;
/// stops early after 5 s.
async fn agent_rtt(pool: &AgentPool, iterations: usize) -> anyhow::Result<f64> {
    let template = event();
    let mut samples = Vec::with_capacity(iterations);
    let give_up = Instant::now() + Duration::from_secs(5);
    for i in 0..iterations + iterations / 10 {
        if Instant::now() > give_up {
            break;
        }
        let event = template.clone();
        let started = Instant::now();
        let mut request = pool.begin("bench")?;
        request.send(event, TIMEOUT).await?;
        drop(request);
        if i >= iterations / 10 {
            samples.push(started.elapsed().as_nanos() as u64);
        }
    }
    samples.sort_unstable();
    Ok(sys::quantile(&samples, 0.5) as f64 / 1000.0)
}

/// The same on a raw socket: write a request-sized frame, read a decision-sized frame.
async fn raw_rtt(
    stream: &mut Box<dyn Stream>,
    request: &Bytes,
    encoding: Encoding,
    iterations: usize,
) -> anyhow::Result<f64> {
    let (_, reply_len) = wire::frame_sizes(encoding);
    let mut reply = vec![0u8; reply_len];
    let samples = sys::timed_round_trips(iterations, async || {
        stream.write_all(request).await?;
        stream.read_exact(&mut reply).await?;
        Ok(())
    })
    .await?;
    Ok(sys::quantile(&samples, 0.5) as f64 / 1000.0)
}

/// In flight per connection in benchmark 2.
pub const WINDOW: usize = 64;

/// Benchmark 2: decisions per second with `WINDOW` requests in flight per connection.
pub fn pipelined(settings: &Settings) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let window = if settings.quick {
        Duration::from_millis(300)
    } else {
        Duration::from_millis(1000)
    };
    for encoding in [Encoding::MessagePack, Encoding::Json] {
        for connections in [1usize, 4, 16] {
            let (agent, raw) = on_proxy_core(settings.cores, async {
                let fixture = Fixture::start(settings, Socket::Uds, encoding, connections).await?;
                let (mut agent, mut raw) = (Vec::new(), Vec::new());
                let agent_pid = fixture._agent.pid();
                for _ in 0..settings.runs {
                    raw.push(raw_pipelined(&fixture, encoding, connections, window).await?);
                    agent.push(
                        agent_pipelined(&fixture.pool, agent_pid, connections, window).await?,
                    );
                }
                Ok((agent, raw))
            })?;
            let med = |w: &[Window], f: fn(&Window) -> f64| {
                sys::median(&w.iter().map(f).collect::<Vec<_>>())
            };
            let (a_cpu_p, a_cpu_a) = (
                med(&agent, |w| w.proxy_cpu_us),
                med(&agent, |w| w.peer_cpu_us),
            );
            let (r_cpu_p, r_cpu_a) = (med(&raw, |w| w.proxy_cpu_us), med(&raw, |w| w.peer_cpu_us));
            let agent: Vec<f64> = agent.iter().map(|w| w.rate).collect();
            let raw: Vec<f64> = raw.iter().map(|w| w.rate).collect();
            let (a, r) = (sys::median(&agent), sys::median(&raw));
            eprintln!("  pipelined uds {encoding} x{connections}: agent {a:.0}/s, raw {r:.0}/s");
            rows.push(Row {
                group: "2 pipelined".into(),
                case: format!("uds {encoding} {connections} conn x {WINDOW}"),
                measured: a,
                baseline: Some(r),
                unit: "decisions/s",
                target: Target::AtLeast(0.5),
                note: format!(
                    "runs agent {} raw {}; CPU us/decision proxy {a_cpu_p:.1} agent {a_cpu_a:.1} (raw: {r_cpu_p:.2} / {r_cpu_a:.2})",
                    spread_k(&agent),
                    spread_k(&raw),
                ),
            });
        }
    }
    Ok(rows)
}

fn spread_k(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    format!("{:.0}k-{:.0}k", min / 1000.0, max / 1000.0)
}

/// What one pipelined window measured.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Operations per second.
    rate: f64,
    /// CPU µs per operation in this process (the proxy side).
    proxy_cpu_us: f64,
    /// CPU µs per operation in the peer process (the agent or the raw echo server).
    peer_cpu_us: f64,
}

/// Completed operations counted between a warm-up and the end of the window, with the CPU
/// time both processes spent on them (less sensitive to other load on the machine than
/// the rate).
async fn count_window(
    counter: &AtomicU64,
    stop: &AtomicBool,
    window: Duration,
    peer: u32,
) -> anyhow::Result<Window> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let me = std::process::id();
    let (c0, t0) = (counter.load(Ordering::Relaxed), Instant::now());
    let (m0, p0) = (sys::cpu_time(me)?, sys::cpu_time(peer)?);
    tokio::time::sleep(window).await;
    let (c1, t1) = (counter.load(Ordering::Relaxed), Instant::now());
    let (m1, p1) = (sys::cpu_time(me)?, sys::cpu_time(peer)?);
    stop.store(true, Ordering::Relaxed);
    let ops = (c1 - c0).max(1) as f64;
    Ok(Window {
        rate: (c1 - c0) as f64 / (t1 - t0).as_secs_f64(),
        proxy_cpu_us: (m1 - m0).as_secs_f64() * 1e6 / ops,
        peer_cpu_us: (p1 - p0).as_secs_f64() * 1e6 / ops,
    })
}

async fn agent_pipelined(
    pool: &AgentPool,
    agent_pid: u32,
    connections: usize,
    window: Duration,
) -> anyhow::Result<Window> {
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..connections * WINDOW {
        let (pool, counter, stop) = (pool.clone(), counter.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let template = event();
            // Bounded by count as well as by the stop flag.
            for _ in 0..10_000_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let mut request = pool.begin("bench")?;
                request.send(template.clone(), TIMEOUT).await?;
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let measured = count_window(&counter, &stop, window, agent_pid).await?;
    for worker in workers {
        worker.await??;
    }
    Ok(measured)
}

async fn raw_pipelined(
    fixture: &Fixture,
    encoding: Encoding,
    connections: usize,
    window: Duration,
) -> anyhow::Result<Window> {
    let (req_len, reply_len) = wire::frame_sizes(encoding);
    let one = wire::filler_frame(req_len, 0x10);
    let mut burst = BytesMut::new();
    for _ in 0..WINDOW {
        burst.extend_from_slice(&one);
    }
    let burst = burst.freeze();
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let mut stream = fixture.raw_stream(Socket::Uds).await?;
        let (burst, counter, stop) = (burst.clone(), counter.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            stream.write_all(&burst).await?;
            let mut buffer = vec![0u8; 64 * 1024];
            let mut pending = 0usize;
            let mut outstanding = WINDOW;
            for _ in 0..100_000_000u64 {
                let n = stream.read(&mut buffer).await?;
                if n == 0 {
                    bail!("raw echo closed");
                }
                pending += n;
                let replies = pending / reply_len;
                pending %= reply_len;
                outstanding -= replies;
                counter.fetch_add(replies as u64, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) {
                    if outstanding == 0 {
                        break;
                    }
                    continue;
                }
                // Keep WINDOW in flight: one new request for each reply.
                stream.write_all(&burst[..replies * req_len]).await?;
                outstanding += replies;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let measured = count_window(&counter, &stop, window, fixture._raw.pid()).await?;
    for worker in workers {
        worker.await??;
    }
    Ok(measured)
}
