//! `stop`: the only agent process SIGSTOPped under load, then SIGCONTed. While it is stopped
//! its connections stay open but nothing answers: each request waits for the agent's
//! timeout (2 s) and fails closed with 503, and nothing reaches the upstream. After SIGCONT
//! the same connections serve again (the late answers to timed-out requests are dropped).

use std::time::{Duration, Instant};

use crate::error::FaultError;
use crate::load::{Load, LoadSpec};
use crate::proxy::ProxySettings;
use crate::report::{seconds, Report};
use crate::scenarios::kill::failure_reasons;
use crate::scenarios::{hold, Harness, REGISTER_PATIENCE, WAF_AGENT_AND_ROUTE, WAF_PREFIX};

const STEADY: &str = "steady, 1 agent process";
const STOPPED: &str = "agent SIGSTOPped (fail closed)";
const RESUMED: &str = "agent SIGCONTed";

/// The agent timeout of [`WAF_AGENT_AND_ROUTE`].
const AGENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the scenario.
pub async fn run(harness: &Harness) -> Result<Report, FaultError> {
    let mut world = harness.world(&ProxySettings::new(WAF_AGENT_AND_ROUTE)).await?;
    let agent = harness.waf(&world, "waf-a", 2)?;
    world
        .proxy
        .wait_registered(&[("waf-a", agent.pid(), 2)], REGISTER_PATIENCE)
        .await?;
    let load = Load::start(
        LoadSpec::steady(WAF_PREFIX, Duration::from_secs(300)),
        world.proxy.addresses().http,
        STEADY,
    );
    hold(harness.hold(Duration::from_secs(5), Duration::from_secs(2))).await;

    load.phase(STOPPED);
    agent.stop().await?;
    let stopped_at = Instant::now();
    hold(harness.hold(Duration::from_secs(8), Duration::from_secs(4))).await;

    load.phase(RESUMED);
    agent.resume()?;
    let resumed_at = Instant::now();
    hold(harness.hold(Duration::from_secs(6), Duration::from_secs(4))).await;
    let ended_at = Instant::now();
    let result = load.finish().await;
    let connections_after = world.proxy.connections_of("waf-a", Some(agent.pid())).await?;

    let mut report = Report::new("stop");
    report.phases = result.tallies();
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
    report.fact("connections of the agent after SIGCONT", connections_after.to_string());
    let metrics = world.proxy.metrics().await.unwrap_or_default();
    report.fact("proxy agent failures by reason", failure_reasons(&metrics));

    let steady = result.tally_of(STEADY);
    report.check("steady: no request fails", steady.sent > 0 && steady.failed() == 0, format!("{} of {} failed", steady.failed(), steady.sent));
    let stopped = result.tally_of(STOPPED);
    report.check(
        "stopped: every request fails closed with 503 (agent timeout), none allowed",
        stopped.sent > 0 && stopped.unavailable == stopped.sent,
        format!("{} sent, {} answered 503, {} allowed, {} other failures", stopped.sent, stopped.unavailable, stopped.allowed, stopped.failed() - stopped.unavailable),
    );
    report.check(
        "stopped: the first 503 comes after about the agent timeout (2 s), not at once",
        first_failure.is_some_and(|d| d >= AGENT_TIMEOUT.mul_f64(0.9) && d <= AGENT_TIMEOUT * 4),
        first_failure.map_or("none".into(), seconds),
    );
    // Requests sent while the agent was stopped fail up to one agent timeout after SIGCONT;
    // after that, nothing may fail.
    let settle = resumed_at + AGENT_TIMEOUT + Duration::from_secs(1);
    let late = result.failures_between(settle, ended_at);
    report.check(
        "resumed: recovers (first allowed within 3 s) and nothing fails from 3 s after SIGCONT",
        recovery.is_some_and(|d| d <= Duration::from_secs(3)) && late == 0,
        format!("first allowed after {}, {late} failures after settling", recovery.map_or("never".into(), seconds)),
    );
    report.check(
        "resumed: the agent keeps its connections (no reconnect needed)",
        connections_after == 2,
        format!("{connections_after} connections"),
    );
    drop(agent);
    world.final_checks(&mut report);
    Ok(report)
}
