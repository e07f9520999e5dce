//! **Rolling restart**: under steady load with both agents, the three proxies are restarted
//! one by one — SIGTERM, drain, start — each waiting until the restarted proxy lists both
//! agents again. Requests in flight on a draining proxy complete; the client, like a load
//! balancer, sends a request to another proxy only when its connection is refused (a stopped
//! proxy, or a started one whose agents have not dialled in yet: `wait-for-agents`), and sees
//! no failed request.

use std::time::{Duration, Instant};

use crate::processes::start_proxy;
use crate::report::{ms, Report};

use super::{Fleet, TIMING};

pub async fn run(fleet: &mut Fleet<'_>, report: &mut Report) -> anyhow::Result<()> {
    let marked = fleet.marked();
    let load = fleet.load(Duration::from_secs(40));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut terms = Vec::new();
    for proxy in 0..fleet.proxies.len() {
        let outcome = restart(fleet, proxy).await;
        match outcome {
            Ok((term, drained, ready)) => {
                report.figure(
                    format!(
                        "proxy{}: drained and exited / ready again (both agents) after",
                        proxy + 1
                    ),
                    format!("{} / {}", ms(drained), ms(ready)),
                );
                terms.push((proxy, term));
            }
            Err(e) => {
                load.stop().await;
                return Err(e);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stats = load.stop().await;
    let mut completed_in_drain = 0;
    for (proxy, term) in &terms {
        completed_in_drain += stats
            .samples
            .iter()
            .filter(|s| {
                s.proxy == *proxy
                    && s.started < *term
                    && s.started + s.latency > *term
                    && s.failure.is_none()
            })
            .count();
    }
    report.figure(
        "requests in flight at a SIGTERM that completed",
        completed_in_drain,
    );
    report.expect(
        stats.failovers > 0,
        "no connection was refused: the restarts were not exercised under load",
    );
    report.traffic(&stats, fleet.marked() - marked);
    Ok(())
}

/// SIGTERM, wait for the exit, start again, wait for both agents. Returns the SIGTERM moment,
/// the drain time and the time from start to ready.
async fn restart(
    fleet: &mut Fleet<'_>,
    proxy: usize,
) -> anyhow::Result<(Instant, Duration, Duration)> {
    let mut process = fleet.proxies[proxy]
        .take()
        .ok_or_else(|| anyhow::anyhow!("proxy{} is not running", proxy + 1))?;
    let term = Instant::now();
    let (drained, status) = process
        .terminate(TIMING.shutdown_grace + Duration::from_secs(3))
        .await?;
    anyhow::ensure!(
        status.success(),
        "proxy{} exited with an error after SIGTERM",
        proxy + 1
    );
    drop(process);
    let host = &fleet.topology.proxies[proxy];
    let started = Instant::now();
    fleet.proxies[proxy] = Some(start_proxy(
        &fleet.files,
        proxy + 1,
        &host.ns,
        host.addr,
        fleet.topology.client.addr,
        &TIMING,
    )?);
    let ready = fleet
        .wait_connections(
            &[proxy],
            &super::AGENT_IDS,
            super::CONNECTIONS,
            started,
            Duration::from_secs(15),
        )
        .await?;
    Ok((term, drained, ready[0]))
}
