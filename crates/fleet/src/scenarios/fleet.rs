//! **Fleet**: each agent process dials all three proxies with two connections per proxy;
//! every proxy's `/agents` lists both agents (over TLS); traffic through each proxy is decided
//! by them — attacks blocked, clean requests passed, and both agents' decision counters grow
//! on every proxy.

use std::time::{Duration, Instant};

use crate::http::{agents, decisions_of};
use crate::report::{ms, Report};

use super::{Fleet, AGENT_IDS, CONNECTIONS};

pub async fn run(fleet: &mut Fleet<'_>, report: &mut Report) -> anyhow::Result<()> {
    let formed = fleet
        .wait_whole(fleet.agents_started, Duration::from_secs(20))
        .await?;
    let slowest = formed.iter().max().copied().unwrap_or_default();
    report.figure(
        "fleet formed (agents started → every proxy lists both, 2 conns each)",
        ms(slowest),
    );
    let mut before = Vec::new();
    for proxy in 0..fleet.proxies.len() {
        let listing = agents(fleet.admin(proxy), Duration::from_secs(2)).await?;
        for agent in &listing {
            let tls = agent.connections.iter().all(|c| c.transport == "tls");
            report.expect(
                tls,
                format!(
                    "proxy{}: {} has a non-TLS connection",
                    proxy + 1,
                    agent.agent_id
                ),
            );
        }
        report.figure(
            format!("proxy{} lists", proxy + 1),
            listing
                .iter()
                .map(|a| format!("{} ({} conns)", a.agent_id, a.connections.len()))
                .collect::<Vec<_>>()
                .join(", "),
        );
        before.push(listing);
    }
    let marked = fleet.marked();
    let started = Instant::now();
    let load = fleet.load(Duration::from_secs(3));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = load.stop().await;
    report.figure("traffic for", ms(started.elapsed()));
    report.traffic(&stats, fleet.marked() - marked);
    for (proxy, before) in before.iter().enumerate() {
        let through: usize = stats.samples.iter().filter(|s| s.proxy == proxy).count();
        report.expect(
            through > 0,
            format!("no request went through proxy{}", proxy + 1),
        );
        let after = agents(fleet.admin(proxy), Duration::from_secs(2)).await?;
        let mut decided = Vec::new();
        for id in AGENT_IDS {
            let grew = decisions_of(&after, id).saturating_sub(decisions_of(before, id));
            decided.push(format!("{id} {grew}"));
            report.expect(
                grew > 0,
                format!("{id} decided nothing through proxy{}", proxy + 1),
            );
        }
        report.figure(
            format!("proxy{}: requests / decisions by agent", proxy + 1),
            format!("{through} / {}", decided.join(", ")),
        );
    }
    report.figure("connections per agent per proxy", CONNECTIONS);
    Ok(())
}
