//! Benchmark 3: HTTP through the real `sentinel` binary. The proxy runs alone on the proxy
//! core; the upstream (this binary's `upstream` role), the echo and waf agents (their real
//! binaries) and the load generator (this binary's `load` role, a separate process started
//! per run) share the other core. Scenarios: no agent (GET, and POST with 4 KiB for the waf's
//! comparison), the echo agent on request headers, the waf agent on headers and a 4 KiB body.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use sentinel_test_support::config::{
    Admin, Agent, Event, Listener, ProxyConfig, ReverseListener, Route, Upstream,
};
use sentinel_test_support::ports::{SentinelAddresses, ANY_LOOPBACK};
use sentinel_test_support::prometheus;

use crate::report::{Row, Target};
use crate::roles::LoadResult;
use crate::sys::{self, Cores, Proc};

/// Settings of benchmark 3.
pub struct Settings {
    /// This binary (upstream and load roles).
    pub exe: PathBuf,
    /// Where `sentinel`, `sentinel-echo-agent` and `sentinel-waf-agent` are.
    pub bin_dir: PathBuf,
    /// Core layout.
    pub cores: Cores,
    /// Runs per figure.
    pub runs: usize,
    /// Shorter windows.
    pub quick: bool,
    /// Client connections of the load generator.
    pub connections: usize,
}

struct Scenario {
    name: &'static str,
    path: &'static str,
    body_bytes: usize,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "no agent, GET",
        path: "/plain/catalog",
        body_bytes: 0,
    },
    Scenario {
        name: "echo agent (headers), GET",
        path: "/echo/catalog",
        body_bytes: 0,
    },
    Scenario {
        name: "no agent, POST 4 KiB",
        path: "/plain/form",
        body_bytes: 4096,
    },
    Scenario {
        name: "waf agent (headers + body), POST 4 KiB",
        path: "/waf/form",
        body_bytes: 4096,
    },
];

fn config(dir: &Path, upstream: u16) -> ProxyConfig {
    let agent = |name: &str, ids: &str, events: &[Event]| {
        Agent::new(name)
            .agent_ids([ids])
            .events(events.iter().copied())
            .timeout(Duration::from_secs(2))
    };
    let route = |name: &str, agents: &[&str]| {
        Route::new(name, "backend")
            .path_prefix(&format!("/{name}"))
            .agents(agents.iter().copied())
    };
    ProxyConfig::new()
        .reverse_listener(
            ReverseListener::unix(dir.join("agents.sock")).max_connections_per_agent(16),
        )
        .listener(Listener::new("http", ANY_LOOPBACK))
        .upstream(Upstream::new("backend", format!("127.0.0.1:{upstream}")))
        .agent(agent("echo", "echo-*", &[Event::RequestHeaders]))
        .agent(agent(
            "waf",
            "waf-*",
            &[Event::RequestHeaders, Event::RequestBody],
        ))
        .route(route("plain", &[]))
        .route(route("echo", &["echo"]))
        .route(route("waf", &["waf"]))
        .admin(Admin::new(ANY_LOOPBACK))
}

/// A `sentinel` process with the addresses it bound.
pub struct StartedSentinel {
    /// The process.
    pub proxy: Proc,
    /// Its first HTTP listener.
    pub http: SocketAddr,
    /// Its admin listener.
    pub admin: SocketAddr,
}

