//! `stop`: the only agent process SIGSTOPped under load, then SIGCONTed. While it is stopped
//! its connections stay open but nothing answers: each request waits for the agent's
//! timeout (2 s) and fails closed with 503, and nothing reaches the upstream. After SIGCONT
//! the same connections serve again (the late answers to timed-out requests are dropped).

use std::time::{Duration, Instant};

use crate::error::FaultError;
use crate::report::{seconds, Report};
use crate::scenarios::kill::failure_reasons;
use crate::scenarios::{hold, waf_settings, Harness, REGISTER_PATIENCE};

const STEADY: &str = "steady, 1 agent process";
const STOPPED: &str = "agent SIGSTOPped (fail closed)";
const RESUMED: &str = "agent SIGCONTed";

/// The agent timeout of [`crate::scenarios::waf_agent`].
const AGENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the scenario.
pub async fn run(harness: &Harness) -> Result<Report, FaultError> {
    let mut world = harness.world(&waf_settings()).await?;
    let agent = harness.waf(&world, "waf-a", 2)?;
    world
        .proxy
        .wait_registered(&[("waf-a", agent.pid(), 2)], REGISTER_PATIENCE)
        .await?;
    let load_started = Instant::now();
    let load = world.steady_load(STEADY);
    hold(harness.hold(Duration::from_secs(5), Duration::from_secs(2))).await;

    agent.pause().await?;
    let stopped_at = Instant::now();
    // Requests sent from now on cannot be answered; those already in flight are in the
    // previous phase.
    load.phase(STOPPED);
    // Requests sent just before the stop hang until their timeout, and the next ones sent
    // then until SIGCONT: the stop lasts at least 2.5 agent timeouts so that a whole round
    // of requests sent while it is stopped times out before SIGCONT. It stays below two
    // heartbeat intervals (20 s), so the proxy keeps the connections.
    hold(harness.hold(Duration::from_secs(8), Duration::from_secs(5))).await;

    load.phase(RESUMED);
    agent.resume()?;
    let resumed_at = Instant::now();
    hold(harness.hold(Duration::from_secs(6), Duration::from_secs(4))).await;
    let ended_at = Instant::now();
    let result = load.finish().await;
    let connections_after = world
        .proxy
        .connections_of("waf-a", Some(agent.pid()))
        .await?;

    let mut report = Report::new("stop");
    report.record_load(&result);
    let first_failure = result.first_failure_after(stopped_at);
    report.fact(
        "stopped: first 503 after",
        first_failure.map_or("never".into(), seconds),
    );
    let recovery = result.first_allowed_after(resumed_at);
    report.fact(
        "resumed: first allowed request after",
        recovery.map_or("never".into(), seconds),
    );
    let last_failure = result.last_failure_after(resumed_at);
    report.fact(
        "resumed: last failure completed after",
        last_failure.map_or("none".into(), seconds),
    );
    report.fact(
        "connections of the agent after SIGCONT",
        connections_after.to_string(),
    );
    let metrics = world.proxy.metrics().await.unwrap_or_default();
    report.fact("proxy agent failures by reason", failure_reasons(&metrics));

    // The steady phase ends with the requests caught by the stop; those time out.
    report.check_steady(&result, STEADY, load_started, stopped_at, "the stop");
    // Requests sent while it is stopped and still waiting at SIGCONT are answered by it then.
    let stopped = result.completed_between(stopped_at, resumed_at);
    report.check(
        "stopped: every request answered before SIGCONT fails closed with 503, none allowed",
        stopped.sent > 0 && stopped.unavailable == stopped.sent,
        format!(
            "{} sent, {} answered 503, {} allowed, {} other failures",
            stopped.sent,
            stopped.unavailable,
            stopped.allowed,
            stopped.failed() - stopped.unavailable
        ),
    );
    let range = result.failure_latency_range(STOPPED);
    report.check(
        "stopped: each 503 comes after the agent timeout (2 s), neither earlier nor much later",
        range.is_some_and(|(lo, hi)| {
            lo >= AGENT_TIMEOUT.mul_f64(0.95) && hi <= AGENT_TIMEOUT + Duration::from_secs(2)
        }),
        range.map_or("no failure".into(), |(lo, hi)| {
            format!("{} to {}", seconds(lo), seconds(hi))
        }),
    );
    // Requests sent while the agent was stopped fail up to one agent timeout after SIGCONT;
    // after that, nothing may fail.
    let settle = resumed_at + AGENT_TIMEOUT + Duration::from_secs(1);
    let late = result.failures_between(settle, ended_at);
    report.check(
        "resumed: recovers (first allowed within 3 s) and nothing fails from 3 s after SIGCONT",
        recovery.is_some_and(|d| d <= Duration::from_secs(3)) && late == 0,
        format!(
            "first allowed after {}, {late} failures after settling",
            recovery.map_or("never".into(), seconds)
        ),
    );
    report.check(
        "resumed: the agent keeps its connections (no reconnect needed)",
        connections_after == 2,
        format!("{connections_after} connections"),
    );
    drop(agent);
    Ok(world.finish(report).await)
}
