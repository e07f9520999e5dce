//! `sentinel-bench python`: the Python SDK's agent (`sdks/python`, its `examples.echo`) beside
//! the Rust SDK's agent (this binary's `agent` role), both answering every request the same way
//! (allow plus one request and one response header). This process plays the proxy — the real
//! listener and pool, pinned to the proxy core — and both agents run as processes on the other
//! core, connected at the same time, one connection each. Rust and Python alternate run by run;
//! each figure is the median of the runs and the ratio is Python / Rust from the same run. It
//! owns nothing of the other benchmarks; it only reuses the wire fixtures and `sys` helpers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sentinel::pool::PoolSettings;
use sentinel::{AgentPool, Event, LogicalAgent, ReverseConnectionListener, ReverseListenerConfig};
use sentinel_agent_protocol::Encoding;
use tokio_util::sync::CancellationToken;

use crate::report::{Row, Target};
use crate::sys::{self, Cores, Proc};
use crate::wire;

/// Settings of the Python-versus-Rust benchmark.
pub struct Settings {
    /// This binary (for the Rust agent role).
    pub exe: PathBuf,
    /// Core layout.
    pub cores: Cores,
    /// Runs per figure (median reported).
    pub runs: usize,
    /// Shorter windows (for a smoke run).
    pub quick: bool,
}

/// Requests in flight in the throughput measurement (one connection per agent).
const WINDOW: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(5);
const RUST: &str = "rust";
const PYTHON: &str = "python";

