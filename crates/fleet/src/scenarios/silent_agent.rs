//! **Silent agent link**: mid-traffic, one agent host's link goes down — its packets simply
//! stop. Every proxy must detect the dead connections by heartbeat within 2× the heartbeat
//! interval, move the requests in flight on them to the other agent (fail-closed route: no
//! client error, nothing allowed without a verdict), and re-admit the agent within the backoff
//! bound once the link is back.

use std::time::{Duration, Instant, SystemTime};

use anyhow::bail;

use crate::http::{agents, connections_of};
use crate::load::quantile;
use crate::report::{ms, Report};
use sentinel_test_support::process::stamped_after;

use super::{Fleet, AGENT_IDS, CONNECTIONS, POLL, TIMING};

/// How long the link stays down (longer than both sides need to notice).
const OUTAGE: Duration = Duration::from_secs(3);
/// Allowance on top of the detection bound for timer and scheduling slack, a fifth of the
/// heartbeat interval. The moment is the one the proxy wrote on its log line, not when the
/// harness read it, so the pipe and a loaded machine do not count.
const MEASUREMENT: Duration = TIMING.heartbeat.checked_div(5).expect("a non-zero divisor");
/// Registration after a successful dial: TCP + TLS handshakes and the registration exchange.
const HANDSHAKE: Duration = Duration::from_millis(1000);

pub async fn run(fleet: &mut Fleet<'_>, report: &mut Report) -> anyhow::Result<()> {
    let lost = AGENT_IDS[0];
    let host = fleet.topology.agents[0].clone();
    let all: Vec<usize> = (0..fleet.proxies.len()).collect();
    let marked = fleet.marked();
    let load = fleet.load(Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let down = Instant::now();
    let down_wall = SystemTime::now();
    fleet.topology.link_down(&host)?;
    let listed = wait_gone(fleet, &all, lost, down, OUTAGE).await;
    let detected = heartbeat_closes(fleet, lost, down, down_wall);
    let remaining = OUTAGE.saturating_sub(down.elapsed());
    tokio::time::sleep(remaining).await;
    let up = Instant::now();
    fleet.topology.link_up(&host)?;
    let readmitted = fleet
        .wait_connections(&all, &[lost], CONNECTIONS, up, Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = load.stop().await;
    let listed = listed?;
    let readmitted = readmitted?;

    let hb = TIMING.heartbeat;
    report.figure("heartbeat interval", ms(hb));
    for (proxy, (took, listed)) in detected.iter().zip(&listed).enumerate() {
        let Some(took) = took else {
            report.expect(
                false,
                format!(
                    "proxy{} did not close both connections of {lost} for a missed pong",
                    proxy + 1
                ),
            );
            continue;
        };
        report.figure(
            format!(
                "proxy{}: both {lost} connections closed (no pong) / gone from /agents after",
                proxy + 1
            ),
            format!("{} / {}", ms(*took), ms(*listed)),
        );
        report.expect(
            *took <= 2 * hb + MEASUREMENT,
            format!(
                "proxy{} took {} to detect the silent link (bound 2 × {} + {} measurement)",
                proxy + 1,
                ms(*took),
                ms(hb),
                ms(MEASUREMENT)
            ),
        );
    }
    let bound = TIMING.backoff_max + HANDSHAKE;
    for (proxy, took) in readmitted.iter().enumerate() {
        report.figure(
            format!(
                "proxy{}: {lost} re-admitted (2 conns) after link up",
                proxy + 1
            ),
            ms(*took),
        );
        report.expect(
            *took <= bound,
            format!(
                "proxy{} re-admitted {lost} after {} (bound: backoff max {} + handshake {})",
                proxy + 1,
                ms(*took),
                ms(TIMING.backoff_max),
                ms(HANDSHAKE)
            ),
        );
    }
    let moved = stats
        .samples
        .iter()
        .filter(|s| s.latency > hb && s.failure.is_none())
        .count();
    report.figure(
        "requests held on the dead connections, then decided by the other agent",
        moved,
    );
    report.expect(
        moved > 0,
        "no request was in flight on the dead connections: the retry was not exercised",
    );
    let during = stats.latencies(down, down + 2 * hb, &all);
    report.figure(
        "requests started in the detection window: count / max latency",
        format!("{} / {}", during.len(), ms(quantile(&during, 1.0))),
    );
    report.traffic(&stats, fleet.marked() - marked);
    Ok(())
}

/// Per proxy, how long after `since` it stopped listing `agent_id`.
async fn wait_gone(
    fleet: &Fleet<'_>,
    which: &[usize],
    agent_id: &str,
    since: Instant,
    limit: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let waits = which.iter().map(|&proxy| async move {
        let admin = fleet.admin(proxy);
        loop {
            if let Ok(listing) = agents(admin, Duration::from_millis(300)).await {
                if connections_of(&listing, agent_id) == 0 {
                    return Ok(since.elapsed());
                }
            }
            if since.elapsed() > limit {
                bail!(
                    "proxy{} still lists {agent_id} {limit:?} after its link went down",
                    proxy + 1
                );
            }
            tokio::time::sleep(POLL).await;
        }
    });
    futures::future::try_join_all(waits).await
}

/// Per proxy, how long after `since` its log said the second connection of `agent_id` was
/// removed for a missed pong (the heartbeat's verdict), by the line's own timestamp (by when
/// the harness read it if the line has none); `None` if it did not.
fn heartbeat_closes(
    fleet: &Fleet<'_>,
    agent_id: &str,
    since: Instant,
    since_wall: SystemTime,
) -> Vec<Option<Duration>> {
    let prefix = format!("assigned_id={agent_id}-conn-");
    fleet
        .proxies
        .iter()
        .map(|proxy| {
            let lines = proxy.as_ref()?.log().lines_since(
                since,
                &["agent connection removed from pool", &prefix, "no pong"],
            );
            lines.get(CONNECTIONS - 1).map(|(read_at, text)| {
                stamped_after(text, since_wall).unwrap_or(read_at.duration_since(since))
            })
        })
        .collect()
}
