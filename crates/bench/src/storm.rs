//! Benchmark 4: a registration storm against the real `sentinel` binary (alone on the proxy
//! core). This process, on the other core, opens `agents` Unix-socket connections at once, each
//! sending a RegistrationRequest with its own agent id; the clock stops when the admin
//! `/metrics` shows every one of them live in the pool. Then, with the connections idle, the
//! proxy's RSS growth divided by the number of connections is the memory per idle registered
//! connection. Each run uses a fresh proxy process.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sentinel_agent_protocol::{Frame, FrameCodec, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Encoder;

use sentinel_test_support::config::{
    Admin, Agent, Listener, ProxyConfig, ReverseListener, Route, Upstream,
};
use sentinel_test_support::ports::ANY_LOOPBACK;

use crate::http::{agent_connections, spawn_sentinel, StartedSentinel};
use crate::report::{Row, Target};
use crate::sys::{self, Cores};

/// Settings of benchmark 4.
pub struct Settings {
    /// Where `sentinel` is.
    pub bin_dir: PathBuf,
    /// Core layout.
    pub cores: Cores,
    /// Runs.
    pub runs: usize,
    /// Connections registering at once.
    pub agents: usize,
}

fn config(dir: &Path, agents: usize) -> ProxyConfig {
    ProxyConfig::new()
        .reverse_listener(
            ReverseListener::unix(dir.join("agents.sock"))
                .max_connections_per_agent(1)
                .max_pending_handshakes(agents.max(1024) * 2)
                .heartbeat_interval(Duration::from_secs(120)),
        )
        .listener(Listener::new("http", ANY_LOOPBACK))
        .upstream(Upstream::new("backend", "127.0.0.1:9"))
        .agent(Agent::new("storm").agent_ids(["storm-*"]))
        .route(
            Route::new("default", "backend")
                .path_prefix("/")
                .agents(["storm"]),
        )
        .admin(Admin::new(ANY_LOOPBACK))
}

fn registration(agent_id: &str) -> anyhow::Result<Vec<u8>> {
    let payload = serde_json::json!({
        "protocol_version": 2,
        "agent_id": agent_id,
        "capabilities": { "handles_request_headers": true, "max_concurrent_requests": 100 },
        "metadata": { "version": "bench" },
        "encodings": ["msgpack", "json"],
    });
    let frame = Frame::new(
        MessageType::RegistrationRequest,
        serde_json::to_vec(&payload)?,
    );
    let mut out = bytes::BytesMut::new();
    FrameCodec::new().encode(frame, &mut out)?;
    Ok(out.to_vec())
}

struct RunResult {
    all_in_pool: Duration,
    all_answered: Duration,
    bytes_per_connection: f64,
}

/// Runs benchmark 4.
pub fn run(settings: &Settings) -> anyhow::Result<Vec<Row>> {
    let limit = sys::raise_nofile_limit();
    if (limit as usize) < settings.agents + 64 {
        bail!(
            "the open-files limit is {limit}; {} connections need more",
            settings.agents
        );
    }
    sys::pin_current_thread(settings.cores.others)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for _ in 0..settings.runs {
        results.push(runtime.block_on(one_run(settings))?);
    }
    drop(runtime);
    sys::unpin_current_thread();
    let in_pool: Vec<f64> = results
        .iter()
        .map(|r| r.all_in_pool.as_secs_f64() * 1000.0)
        .collect();
    let answered: Vec<f64> = results
        .iter()
        .map(|r| r.all_answered.as_secs_f64() * 1000.0)
        .collect();
    let per_conn: Vec<f64> = results
        .iter()
        .map(|r| r.bytes_per_connection / 1024.0)
        .collect();
    eprintln!("  storm: in pool after {in_pool:.0?} ms; {per_conn:.1?} KiB per connection");
    let n = settings.agents;
    Ok(vec![
        Row {
            group: "4 storm".into(),
            case: format!("{n} registrations at once, until all in the pool"),
            measured: sys::median(&in_pool),
            baseline: None,
            unit: "ms",
            target: Target::Below(1000.0),
            note: format!(
                "last RegistrationResponse after {:.0} ms; runs {:.0}-{:.0} ms",
                sys::median(&answered),
                in_pool.iter().copied().fold(f64::INFINITY, f64::min),
                in_pool.iter().copied().fold(0.0, f64::max)
            ),
        },
        Row {
            group: "4 storm".into(),
            case: "proxy RSS per idle registered connection".into(),
            measured: sys::median(&per_conn),
            baseline: None,
            unit: "KiB",
            target: Target::Below(32.0),
            note: format!(
                "RSS delta / {n}; runs {:.1}-{:.1} KiB (kernel socket buffers not included)",
                per_conn.iter().copied().fold(f64::INFINITY, f64::min),
                per_conn.iter().copied().fold(0.0, f64::max)
            ),
        },
    ])
}

async fn one_run(settings: &Settings) -> anyhow::Result<RunResult> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("agents.sock");
    let StartedSentinel {
        mut proxy,
        admin: admin_addr,
        ..
    } = spawn_sentinel(
        settings.cores.proxy,
        &settings.bin_dir,
        dir.path(),
        &config(dir.path(), settings.agents),
        Duration::from_secs(15),
        || socket.exists(),
    )?;
    // Let start-up allocations settle before the baseline RSS.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = sys::rss_bytes(proxy.pid())?;

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(settings.agents);
    for i in 0..settings.agents {
        let socket = socket.clone();
        let request = registration(&format!("storm-{i}"))?;
        tasks.push(tokio::spawn(async move {
            let mut stream = connect_with_retry(&socket).await?;
            stream.write_all(&request).await?;
            let mut header = [0u8; 5];
            stream.read_exact(&mut header).await?;
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let mut payload = vec![0u8; len.saturating_sub(1)];
            stream.read_exact(&mut payload).await?;
            let response: serde_json::Value = serde_json::from_slice(&payload)?;
            if response["accepted"] != serde_json::Value::Bool(true) {
                bail!("registration refused: {response}");
            }
            Ok::<_, anyhow::Error>(stream)
        }));
    }
    let mut streams = Vec::with_capacity(settings.agents);
    for task in tasks {
        streams.push(
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .context("a registration took over 30 s")???,
        );
    }
    let all_answered = started.elapsed();
    let n = settings.agents as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if agent_connections(admin_addr, "storm-")? >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("the pool never held {n} connections");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let all_in_pool = started.elapsed();
    // Idle: let the proxy finish whatever follows registration, then measure.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = sys::rss_bytes(proxy.pid())?;
    proxy.check_alive()?;
    drop(proxy);
    drop(streams);
    Ok(RunResult {
        all_in_pool,
        all_answered,
        bytes_per_connection: rss_after.saturating_sub(rss_before) as f64 / n as f64,
    })
}

/// Connects, retrying while the listen backlog is full (bounded: 2 s).
async fn connect_with_retry(path: &Path) -> anyhow::Result<tokio::net::UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match tokio::net::UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