/// The interpreter: `$SENTINEL_BENCH_PYTHON`, else the first of `python3` and
/// `/usr/bin/python3` that has `msgpack` (so both encodings can be measured), else `python3`.
fn python() -> (PathBuf, bool) {
    let has_msgpack = |python: &Path| {
        Command::new(python)
            .args(["-c", "import msgpack"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if let Ok(chosen) = std::env::var("SENTINEL_BENCH_PYTHON") {
        let chosen = PathBuf::from(chosen);
        let msgpack = has_msgpack(&chosen);
        return (chosen, msgpack);
    }
    for candidate in ["python3", "/usr/bin/python3"] {
        if has_msgpack(Path::new(candidate)) {
            return (candidate.into(), true);
        }
    }
    ("python3".into(), false)
}

fn sdk_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdks/python/src")
}

/// The proxy side with both agents registered.
struct Fixture {
    pool: AgentPool,
    shutdown: CancellationToken,
    rust: Proc,
    python: Proc,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start(
        settings: &Settings,
        python: &Path,
        encoding: Encoding,
    ) -> anyhow::Result<Fixture> {
        let dir = tempfile::tempdir()?;
        let pool = AgentPool::new(
            vec![
                LogicalAgent::new(RUST, &["bench-*"]),
                LogicalAgent::new(PYTHON, &["py-*"]),
            ],
            PoolSettings::default(),
        );
        let socket = dir.path().join("agents.sock");
        let config = ReverseListenerConfig {
            path: Some(socket.clone()),
            ..ReverseListenerConfig::default()
        };
        let listener = ReverseConnectionListener::bind(config, pool.clone()).await?;
        let shutdown = CancellationToken::new();
        tokio::spawn(listener.run(shutdown.clone()));
        let connect = format!("unix:{}", socket.display());
        let common = |id: &str| -> Vec<String> {
            [
                "--connect",
                &connect,
                "--agent-id",
                id,
                "--connections",
                "1",
            ]
            .map(String::from)
            .to_vec()
        };
        let mut rust_args = vec!["agent".to_string()];
        rust_args.extend(common("bench-1"));
        rust_args.extend(["--encoding".into(), encoding.as_str().into()]);
        let rust = Proc::spawn(
            "rust agent",
            settings.cores.others,
            &settings.exe,
            &rust_args,
            &[],
        )?;
        let mut python_args: Vec<String> = ["-m", "sentinel_agent.examples.echo"]
            .map(String::from)
            .to_vec();
        python_args.extend(common("py-1"));
        python_args.extend(
            [
                "--encoding",
                encoding.as_str(),
                "--max-concurrent",
                "256",
                "--log-level",
                "warning",
            ]
            .map(String::from),
        );
        let source = sdk_source();
        let python = Proc::spawn(
            "python agent",
            settings.cores.others,
            python,
            &python_args,
            &[("PYTHONPATH", &source.display().to_string())],
        )?;
        let mut fixture = Fixture {
            pool,
            shutdown,
            rust,
            python,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while fixture.pool.connection_count() < 2 {
            fixture.rust.check_alive()?;
            fixture.python.check_alive()?;
            if Instant::now() > deadline {
                bail!("the Rust or the Python agent did not register within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(fixture)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Median round trip (µs) of one request at a time to `agent`; bounded by count and 5 s.
async fn rtt(pool: &AgentPool, agent: &str, iterations: usize) -> anyhow::Result<f64> {
    let event = Event::RequestHeaders(wire::request_headers(0));
    let samples = sys::timed_round_trips(iterations, async || {
        let mut request = pool.begin(agent)?;
        request.send(event.clone(), TIMEOUT).await?;
        Ok(())
    })
    .await?;
    if samples.is_empty() {
        bail!("no round trip to the {agent} agent completed");
    }
    Ok(sys::quantile(&samples, 0.5) as f64 / 1000.0)
}

/// Decisions per second and the agent's CPU µs per decision, `WINDOW` requests in flight.
async fn throughput(
    pool: &AgentPool,
    agent: &str,
    agent_pid: u32,
    window: Duration,
) -> anyhow::Result<(f64, f64)> {
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..WINDOW {
        let (pool, counter, stop, agent) = (
            pool.clone(),
            counter.clone(),
            stop.clone(),
            agent.to_string(),
        );
        workers.push(tokio::spawn(async move {
            let event = Event::RequestHeaders(wire::request_headers(0));
            for _ in 0..10_000_000u64 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let mut request = pool.begin(&agent)?;
                request.send(event.clone(), TIMEOUT).await?;
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (c0, t0, cpu0) = (
        counter.load(Ordering::Relaxed),
        Instant::now(),
        sys::cpu_time(agent_pid)?,
    );
    tokio::time::sleep(window).await;
    let (c1, t1, cpu1) = (
        counter.load(Ordering::Relaxed),
        Instant::now(),
        sys::cpu_time(agent_pid)?,
    );
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await??;
    }
    let decisions = (c1 - c0).max(1) as f64;
    Ok((
        decisions / (t1 - t0).as_secs_f64(),
        (cpu1 - cpu0).as_secs_f64() * 1e6 / decisions,
    ))
}

/// Per run: (rust rtt, python rtt, rust rate, python rate, rust cpu/decision, python cpu/decision).
type RunFigures = [f64; 6];

async fn measure(
    settings: &Settings,
    python: &Path,
    encoding: Encoding,
) -> anyhow::Result<Vec<RunFigures>> {
    let fixture = Fixture::start(settings, python, encoding).await?;
    let iterations = if settings.quick { 300 } else { 2000 };
    let window = Duration::from_millis(if settings.quick { 400 } else { 1500 });
    let mut runs = Vec::new();
    for _ in 0..settings.runs {
        let rust_rtt = rtt(&fixture.pool, RUST, iterations).await?;
        let python_rtt = rtt(&fixture.pool, PYTHON, iterations).await?;
        let (rust_rate, rust_cpu) =
            throughput(&fixture.pool, RUST, fixture.rust.pid(), window).await?;
        let (python_rate, python_cpu) =
            throughput(&fixture.pool, PYTHON, fixture.python.pid(), window).await?;
        runs.push([
            rust_rtt,
            python_rtt,
            rust_rate,
            python_rate,
            rust_cpu,
            python_cpu,
        ]);
    }
    Ok(runs)
}

/// Runs the comparison for JSON and (when the interpreter has `msgpack`) MessagePack.
pub fn run(settings: &Settings) -> anyhow::Result<Vec<Row>> {
    let (python, has_msgpack) = python();
    let version = Command::new(&python)
        .arg("--version")
        .output()
        .context("running python")?;
    eprintln!(
        "python agent: {} ({}), msgpack {}",
        python.display(),
        String::from_utf8_lossy(&version.stdout).trim(),
        if has_msgpack { "yes" } else { "no: JSON only" }
    );
    let mut encodings = vec![Encoding::Json];
    if has_msgpack {
        encodings.push(Encoding::MessagePack);
    }
    let mut rows = Vec::new();
    for encoding in encodings {
        sys::pin_current_thread(settings.cores.proxy)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let runs = runtime.block_on(measure(settings, &python, encoding));
        runtime.shutdown_timeout(Duration::from_secs(1));
        sys::unpin_current_thread();
        rows.extend(rows_for(encoding, &runs?));
    }
    Ok(rows)
}

fn rows_for(encoding: Encoding, runs: &[RunFigures]) -> Vec<Row> {
    let median = |i: usize| sys::median(&runs.iter().map(|r| r[i]).collect::<Vec<_>>());
    let ratios = |a: usize, b: usize| -> String {
        // In run order, two decimals: the spread shows how much the machine moved.
        let values: Vec<String> = runs.iter().map(|r| format!("{:.2}", r[a] / r[b])).collect();
        values.join("/")
    };
    let (rust_cpu, python_cpu) = (median(4), median(5));
    eprintln!(
        "  python {encoding}: rtt {:.1} us vs rust {:.1} us; {:.0}/s vs {:.0}/s",
        median(1),
        median(0),
        median(3),
        median(2)
    );
    vec![
        Row {
            group: "python sdk".into(),
            case: format!("rtt uds {encoding}, python vs rust agent"),
            measured: median(1),
            baseline: Some(median(0)),
            unit: "us p50",
            target: Target::None,
            note: format!("per-run ratios {}", ratios(1, 0)),
        },
        Row {
            group: "python sdk".into(),
            case: format!("uds {encoding} 1 conn x {WINDOW}, python vs rust agent"),
            measured: median(3),
            baseline: Some(median(2)),
            unit: "decisions/s",
            target: Target::None,
            note: format!(
                "per-run ratios {}; agent CPU us/decision python {python_cpu:.1} rust {rust_cpu:.1} ({:.1}x; per run {})",
                ratios(3, 2),
                python_cpu / rust_cpu.max(1e-9),
                ratios(5, 4)
            ),
        },
    ]
}
