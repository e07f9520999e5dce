//! `soak`: steady load for a configurable duration while the agents reconnect continually
//! (every cycle one of two WAF processes is SIGKILLed and started again). The proxy's
//! resident memory and open descriptors are sampled at the end of every cycle, when the
//! replaced agent has registered again, so every sample is taken in the same state. Growth is
//! the last sample minus the first one after the warm-up; it must stay under
//! [`RSS_GROWTH_LIMIT`] and [`FD_GROWTH_LIMIT`].

use std::time::{Duration, Instant};

use crate::error::FaultError;
use crate::load::{Load, LoadSpec};
use crate::report::{mib, seconds, Report};
use crate::scenarios::{hold, waf_settings, Harness, REGISTER_PATIENCE, WAF_PREFIX};
use sentinel_test_support::process::Supervised;

/// Largest accepted growth of the proxy's resident memory after the warm-up.
pub const RSS_GROWTH_LIMIT: u64 = 4 * 1024 * 1024;

/// Largest accepted growth of the proxy's open descriptors after the warm-up. The count moves
/// by a few as pooled client and upstream keep-alive connections are replaced; a leak per
/// agent connection would add two per cycle (dozens per minute), one per request thousands.
pub const FD_GROWTH_LIMIT: u64 = 16;

/// At most this many samples are printed (evenly spaced); all are used.
const SAMPLES_SHOWN: usize = 12;

/// One reconnect cycle: kill, restart, register, pause.
const CYCLE_PAUSE: Duration = Duration::from_secs(2);

/// One sample at the end of a cycle.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss: u64,
    fds: u64,
}

/// Runs the scenario for `duration`.
pub async fn run(harness: &Harness, duration: Duration) -> Result<Report, FaultError> {
    let mut world = harness.world(&waf_settings()).await?;
    let mut agents: Vec<Supervised> = vec![
        harness.waf(&world, "waf-a", 2)?,
        harness.waf(&world, "waf-b", 2)?,
    ];
    world
        .proxy
        .wait_registered(
            &[("waf-a", agents[0].pid(), 2), ("waf-b", agents[1].pid(), 2)],
            REGISTER_PATIENCE,
        )
        .await?;
    let mut spec = LoadSpec::steady(WAF_PREFIX, duration + Duration::from_secs(60));
    spec.max_requests = 50_000_000;
    let load = Load::start(
        spec,
        world.proxy.addresses().http,
        "steady load, agents reconnecting",
    );
    let warm_up = (duration / 5)
        .max(Duration::from_secs(10))
        .min(duration / 2);
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut cycles = 0usize;
    let mut slowest_registration = Duration::ZERO;
    while started.elapsed() < duration {
        let agent = &mut agents[cycles % 2];
        agent.kill().await?;
        agent.respawn()?;
        let took = world
            .proxy
            .wait_registered(&[(agent.name(), agent.pid(), 2)], REGISTER_PATIENCE)
            .await?;
        slowest_registration = slowest_registration.max(took);
        cycles += 1;
        hold(CYCLE_PAUSE).await;
        let (rss, fds) = world.proxy.resources()?;
        samples.push(Sample {
            at: started.elapsed(),
            rss,
            fds,
        });
    }
    let result = load.finish().await;

    let mut report = Report::new("soak");
    report.record_load(&result);
    report.fact("duration", seconds(started.elapsed()));
    report.fact("agent kill/reconnect cycles", cycles.to_string());
    report.fact("slowest re-registration", seconds(slowest_registration));
    let step = samples.len().div_ceil(SAMPLES_SHOWN).max(1);
    report.fact(
        format!("samples, one in {step} (s: RSS MiB / fds)"),
        samples
            .iter()
            .step_by(step)
            .chain(samples.last().filter(|_| (samples.len() - 1) % step != 0))
            .map(|s| {
                format!(
                    "{:.0}: {:.1}/{}",
                    s.at.as_secs_f64(),
                    s.rss as f64 / 1048576.0,
                    s.fds
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    let after_warm_up: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm_up).collect();
    match (after_warm_up.first(), after_warm_up.last()) {
        (Some(first), Some(last)) if after_warm_up.len() >= 2 => {
            let rss_growth = last.rss as i64 - first.rss as i64;
            let fd_growth = last.fds as i64 - first.fds as i64;
            let window = format!(
                "from {:.0} s to {:.0} s",
                first.at.as_secs_f64(),
                last.at.as_secs_f64()
            );
            report.fact(
                format!("RSS growth {window}"),
                format!(
                    "{} ({:.1} → {:.1} MiB)",
                    mib(rss_growth),
                    first.rss as f64 / 1048576.0,
                    last.rss as f64 / 1048576.0
                ),
            );
            report.fact(
                format!("fd growth {window}"),
                format!("{fd_growth:+} ({} → {})", first.fds, last.fds),
            );
            report.check(
                format!(
                    "RSS growth after warm-up ≤ {}",
                    mib(RSS_GROWTH_LIMIT as i64)
                ),
                rss_growth <= RSS_GROWTH_LIMIT as i64,
                mib(rss_growth),
            );
            report.check(
                format!("fd growth after warm-up ≤ {FD_GROWTH_LIMIT}"),
                fd_growth <= FD_GROWTH_LIMIT as i64,
                format!("{fd_growth:+}"),
            );
        }
        _ => report.check(
            "at least two samples after the warm-up",
            false,
            format!(
                "{} samples, warm-up {}",
                after_warm_up.len(),
                seconds(warm_up)
            ),
        ),
    }
    let t = &report.phases[0].1;
    let (sent, failed) = (t.sent, t.failed());
    report.fact(
        "failed requests (caught on a killed agent and not recovered by the retry)",
        format!("{failed} of {sent}"),
    );
    report.check(
        "requests keep being served: ≤ 0.1 % fail",
        sent > 0 && failed * 1000 <= sent,
        format!("{failed} of {sent}"),
    );
    drop(agents);
    Ok(world.finish(report).await)
}