/// Writes `config` (HTTP and admin on port 0) to `dir/sentinel.kdl`, starts the `sentinel`
/// binary of `bin_dir` on `cpu`, reads the ports it bound from its start-up line, and waits
/// (at most `limit`) until its admin address answers `/health` and `also_ready` holds.
pub fn spawn_sentinel(
    cpu: usize,
    bin_dir: &Path,
    dir: &Path,
    config: &ProxyConfig,
    limit: Duration,
    also_ready: impl Fn() -> bool,
) -> anyhow::Result<StartedSentinel> {
    let config_path = dir.join("sentinel.kdl");
    config.write_to(&config_path)?;
    let mut proxy = Proc::spawn(
        "sentinel",
        cpu,
        &bin_dir.join("sentinel"),
        &["--config".into(), config_path.display().to_string()],
        // The start-up line (info) names the ports; everything else stays at warn.
        &[("RUST_LOG", "warn,sentinel::app=info")],
    )?;
    let mut bound = None;
    sys::wait_until("sentinel's start-up line", limit, || {
        proxy.check_alive()?;
        bound = SentinelAddresses::from_log(&proxy.stderr())
            .and_then(|a| Some((*a.http.first()?, a.admin?)));
        Ok(bound.is_some())
    })?;
    let (http, admin) = bound.context("sentinel named no HTTP or admin address")?;
    sys::wait_until("sentinel /health", limit, || {
        proxy.check_alive()?;
        Ok(http_get(admin, "/health").is_ok() && also_ready())
    })?;
    Ok(StartedSentinel { proxy, http, admin })
}

pub fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nhost: {address}\r\nconnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_string())
}

/// Live agent connections per agent id prefix, from the admin `/metrics`.
pub fn agent_connections(admin: SocketAddr, prefix: &str) -> anyhow::Result<u64> {
    let metrics = http_get(admin, "/metrics")?;
    let live = prometheus::parse(&metrics)
        .iter()
        .filter(|s| s.name == "sentinel_agent_connections")
        .filter(|s| s.label("agent").is_some_and(|a| a.starts_with(prefix)))
        .map(|s| s.value)
        .sum::<f64>();
    Ok(live as u64)
}

