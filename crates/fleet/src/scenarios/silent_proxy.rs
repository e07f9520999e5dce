//! **Silent proxy link**: one proxy host goes dark. The agents notice by their own heartbeat
//! check (no frame from that proxy for `silent-heartbeats` intervals), keep serving the other
//! two proxies without delay (their connections there are untouched), and reconnect when the
//! host returns.

use std::time::{Duration, Instant, SystemTime};

use anyhow::bail;

use crate::load::quantile;
use crate::report::{ms, Report};
use sentinel_test_support::process::stamped_after;

use super::{Fleet, AGENT_IDS, CONNECTIONS, TIMING};

const OUTAGE: Duration = Duration::from_secs(3);
/// Allowance for timer and scheduling slack, half a heartbeat interval. The moment is the one
/// the agent wrote on its log line, not when the harness read it.
const MEASUREMENT: Duration = TIMING.heartbeat.checked_div(2).expect("a non-zero divisor");

pub async fn run(fleet: &mut Fleet<'_>, report: &mut Report) -> anyhow::Result<()> {
    let dark = 2;
    let host = fleet.topology.proxies[dark].clone();
    let others = [0, 1];
    let marked = fleet.marked();
    let load = fleet.load(Duration::from_secs(20));
    load.only(&others);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_from = Instant::now() - Duration::from_millis(900);

    let down = Instant::now();
    let down_wall = SystemTime::now();
    fleet.topology.link_down(&host)?;
    let noticed = wait_noticed(fleet, &host.addr.to_string(), down, down_wall, OUTAGE).await;
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    let up = Instant::now();
    fleet.topology.link_up(&host)?;
    let back = fleet
        .wait_connections(
            &[dark],
            &AGENT_IDS,
            CONNECTIONS,
            up,
            Duration::from_secs(15),
        )
        .await;
    load.only(&[0, 1, 2]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = load.stop().await;
    let noticed = noticed?;
    let back = back?;

    let bound = TIMING.heartbeat * TIMING.silent_heartbeats + MEASUREMENT;
    for (agent, took) in AGENT_IDS.iter().zip(&noticed) {
        report.figure(
            format!("{agent}: both connections to proxy3 declared silent after"),
            ms(*took),
        );
        report.expect(
            *took <= bound,
            format!("{agent} took {} to notice (bound {})", ms(*took), ms(bound)),
        );
    }
    report.figure("proxy3 lists both agents again after link up", ms(back[0]));
    let baseline = stats.latencies(before_from, down, &others);
    let during = stats.latencies(down, up, &others);
    report.figure(
        "proxy1+2 latency p99 / max: before | while proxy3 dark",
        format!(
            "{} / {} | {} / {} ({} requests)",
            ms(quantile(&baseline, 0.99)),
            ms(quantile(&baseline, 1.0)),
            ms(quantile(&during, 0.99)),
            ms(quantile(&during, 1.0)),
            during.len()
        ),
    );
    report.expect(!during.is_empty(), "no traffic while proxy3 was dark");
    report.expect(
        quantile(&during, 0.99) < TIMING.heartbeat,
        "requests through the other proxies waited for the dark one (p99 above a heartbeat)",
    );
    let after = stats
        .samples
        .iter()
        .filter(|s| s.started > up && s.proxy == dark)
        .count();
    report.figure("requests through proxy3 after its return", after);
    report.traffic(&stats, fleet.marked() - marked);
    Ok(())
}

/// Per agent, how long after `since` both its connections to the proxy at `addr` were
/// declared silent (from the agent's own log).
async fn wait_noticed(
    fleet: &Fleet<'_>,
    addr: &str,
    since: Instant,
    since_wall: SystemTime,
    limit: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let needle = format!("tls:{addr}:");
    loop {
        let seen: Vec<Vec<(Instant, String)>> = fleet
            .agents
            .iter()
            .map(|a| {
                a.log()
                    .lines_since(since, &["connection lost", &needle, "Silent"])
            })
            .collect();
        if seen.iter().all(|lines| lines.len() >= CONNECTIONS) {
            return Ok(seen
                .iter()
                .map(|lines| {
                    let (read_at, text) = &lines[CONNECTIONS - 1];
                    stamped_after(text, since_wall).unwrap_or(read_at.duration_since(since))
                })
                .collect());
        }
        if since.elapsed() > limit {
            bail!("the agents did not declare their connections to {addr} silent within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
