//! `sentinel-bench`: the end-to-end benchmarks of issue 6, each printed as a ratio against a
//! baseline measured in the same run. `sentinel-bench all` runs every mode and prints one
//! Markdown table; `rtt`, `pipelined`, `http` and `storm` run one. The proxy side runs alone on
//! CPU 0, clients, agents and upstreams on CPU 1 (`taskset`). Every figure is the median of
//! `--runs` runs (default 5), and every loop is bounded in count and in time.
//!
//! The hidden subcommands are the other processes the benchmarks start: `agent`, `raw-echo`,
//! `upstream` and `load`. Codec micro-benchmarks are criterion benches:
//! `cargo bench -p sentinel-bench`. See docs/benchmarks.md.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark harness: blocking file reads and sleeps run on its own threads, outside any proxy runtime"
)]

mod decision;
mod http;
mod peers;
mod python_agent;
mod report;
mod roles;
mod storm;
mod sys;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use sentinel_agent_protocol::Encoding;

#[derive(Parser)]
#[command(name = "sentinel-bench", about = "Sentinel end-to-end benchmarks")]
struct Cli {
    /// Runs per figure; the median is reported (at least 5 for published figures).
    #[arg(long, global = true, default_value_t = 5)]
    runs: usize,
    /// Shorter windows and fewer iterations: a smoke run, not for publishing.
    #[arg(long, global = true)]
    quick: bool,
    /// Do not run `cargo build --release` for the sentinel and agent binaries first.
    #[arg(long, global = true)]
    no_build: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Every benchmark, then the ratio table.
    All,
    /// 1: decision round trip, one in flight (UDS and TCP, JSON and MessagePack).
    Rtt,
    /// 2: pipelined decisions, 1/4/16 connections x 64 in flight.
    Pipelined,
    /// 3: HTTP through the sentinel binary, no agent / echo / waf.
    Http {
        /// Load generator connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
    },
    /// 4: registration storm.
    Storm {
        /// Connections registering at once.
        #[arg(long, default_value_t = 1000)]
        agents: usize,
    },
    /// The Python SDK's agent beside the Rust SDK's: round trip and decisions/s, as ratios.
    Python,
    /// Side by side with nginx and HAProxy (issue 9): plain proxy, header check, body check.
    Peers(peers::PeersArgs),
    #[command(hide = true)]
    Agent {
        #[arg(long)]
        connect: String,
        #[arg(long, default_value = "bench-1")]
        agent_id: String,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        #[arg(long, default_value = "json")]
        encoding: String,
    },
    #[command(hide = true)]
    RawEcho {
        #[arg(long)]
        uds: PathBuf,
        #[arg(long)]
        tcp: SocketAddr,
        #[arg(long)]
        reply_len: usize,
    },
    #[command(hide = true)]
    Upstream {
        #[arg(long)]
        addr: SocketAddr,
    },
    #[command(hide = true)]
    Load {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        path: String,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long, default_value_t = 500)]
        warmup_ms: u64,
        #[arg(long, default_value_t = 2000)]
        duration_ms: u64,
        #[arg(long, default_value_t = 0)]
        body_bytes: usize,
        #[arg(long)]
        watch_pid: Option<u32>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Mode::Peers(args) = cli.mode {
        return peers::main(args, cli.runs, cli.quick, cli.no_build);
    }
    match cli.mode {
        Mode::Agent {
            connect,
            agent_id,
            connections,
            encoding,
        } => {
            let encoding = Encoding::from_name(&encoding).context("unknown encoding")?;
            return roles::agent(&connect, &agent_id, connections, encoding);
        }
        Mode::RawEcho {
            uds,
            tcp,
            reply_len,
        } => return roles::raw_echo(uds, tcp, reply_len),
        Mode::Upstream { addr } => return roles::upstream(addr),
        Mode::Load {
            addr,
            path,
            connections,
            warmup_ms,
            duration_ms,
            body_bytes,
            watch_pid,
        } => {
            let result = roles::load(roles::LoadSpec {
                address: addr,
                path,
                connections,
                warmup: Duration::from_millis(warmup_ms),
                duration: Duration::from_millis(duration_ms),
                body_bytes,
                watch_pid,
            })?;
            println!("{}", result.to_json());
            return Ok(());
        }
        _ => {}
    }
    if cli.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().context("no binary directory")?.to_path_buf();
    let cores = sys::Cores::detect();
    let needs_binaries = matches!(cli.mode, Mode::All | Mode::Http { .. } | Mode::Storm { .. });
    if needs_binaries && !cli.no_build {
        // Benchmarks 3 and 4 start these (`cargo run -p sentinel-bench` builds only its own).
        sentinel_test_support::build::build_binaries(&[
            "sentinel",
            "sentinel-agent-echo",
            "sentinel-agent-waf",
        ])?;
    }
    print_machine(cores, cli.runs);
    let started = Instant::now();
    let decision_settings = decision::Settings {
        exe: exe.clone(),
        cores,
        runs: cli.runs,
        quick: cli.quick,
    };
    let http_settings = |connections| http::Settings {
        exe: exe.clone(),
        bin_dir: bin_dir.clone(),
        cores,
        runs: cli.runs,
        quick: cli.quick,
        connections,
    };
    let storm_settings = |agents| storm::Settings {
        bin_dir: bin_dir.clone(),
        cores,
        runs: cli.runs,
        agents,
    };
    let mut rows = Vec::new();
    match cli.mode {
        Mode::All => {
            eprintln!("1/4 decision round trip");
            rows.extend(decision::rtt(&decision_settings)?);
            eprintln!("2/4 pipelined decisions");
            rows.extend(decision::pipelined(&decision_settings)?);
            eprintln!("3/4 HTTP through sentinel");
            rows.extend(http::run(&http_settings(32))?);
            eprintln!("4/4 registration storm");
            rows.extend(storm::run(&storm_settings(1000))?);
        }
        Mode::Rtt => rows.extend(decision::rtt(&decision_settings)?),
        Mode::Pipelined => rows.extend(decision::pipelined(&decision_settings)?),
        Mode::Http { connections } => rows.extend(http::run(&http_settings(connections))?),
        Mode::Storm { agents } => rows.extend(storm::run(&storm_settings(agents))?),
        Mode::Python => rows.extend(python_agent::run(&python_agent::Settings {
            exe: exe.clone(),
            cores,
            runs: cli.runs,
            quick: cli.quick,
        })?),
        _ => unreachable!("roles returned above"),
    }
    println!();
    println!("{}", report::render(&rows));
    let missed = rows.iter().filter(|r| r.met() == Some(false)).count();
    let met = rows.iter().filter(|r| r.met() == Some(true)).count();
    println!(
        "targets met: {met}, missed: {missed}; took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_machine(cores: sys::Cores, runs: usize) {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "machine: {} CPUs available ({model}); proxy side on CPU {}, clients/agents/upstream on CPU {}; median of {runs} runs; load average {}",
        cores.available, cores.proxy, cores.others,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
}
