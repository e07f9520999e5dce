//! `kill`: an agent process SIGKILLed under load. Two WAF processes serve the logical agent;
//! killing one must cost (almost) nothing, since requests caught on it are retried on the
//! other; the killed one, started again, registers again. Then both are killed: every
//! request fails closed (503, nothing reaches the upstream) until they are back, and serving
//! resumes as soon as they have registered.

use std::time::{Duration, Instant};

use crate::error::FaultError;
use crate::load::{Load, LoadSpec};
use crate::report::{seconds, Report};
use crate::scenarios::{hold, waf_settings, Harness, World, REGISTER_PATIENCE, WAF_PREFIX};
use sentinel_test_support::process::Supervised;

const STEADY: &str = "steady, 2 agent processes";
const ONE_KILLED: &str = "waf-a SIGSTOP+SIGKILL, waf-b serves";
const ONE_BACK: &str = "waf-a restarted";
const KILLING_BOTH: &str = "killing both";
const BOTH_KILLED: &str = "both SIGKILLed (fail closed)";
const BOTH_BACK: &str = "both restarted";

/// Runs the scenario.
pub async fn run(harness: &Harness) -> Result<Report, FaultError> {
    let mut world = harness.world(&waf_settings()).await?;
    let mut a = harness.waf(&world, "waf-a", 2)?;
    let mut b = harness.waf(&world, "waf-b", 2)?;
    both_registered(&mut world, &a, &b).await?;
    let phase_hold = harness.hold(Duration::from_secs(5), Duration::from_secs(2));
    let spec = LoadSpec::steady(WAF_PREFIX, Duration::from_secs(300));
    let load = Load::start(spec, world.proxy.addresses().http, STEADY);
    hold(phase_hold).await;

    load.phase(ONE_KILLED);
    // Freeze it first so that requests are certainly in flight on it when it dies: those
    // must be retried on the other process at once, not wait for the agent timeout.
    a.pause().await?;
    let caught = wait_in_flight(&world, "waf-a").await?;
    a.kill().await?;
    let detected = world
        .proxy
        .wait_unregistered("waf-a", REGISTER_PATIENCE)
        .await?;
    hold(phase_hold).await;

    load.phase(ONE_BACK);
    a.respawn()?;
    let one_back = world
        .proxy
        .wait_registered(&[("waf-a", a.pid(), 2)], REGISTER_PATIENCE)
        .await?;
    let one_back_at = Instant::now();
    hold(phase_hold).await;

    load.phase(KILLING_BOTH);
    let both_killed_at = Instant::now();
    a.kill().await?;
    b.kill().await?;
    // Requests sent from now on find no agent at all.
    load.phase(BOTH_KILLED);
    hold(phase_hold).await;

    load.phase(BOTH_BACK);
    let restarted_at = Instant::now();
    a.respawn()?;
    b.respawn()?;
    both_registered(&mut world, &a, &b).await?;
    let registered_at = Instant::now();
    hold(phase_hold).await;
    let result = load.finish().await;

    let mut report = Report::new("kill");
    report.record_load(&result);
    report.fact(
        "requests in flight on waf-a when it was killed",
        caught.to_string(),
    );
    report.fact(
        "proxy dropped the killed process's connections after",
        seconds(detected),
    );
    report.fact("restarted process registered after", seconds(one_back));
    if let Some(d) = result.first_failure_after(both_killed_at) {
        report.fact("both killed: first 503 after", seconds(d));
    }
    report.fact(
        "both restarted: registered after",
        seconds(registered_at - restarted_at),
    );
    let recovery = result.first_allowed_after(restarted_at);
    report.fact(
        "both restarted: first allowed request after",
        recovery.map_or("never".into(), seconds),
    );
    let metrics = world.proxy.metrics().await.unwrap_or_default();
    report.fact("proxy agent failures by reason", failure_reasons(&metrics));

    let steady = result.tally_of(STEADY);
    report.check(
        "steady: no request fails",
        steady.failed() == 0 && steady.sent > 0,
        format!("{} of {} failed", steady.failed(), steady.sent),
    );
    let one = result.tally_of(ONE_KILLED);
    report.check(
        "one of two killed: requests in flight on it are retried on the other (no failure)",
        one.failed() == 0 && one.sent > 0,
        format!("{} of {} failed", one.failed(), one.sent),
    );
    // Requests still in flight when both are killed fail with them; they do not count here.
    let back = result.failures_between(one_back_at, both_killed_at);
    report.check(
        "killed process restarted: no request fails until both are killed",
        back == 0,
        format!("{back} failed"),
    );
    let closed = result.tally_of(BOTH_KILLED);
    report.check(
        "both killed: every request fails closed with 503",
        closed.sent > 0 && closed.unavailable == closed.sent,
        format!(
            "{} sent, {} answered 503, {} allowed",
            closed.sent, closed.unavailable, closed.allowed
        ),
    );
    report.check(
        "both restarted: no failure once registered",
        result.failures_between(registered_at, Instant::now()) == 0,
        format!(
            "{} failed",
            result.failures_between(registered_at, Instant::now())
        ),
    );
    Ok(world.finish(report).await)
}

/// Waits until `/agents` shows requests in flight on `agent_id`; returns how many.
async fn wait_in_flight(
    world: &crate::scenarios::World,
    agent_id: &str,
) -> Result<u64, FaultError> {
    let started = Instant::now();
    loop {
        let n = world.proxy.in_flight_of(agent_id).await?;
        if n > 0 {
            return Ok(n);
        }
        if started.elapsed() > REGISTER_PATIENCE {
            return Err(FaultError::timeout(
                format!("requests in flight on {agent_id}"),
                REGISTER_PATIENCE,
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `reason=count` pairs of the proxy's `sentinel_agent_failures_total`.
pub fn failure_reasons(metrics: &str) -> String {
    let reasons = sentinel_test_support::prometheus::metric_by_label(
        metrics,
        "sentinel_agent_failures_total",
        "reason",
    );
    if reasons.is_empty() {
        return "none".into();
    }
    reasons
        .iter()
        .map(|(reason, n)| format!("{reason}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until agents `a` (waf-a) and `b` (waf-b) are registered with both connections each.
async fn both_registered(
    world: &mut World,
    a: &Supervised,
    b: &Supervised,
) -> Result<Duration, FaultError> {
    world
        .proxy
        .wait_registered(
            &[("waf-a", a.pid(), 2), ("waf-b", b.pid(), 2)],
            REGISTER_PATIENCE,
        )
        .await
}
