//! `restart`: the proxy restarted under load, once gracefully (SIGTERM) and once as a crash
//! (SIGKILL), each time started again on the same configuration. While it is down clients
//! get connection refused (or reset), and until the agents have dialled in again requests
//! fail closed (503); the agents reconnect by themselves (SDK backoff) and serving resumes.
//! Nothing reaches the upstream that the WAF must block.

use std::time::{Duration, Instant};

use crate::error::FaultError;
use crate::load::LoadResult;
use crate::report::{seconds, Report};
use crate::scenarios::{hold, waf_settings, Harness, World, REGISTER_PATIENCE};

const STEADY: &str = "steady, 2 agent processes";
const AFTER: &str = "after both restarts";

/// Agents use the SDK's default backoff (first retry within 1 s, ceiling doubling to 30 s):
/// re-registration after a short outage takes a few seconds at most, but allow the ceiling.
const REREGISTER_PATIENCE: Duration = Duration::from_secs(45);

struct Restart {
    name: &'static str,
    signal: i32,
    started: Instant,
    healthy_after: Duration,
    registered_at: Instant,
}

/// Runs the scenario.
pub async fn run(harness: &Harness) -> Result<Report, FaultError> {
    let mut world = harness.world(&waf_settings()).await?;
    let a = harness.waf(&world, "waf-a", 2)?;
    let b = harness.waf(&world, "waf-b", 2)?;
    let agents = [("waf-a", a.pid(), 2), ("waf-b", b.pid(), 2)];
    world
        .proxy
        .wait_registered(&agents, REGISTER_PATIENCE)
        .await?;
    let load_started = Instant::now();
    let load = world.steady_load(STEADY);
    let phase_hold = harness.hold(Duration::from_secs(5), Duration::from_secs(2));
    hold(phase_hold).await;

    let mut restarts = Vec::new();
    for (name, signal) in [
        ("proxy SIGTERM, started again", libc::SIGTERM),
        ("proxy SIGKILL, started again", libc::SIGKILL),
    ] {
        load.phase(name);
        restarts.push(restart(&mut world, &agents, name, signal).await?);
        hold(phase_hold).await;
    }
    load.phase(AFTER);
    hold(phase_hold).await;
    let result = load.finish().await;

    let mut report = Report::new("restart");
    report.record_load(&result);
    for r in &restarts {
        describe(&mut report, &result, r);
    }
    // A request sent just before the first signal may still be on its way when the proxy
    // closes its keep-alive connections; it counts in the steady phase but not here.
    let first_signal = restarts.first().map_or_else(Instant::now, |r| r.started);
    report.check_steady(
        &result,
        STEADY,
        load_started,
        first_signal,
        "the first signal",
    );
    for r in &restarts {
        let phase = result.tally_of(r.name);
        report.check(
            format!("{}: failures are refused/reset or 503 only", r.name),
            phase.timeout == 0 && phase.other == 0,
            format!("{} timeouts, {} other", phase.timeout, phase.other),
        );
        let next = Instant::now();
        let late = result.failures_between(r.registered_at, next.min(r.registered_at + phase_hold));
        report.check(
            format!("{}: nothing fails once the agents are back", r.name),
            late == 0,
            format!("{late} failed"),
        );
    }
    let after = result.tally_of(AFTER);
    report.check(
        "after: no request fails",
        after.sent > 0 && after.failed() == 0,
        format!("{} of {} failed", after.failed(), after.sent),
    );
    drop((a, b));
    Ok(world.finish(report).await)
}

async fn restart(
    world: &mut World,
    agents: &[(&str, u32, usize)],
    name: &'static str,
    signal: i32,
) -> Result<Restart, FaultError> {
    let started = Instant::now();
    let healthy_after = world.proxy.restart(signal).await?;
    world
        .proxy
        .wait_registered(agents, REREGISTER_PATIENCE)
        .await?;
    Ok(Restart {
        name,
        signal,
        started,
        healthy_after,
        registered_at: Instant::now(),
    })
}

fn describe(report: &mut Report, result: &LoadResult, r: &Restart) {
    let signal = if r.signal == libc::SIGKILL {
        "SIGKILL"
    } else {
        "SIGTERM"
    };
    report.fact(
        format!("{signal}: proxy healthy again after"),
        seconds(r.healthy_after),
    );
    report.fact(
        format!("{signal}: all agents registered again after"),
        seconds(r.registered_at - r.started),
    );
    report.fact(
        format!("{signal}: first allowed request after"),
        result
            .first_allowed_after(r.started)
            .map_or("never".into(), seconds),
    );
}