/// Runs benchmark 3.
pub fn run(settings: &Settings) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let others = settings.cores.others;
    let mut upstream_proc = Proc::spawn(
        "upstream",
        others,
        &settings.exe,
        &["upstream".into(), "--addr".into(), ANY_LOOPBACK.to_string()],
        &[],
    )?;
    let upstream = upstream_proc
        .listening_address(Duration::from_secs(15))?
        .port();
    let StartedSentinel {
        mut proxy,
        http,
        admin: admin_addr,
    } = spawn_sentinel(
        settings.cores.proxy,
        &settings.bin_dir,
        dir.path(),
        &config(dir.path(), upstream),
        Duration::from_secs(15),
        || true,
    )?;
    let connect = format!("unix:{}", dir.path().join("agents.sock").display());
    let agent_args = |id: &str| -> Vec<String> {
        vec![
            "--connect".into(),
            connect.clone(),
            "--agent-id".into(),
            id.into(),
            "--connections".into(),
            "4".into(),
        ]
    };
    let _echo = Proc::spawn(
        "echo agent",
        others,
        &settings.bin_dir.join("sentinel-echo-agent"),
        &agent_args("echo-1"),
        &[],
    )?;
    let _waf = Proc::spawn(
        "waf agent",
        others,
        &settings.bin_dir.join("sentinel-waf-agent"),
        &agent_args("waf-1"),
        &[],
    )?;
    sys::wait_until(
        "4 echo and 4 waf connections",
        Duration::from_secs(15),
        || {
            Ok(agent_connections(admin_addr, "echo-")? == 4
                && agent_connections(admin_addr, "waf-")? == 4)
        },
    )?;

    let (warmup, window) = if settings.quick {
        (Duration::from_millis(200), Duration::from_millis(500))
    } else {
        (Duration::from_millis(500), Duration::from_millis(2000))
    };
    let mut results: Vec<Vec<LoadResult>> = vec![Vec::new(); SCENARIOS.len()];
    // Scenarios interleave within each run, so drift hits all of them alike.
    for _ in 0..settings.runs {
        for (i, scenario) in SCENARIOS.iter().enumerate() {
            proxy.check_alive()?;
            let args = vec![
                "load".into(),
                "--addr".into(),
                http.to_string(),
                "--path".into(),
                scenario.path.into(),
                "--connections".into(),
                settings.connections.to_string(),
                "--warmup-ms".into(),
                warmup.as_millis().to_string(),
                "--duration-ms".into(),
                window.as_millis().to_string(),
                "--body-bytes".into(),
                scenario.body_bytes.to_string(),
                "--watch-pid".into(),
                proxy.pid().to_string(),
            ];
            let out = sys::run_capture(others, &settings.exe, &args, Duration::from_secs(60))?;
            let result = LoadResult::from_json(out.lines().last().unwrap_or_default())?;
            if result.errors > 0 || result.ok == 0 {
                bail!(
                    "{}: {} ok, {} errors",
                    scenario.name,
                    result.ok,
                    result.errors
                );
            }
            results[i].push(result);
        }
    }

    let summary: Vec<Summary> = results.iter().map(|r| Summary::of(r)).collect();
    for (scenario, s) in SCENARIOS.iter().zip(&summary) {
        eprintln!(
            "  http {}: {:.0} rps, p50 {:.0} us, p99 {:.0} us, {:.0} req per proxy CPU-s",
            scenario.name, s.rps, s.p50_us, s.p99_us, s.per_cpu_s
        );
    }
    let note = |s: &Summary| {
        format!(
            "p50 {:.0} us, p99 {:.0} us; {:.0} req per proxy CPU-s",
            s.p50_us, s.p99_us, s.per_cpu_s
        )
    };
    let c = settings.connections;
    let mut rows = vec![Row {
        group: "3 HTTP".into(),
        case: format!("{} ({c} conns)", SCENARIOS[0].name),
        measured: summary[0].rps,
        baseline: None,
        unit: "req/s",
        target: Target::None,
        note: note(&summary[0]),
    }];
    rows.push(Row {
        group: "3 HTTP".into(),
        case: format!("{} vs no agent", SCENARIOS[1].name),
        measured: summary[1].rps,
        baseline: Some(summary[0].rps),
        unit: "req/s",
        target: Target::AtLeast(0.7),
        note: note(&summary[1]),
    });
    rows.push(Row {
        group: "3 HTTP".into(),
        case: "echo agent vs no agent, per proxy CPU-s".into(),
        measured: summary[1].per_cpu_s,
        baseline: Some(summary[0].per_cpu_s),
        unit: "req/CPU-s",
        target: Target::None,
        note: "requests per second of sentinel CPU time (/proc/PID/stat)".into(),
    });
    rows.push(Row {
        group: "3 HTTP".into(),
        case: format!("{} ({c} conns)", SCENARIOS[2].name),
        measured: summary[2].rps,
        baseline: Some(summary[0].rps),
        unit: "req/s",
        target: Target::None,
        note: note(&summary[2]),
    });
    rows.push(Row {
        group: "3 HTTP".into(),
        case: format!("{} vs no agent POST", SCENARIOS[3].name),
        measured: summary[3].rps,
        baseline: Some(summary[2].rps),
        unit: "req/s",
        target: Target::None,
        note: note(&summary[3]),
    });
    rows.push(Row {
        group: "3 HTTP".into(),
        case: "waf agent vs no agent POST, per proxy CPU-s".into(),
        measured: summary[3].per_cpu_s,
        baseline: Some(summary[2].per_cpu_s),
        unit: "req/CPU-s",
        target: Target::None,
        note: String::new(),
    });
    Ok(rows)
}

struct Summary {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    per_cpu_s: f64,
}

impl Summary {
    fn of(results: &[LoadResult]) -> Summary {
        let pick = |f: &dyn Fn(&LoadResult) -> f64| {
            sys::median(&results.iter().map(f).collect::<Vec<_>>())
        };
        Summary {
            rps: pick(&|r| r.rps()),
            p50_us: pick(&|r| r.p50.as_micros() as f64),
            p99_us: pick(&|r| r.p99.as_micros() as f64),
            per_cpu_s: pick(&|r| r.ok as f64 / r.watched_cpu.as_secs_f64().max(1e-3)),
        }
    }
}
