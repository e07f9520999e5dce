//! The running fleet every scenario works on — three proxies, two agent processes each dialling
//! all three, the upstream on the client host — and the waits the scenarios share (until the
//! proxies list the agents, or stop listing one). Each scenario leaves the fleet whole (every
//! proxy with both agents at full strength) for the next.

mod fleet;
mod nat;
mod rolling;
mod silent_agent;
mod silent_proxy;

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::http::{agents, connections_of, get, UpstreamCounts, ATTACK_MARKER};
use crate::load::{Load, LoadConfig};
use crate::processes::{
    start_agent, start_proxy, Files, Process, Timing, ADMIN_PORT, CONTROL_PREFIX, HTTP_PORT,
    UPSTREAM_PORT,
};
use crate::report::Report;
use crate::topology::Topology;

/// The agent processes, one per agent host.
pub const AGENT_IDS: [&str; 2] = ["waf-a", "waf-b"];
/// Connections each agent keeps to each proxy.
pub const CONNECTIONS: usize = 2;
/// How often the admin API is polled while waiting for a change.
pub const POLL: Duration = Duration::from_millis(50);
/// Upstream latency, so requests are in flight when something fails.
pub const UPSTREAM_DELAY: Duration = Duration::from_millis(20);

/// The timing the fleet runs with (short, as on a LAN; see docs/operations.md).
pub const TIMING: Timing = Timing {
    heartbeat: Duration::from_millis(500),
    agent_timeout: Duration::from_millis(3000),
    backoff_initial: Duration::from_millis(100),
    backoff_max: Duration::from_millis(1000),
    silent_heartbeats: 3,
    shutdown_grace: Duration::from_secs(5),
};

/// The fleet's processes and addresses.
pub struct Fleet<'a> {
    pub topology: &'a Topology,
    pub files: Files,
    pub proxies: Vec<Option<Process>>,
    pub agents: Vec<Process>,
    pub upstream: Arc<UpstreamCounts>,
    /// When the agents were started (for the formation time).
    pub agents_started: Instant,
}

