//! `sentinel-faults`: runs the fault scenarios of docs/reliability.md against the real
//! `sentinel` binary and real agent processes, prints one report table per scenario, and
//! exits non-zero when any scenario's expectation fails. `all` runs every scenario (the soak
//! last); `--short` is the CI form (shorter holds, a 60 s soak, same checks). The binaries
//! are built first (same profile as this program) unless `--no-build`.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: set-up files and /proc reads, outside any proxy runtime"
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use sentinel_faults::binaries::{self, Binaries};
use sentinel_faults::scenarios::{self, Harness};
use sentinel_test_support::os::{self as sys, Cores};

#[derive(Parser)]
#[command(
    name = "sentinel-faults",
    about = "Sentinel fault and soak scenarios with real processes"
)]
struct Cli {
    /// The short form for CI: shorter holds and a 60 s soak; the same checks.
    #[arg(long, global = true)]
    short: bool,
    /// Do not run `cargo build` for the sentinel and agent binaries first.
    #[arg(long, global = true)]
    no_build: bool,
    /// Directory holding `sentinel` and `sentinel-waf-agent` (default: beside this program).
    #[arg(long, global = true, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// Every scenario below, the soak last.
    All {
        /// Soak duration (default 180s, 60s with --short).
        #[arg(long, value_parser = parse_duration)]
        soak_duration: Option<Duration>,
    },
    /// An agent process SIGKILLed under load (one of two, then both).
    Kill,
    /// The agent process SIGSTOPped under load, then SIGCONTed.
    Stop,
    /// The proxy restarted under load (SIGTERM, then SIGKILL); agents reconnect.
    Restart,
    /// 1000 silent connections while a real agent registers.
    SilentFlood,
    /// Malformed, truncated and oversized frames at every stage.
    Frames,
    /// Steady load with agents reconnecting; RSS and fd growth of the proxy.
    Soak {
        /// How long (e.g. 60s, 5m; default 180s, 60s with --short).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (e.g. 60s, 5m)"))?;
    match unit {
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("unknown unit in {text:?}: use s, m or h")),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !cli.no_build {
        binaries::build()?;
    }
    let binaries = match &cli.bin_dir {
        Some(dir) => Binaries::in_dir(dir)?,
        None => Binaries::beside_current_exe()?,
    };
    let cores = Cores::detect();
    // The harness (clients, upstream) shares the agents' CPU; the proxy has the other.
    sys::pin_current_thread(cores.others)?;
    let limit = sys::raise_nofile_limit();
    eprintln!(
        "sentinel-faults: proxy on CPU {}, agents and harness on CPU {}; open-files limit {limit}; {} form",
        cores.proxy,
        cores.others,
        if cli.short { "short" } else { "full" }
    );
    let harness = Harness {
        binaries,
        cores,
        short: cli.short,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the runtime")?;
    let passed = runtime.block_on(run(&harness, cli.scenario))?;
    if !passed {
        anyhow::bail!("at least one scenario failed its expectation");
    }
    Ok(())
}

async fn run(harness: &Harness, scenario: Scenario) -> anyhow::Result<bool> {
    let default_soak = if harness.short {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(180)
    };
    let names: Vec<&str> = match scenario {
        Scenario::All { .. } => vec!["kill", "stop", "restart", "silent-flood", "frames", "soak"],
        Scenario::Kill => vec!["kill"],
        Scenario::Stop => vec!["stop"],
        Scenario::Restart => vec!["restart"],
        Scenario::SilentFlood => vec!["silent-flood"],
        Scenario::Frames => vec!["frames"],
        Scenario::Soak { .. } => vec!["soak"],
    };
    let soak = match scenario {
        Scenario::All { soak_duration: d } | Scenario::Soak { duration: d } => d,
        _ => None,
    }
    .unwrap_or(default_soak);
    let started = Instant::now();
    let mut summary = Vec::new();
    for name in names {
        let began = Instant::now();
        let report = match name {
            "kill" => scenarios::kill::run(harness).await,
            "stop" => scenarios::stop::run(harness).await,
            "restart" => scenarios::restart::run(harness).await,
            "silent-flood" => scenarios::silent_flood::run(harness).await,
            "frames" => scenarios::frames::run(harness).await,
            _ => scenarios::soak::run(harness, soak).await,
        };
        let passed = match report {
            Ok(report) => {
                println!("{}", report.render());
                report.passed()
            }
            Err(e) => {
                println!("== {name}\nthe harness could not run it: {e}\n{name} FAILED\n");
                false
            }
        };
        summary.push((name, passed, began.elapsed()));
    }
    println!("== summary ({:.0} s)", started.elapsed().as_secs_f64());
    for (name, passed, took) in &summary {
        let verdict = if *passed { "passed" } else { "FAILED" };
        println!("{name:<14} {verdict}  ({:.0} s)", took.as_secs_f64());
    }
    Ok(summary.iter().all(|(_, passed, _)| *passed))
}
