//! `sentinel-fleet`: builds a small network of namespaces (three proxy hosts, a client host
//! with the upstream, two agent hosts behind a masquerading router), runs the real `sentinel`
//! and `sentinel-waf-agent` binaries on it with TLS client certificates made here, and plays
//! the scenarios of docs/reliability.md ("Across hosts"): fleet, NAT, silent agent link,
//! silent proxy link, rolling restart. Prints each scenario's figures; exits non-zero if any
//! expectation failed or the machine cannot run it. Everything it creates is removed
//! afterwards, also after a failure or panic. A test tool, not shipped.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: set-up files, namespaces and /proc reads, outside any proxy runtime"
)]

mod http;
mod load;
mod netns;
mod pki;
mod preflight;
mod processes;
mod report;
mod scenarios;
mod topology;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use sentinel_test_support::build::{build_binaries, profile_dir};

use crate::processes::Files;
use crate::report::Report;
use crate::topology::Topology;

/// Sentinel across hosts, on real network namespaces (needs root, ip, nft).
#[derive(Parser)]
#[command(about)]
struct Cli {
    /// `all`, or one of: fleet, nat, silent-agent-link, silent-proxy-link, rolling-restart.
    #[arg(default_value = "all")]
    scenario: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let started = Instant::now();
    match run(&cli.scenario) {
        Ok(reports) => {
            let failed: Vec<&str> = reports
                .iter()
                .filter(|r| !r.passed())
                .map(|r| r.name)
                .collect();
            println!(
                "\nfleet: {} scenario(s) in {:.1} s; {}",
                reports.len(),
                started.elapsed().as_secs_f64(),
                if failed.is_empty() {
                    "all passed".to_string()
                } else {
                    format!("FAILED: {}", failed.join(", "))
                }
            );
            if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("sentinel-fleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(which: &str) -> anyhow::Result<Vec<Report>> {
    let names: Vec<&'static str> = match which {
        "all" => scenarios::ALL.to_vec(),
        one => vec![*scenarios::ALL
            .iter()
            .find(|s| **s == one)
            .with_context(|| {
                format!(
                    "unknown scenario {one:?}; known: all, {}",
                    scenarios::ALL.join(", ")
                )
            })?],
    };
    preflight::check()?;
    let bin_dir = binaries()?;
    let stale = netns::remove_stale();
    if stale > 0 {
        println!("fleet: removed {stale} namespace(s) left by an earlier run");
    }
    let topology = Topology::build().context("building the network")?;
    print_topology(&topology);
    let dir = tempfile::tempdir()?;
    let proxy_addrs: Vec<_> = topology.proxies.iter().map(|p| p.addr).collect();
    pki::write_all(dir.path(), &proxy_addrs, &scenarios::AGENT_IDS);
    let files = Files {
        bin_dir,
        dir: dir.path().to_path_buf(),
    };
    // Everything networked runs on the client host: the harness's own threads enter its
    // namespace, so the upstream, the load and the admin requests are real LAN traffic.
    let reports = std::thread::scope(|scope| {
        scope
            .spawn(|| -> anyhow::Result<Vec<Report>> {
                netns::enter(&topology.client.ns)?;
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let scenarios = async {
                        let mut fleet = scenarios::Fleet::start(&topology, files).await?;
                        let mut reports = Vec::new();
                        for name in names {
                            let report = scenarios::run(&mut fleet, name).await;
                            report.print();
                            reports.push(report);
                        }
                        Ok(reports)
                    };
                    // Ctrl-C or SIGTERM drops the scenarios (killing the processes) and falls
                    // through to the removal of the namespaces.
                    tokio::select! {
                        reports = scenarios => reports,
                        signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}; cleaned up")),
                    }
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the scenario thread panicked"))?
    });
    drop(topology);
    reports
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// The directory of the `sentinel` and agent binaries: this program's profile directory.
/// Under `cargo run` they are built first (same profile), so the harness always runs the
/// current code.
fn binaries() -> anyhow::Result<PathBuf> {
    if std::env::var_os("CARGO").is_some() {
        Ok(build_binaries(&["sentinel", "sentinel-agent-waf"])?)
    } else {
        Ok(profile_dir()?)
    }
}

fn print_topology(topology: &Topology) {
    println!("fleet network (namespaces, removed afterwards):");
    println!("  switch {:<16} bridge br0 = the LAN", topology.switch());
    for (i, p) in topology.proxies.iter().enumerate() {
        println!("  proxy{} {:<16} {}", i + 1, p.ns, p.addr);
    }
    println!(
        "  client {:<16} {} (load client, upstream)",
        topology.client.ns, topology.client.addr
    );
    println!(
        "  router {:<16} {} (masquerades the agent networks)",
        topology.router.ns, topology.router.addr
    );
    for (i, a) in topology.agents.iter().enumerate() {
        println!(
            "  agent{} {:<16} {} (behind the router, drops inbound)",
            i + 1,
            a.ns,
            a.addr
        );
    }
}