impl<'a> Fleet<'a> {
    /// Starts the upstream (here, on the client host), the proxies and the agents.
    pub async fn start(topology: &'a Topology, files: Files) -> anyhow::Result<Fleet<'a>> {
        let upstream_addr = SocketAddr::V4(SocketAddrV4::new(topology.client.addr, UPSTREAM_PORT));
        let upstream = crate::http::start_upstream(upstream_addr, UPSTREAM_DELAY).await?;
        let mut proxies = Vec::new();
        for (i, host) in topology.proxies.iter().enumerate() {
            proxies.push(Some(start_proxy(
                &files,
                i + 1,
                &host.ns,
                host.addr,
                topology.client.addr,
                &TIMING,
            )?));
        }
        let proxy_addrs: Vec<_> = topology.proxies.iter().map(|p| p.addr).collect();
        let agents_started = Instant::now();
        let mut agent_processes = Vec::new();
        for (id, host) in AGENT_IDS.iter().zip(&topology.agents) {
            agent_processes.push(start_agent(
                &files,
                id,
                &host.ns,
                &proxy_addrs,
                CONNECTIONS,
                &TIMING,
            )?);
        }
        Ok(Fleet {
            topology,
            files,
            proxies,
            agents: agent_processes,
            upstream,
            agents_started,
        })
    }

    pub fn http(&self, proxy: usize) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(
            self.topology.proxies[proxy].addr,
            HTTP_PORT,
        ))
    }

    pub fn admin(&self, proxy: usize) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(
            self.topology.proxies[proxy].addr,
            ADMIN_PORT,
        ))
    }

    /// Marked requests the upstream has seen so far.
    pub fn marked(&self) -> u64 {
        self.upstream.marked.load(Ordering::Relaxed)
    }

    /// Load over every proxy for at most `max`.
    pub fn load(&self, max: Duration) -> Load {
        Load::start(LoadConfig {
            proxies: (0..self.proxies.len()).map(|i| self.http(i)).collect(),
            workers: 8,
            max_requests: 200_000,
            max_duration: max,
            request_timeout: Duration::from_secs(10),
        })
    }

    /// Waits until each proxy in `which` lists `agent_id` with exactly `want` connections;
    /// returns, per proxy, how long after `since` that was first seen.
    pub async fn wait_connections(
        &self,
        which: &[usize],
        agent_ids: &[&str],
        want: usize,
        since: Instant,
        limit: Duration,
    ) -> anyhow::Result<Vec<Duration>> {
        let waits = which.iter().map(|&proxy| async move {
            let admin = self.admin(proxy);
            loop {
                if let Ok(listing) = agents(admin, Duration::from_millis(300)).await {
                    if agent_ids
                        .iter()
                        .all(|id| connections_of(&listing, id) == want)
                    {
                        return Ok(since.elapsed());
                    }
                }
                if since.elapsed() > limit {
                    bail!(
                        "proxy{} did not list {agent_ids:?} with {want} connections each within {limit:?}",
                        proxy + 1
                    );
                }
                tokio::time::sleep(POLL).await;
            }
        });
        futures::future::try_join_all(waits).await
    }

    /// Waits until every proxy lists both agents at full strength.
    pub async fn wait_whole(
        &self,
        since: Instant,
        limit: Duration,
    ) -> anyhow::Result<Vec<Duration>> {
        let all: Vec<usize> = (0..self.proxies.len()).collect();
        self.wait_connections(&all, &AGENT_IDS, CONNECTIONS, since, limit)
            .await
    }

    /// One marked request on the route without agents must reach the upstream and be counted
    /// exactly once: a counter that cannot count would otherwise report "nothing wrongly
    /// allowed" forever. Sent after the scenario's traffic, through the first running proxy.
    pub async fn positive_control(&self, report: &mut Report) {
        let Some(proxy) = self.proxies.iter().position(Option::is_some) else {
            report.expect(
                false,
                "positive control: no proxy is running to send it through",
            );
            return;
        };
        let before = self.marked();
        let path = format!("{CONTROL_PREFIX}probe?{ATTACK_MARKER}=control");
        let answer = get(self.http(proxy), &path, Duration::from_secs(10)).await;
        let counted = self.marked() - before;
        let status = answer.as_ref().map(|(status, _)| *status);
        report.figure(
            "positive control (marked request, route without agents)",
            format!("answer {status:?}, counted {counted}"),
        );
        report.expect(
            status == Ok(200) && counted == 1,
            format!(
                "positive control: the marked request on the route without agents got {status:?} \
                 and was counted {counted} times by the upstream (want 200, counted once)"
            ),
        );
    }

    /// Prints the last log lines of every process (after a failed scenario).
    pub fn dump_logs(&self) {
        let processes = self.proxies.iter().flatten().chain(&self.agents);
        for process in processes {
            println!("  -- last log lines of {}", process.name());
            for line in process.log_tail(12).lines() {
                println!("     {line}");
            }
        }
    }
}

/// The scenarios, in the order `all` runs them.
pub const ALL: [&str; 5] = [
    "fleet",
    "nat",
    "silent-agent-link",
    "silent-proxy-link",
    "rolling-restart",
];

/// Runs scenario `name` on `fleet`; a harness error fails the report.
pub async fn run(fleet: &mut Fleet<'_>, name: &'static str) -> Report {
    let mut report = Report::new(name);
    // Every scenario starts from the whole fleet (the fleet scenario measures its forming).
    if name != "fleet" {
        if let Err(e) = fleet
            .wait_whole(Instant::now(), Duration::from_secs(20))
            .await
        {
            report.error(&e);
            fleet.dump_logs();
            return report;
        }
    }
    let outcome = match name {
        "fleet" => fleet::run(fleet, &mut report).await,
        "nat" => nat::run(fleet, &mut report).await,
        "silent-agent-link" => silent_agent::run(fleet, &mut report).await,
        "silent-proxy-link" => silent_proxy::run(fleet, &mut report).await,
        "rolling-restart" => rolling::run(fleet, &mut report).await,
        other => Err(anyhow::anyhow!("unknown scenario {other}")),
    };
    if let Err(e) = outcome {
        report.error(&e);
    }
    fleet.positive_control(&mut report).await;
    if !report.passed() {
        fleet.dump_logs();
    }
    report
}
