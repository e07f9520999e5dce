//! **NAT**: the agents accept no inbound connection, yet serve all proxies. Checked from
//! three sides: every proxy sees every agent connection coming from the router's LAN address
//! (masquerade), a connection attempt from the router to an agent host is dropped (it times
//! out — no RST, no answer) while the proxy hosts have no route to the agent networks at all,
//! and the agent hosts' firewall drops by default. Then traffic through every proxy is decided
//! by the NATed agents.

use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use crate::http::agents;
use crate::netns::run_in;
use crate::processes::AGENT_PORT;
use crate::report::Report;
use crate::topology::ruleset;

use super::{Fleet, AGENT_IDS, CONNECTIONS};

/// How long a probe waits for an answer to its SYN.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

pub async fn run(fleet: &mut Fleet<'_>, report: &mut Report) -> anyhow::Result<()> {
    let router = fleet.topology.router.addr.to_string();
    for proxy in 0..fleet.proxies.len() {
        let listing = agents(fleet.admin(proxy), Duration::from_secs(2)).await?;
        for id in AGENT_IDS {
            let peers: Vec<String> = listing
                .iter()
                .filter(|a| a.agent_id == id)
                .flat_map(|a| a.connections.iter().map(|c| c.peer.clone()))
                .collect();
            let natted = peers
                .iter()
                .all(|p| p.split(':').next() == Some(router.as_str()));
            report.expect(
                peers.len() == CONNECTIONS && natted,
                format!(
                    "proxy{} sees {id} from {peers:?}, expected {CONNECTIONS} connections from the router {router}",
                    proxy + 1
                ),
            );
        }
    }
    report.figure(
        "agent connections as the proxies see them",
        format!("all from the router {router} (masquerade)"),
    );

    let mut probes = Vec::new();
    for agent in &fleet.topology.agents {
        for port in [AGENT_PORT, 22] {
            let target = SocketAddr::V4(SocketAddrV4::new(agent.addr, port));
            probes.push((fleet.topology.router.ns.clone(), "router", target, true));
            for (i, proxy) in fleet.topology.proxies.iter().enumerate() {
                let from = ["proxy1", "proxy2", "proxy3"][i.min(2)];
                probes.push((proxy.ns.clone(), from, target, false));
            }
        }
    }
    let handles: Vec<_> = probes
        .into_iter()
        .map(|(ns, from, target, routable)| {
            tokio::task::spawn_blocking(move || {
                let outcome = run_in(&ns, || TcpStream::connect_timeout(&target, PROBE_TIMEOUT));
                (from, target, routable, outcome)
            })
        })
        .collect();
    let mut dropped = 0;
    let mut unroutable = 0;
    for handle in handles {
        let (from, target, routable, outcome) = handle.await?;
        let outcome = outcome?;
        match (&outcome, routable) {
            (Err(e), true) if e.kind() == std::io::ErrorKind::TimedOut => dropped += 1,
            (Err(_), false) => unroutable += 1,
            (outcome, _) => report.expect(
                false,
                format!("connection attempt {from} → {target}: {outcome:?}, expected it to be dropped/unroutable"),
            ),
        }
    }
    report.figure(
        "inbound attempts router → agent hosts",
        format!("{dropped} dropped (timed out after {PROBE_TIMEOUT:?}, no RST)"),
    );
    report.figure(
        "inbound attempts proxy hosts → agent hosts",
        format!("{unroutable} failed (no route to the private networks)"),
    );
    for agent in &fleet.topology.agents {
        let rules = ruleset(agent)?;
        report.expect(
            rules.contains("policy drop"),
            format!("{}: the input chain does not drop by default", agent.ns),
        );
    }
    let all: Vec<usize> = (0..fleet.proxies.len()).collect();
    fleet
        .wait_connections(
            &all,
            &AGENT_IDS,
            CONNECTIONS,
            std::time::Instant::now(),
            Duration::from_secs(2),
        )
        .await?;
    let marked = fleet.marked();
    let load = fleet.load(Duration::from_secs(3));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = load.stop().await;
    let through: Vec<usize> = (0..fleet.proxies.len())
        .map(|p| stats.samples.iter().filter(|s| s.proxy == p).count())
        .collect();
    report.figure(
        "served through NAT: requests per proxy",
        format!("{through:?}, both agents at full strength on all three"),
    );
    report.expect(
        through.iter().all(|n| *n > 0),
        "a proxy got no traffic through NAT",
    );
    report.traffic(&stats, fleet.marked() - marked);
    Ok(())
}
