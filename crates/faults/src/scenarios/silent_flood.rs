//! `silent-flood`: 1000 connections to the reverse listener that never send a byte, held
//! open while a real agent process registers. The agent's registration time is measured
//! without the flood and under it, in the same run; it must stay prompt. Requests keep being
//! served by the agent already connected, and once the handshake timeout has passed the proxy
//! has closed every silent connection.

use std::time::{Duration, Instant};

use tokio::net::UnixStream;

use crate::error::FaultError;
use crate::raw::RawConnection;
use crate::report::{seconds, Report};
use crate::scenarios::{hold, waf_settings, Harness, REGISTER_PATIENCE};
use sentinel_test_support::prometheus;

/// Silent connections opened.
pub const SILENT_CONNECTIONS: usize = 1000;

/// A registration under the flood may take this long at most ("promptly").
const PROMPT: Duration = Duration::from_secs(3);

const BASELINE: &str = "no flood";
const FLOOD: &str = "1000 silent connections";
const AFTER: &str = "after the handshake timeout";

/// Runs the scenario.
pub async fn run(harness: &Harness) -> Result<Report, FaultError> {
    let handshake_timeout = harness.hold(Duration::from_secs(10), Duration::from_secs(6));
    let mut settings = waf_settings();
    settings.handshake_timeout = handshake_timeout;
    let mut world = harness.world(&settings).await?;
    let serving = harness.waf(&world, "waf-a", 2)?;
    world
        .proxy
        .wait_registered(&[("waf-a", serving.pid(), 2)], REGISTER_PATIENCE)
        .await?;
    let load = world.steady_load(BASELINE);

    // Baseline: a second agent process registers and leaves, no flood.
    let mut probe = harness.waf(&world, "waf-b", 2)?;
    let baseline = world
        .proxy
        .wait_registered(&[("waf-b", probe.pid(), 2)], REGISTER_PATIENCE)
        .await?;
    probe.kill().await?;
    world
        .proxy
        .wait_unregistered("waf-b", REGISTER_PATIENCE)
        .await?;
    hold(Duration::from_secs(2)).await;

    load.phase(FLOOD);
    let flood_started = Instant::now();
    let socket = world.proxy.addresses().socket.clone();
    let mut silent = Vec::with_capacity(SILENT_CONNECTIONS);
    for _ in 0..SILENT_CONNECTIONS {
        let stream = UnixStream::connect(&socket)
            .await
            .map_err(|e| FaultError::io("opening a silent connection", e))?;
        silent.push(stream);
    }
    let opened = flood_started.elapsed();
    // The agent must register while the proxy holds every silent connection as a pending
    // handshake, not while they still wait in the accept queue.
    let accept_deadline = Instant::now() + Duration::from_secs(10);
    let all_held = |pending: &PendingRead| {
        pending
            .as_ref()
            .is_ok_and(|&n| n >= SILENT_CONNECTIONS as u64)
    };
    let mut pending = pending_handshakes(&world).await;
    while !all_held(&pending) && Instant::now() < accept_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        pending = pending_handshakes(&world).await;
    }
    let all_pending = flood_started.elapsed();
    probe.respawn()?;
    let under_flood = world
        .proxy
        .wait_registered(&[("waf-b", probe.pid(), 2)], REGISTER_PATIENCE)
        .await?;
    // Hold the flood until the proxy times the silent connections out.
    let deadline = flood_started + handshake_timeout + Duration::from_secs(10);
    let closed = count_closed(silent, deadline).await;
    let all_closed_after = flood_started.elapsed();
    load.phase(AFTER);
    hold(harness.hold(Duration::from_secs(3), Duration::from_secs(2))).await;
    let pending_after = pending_handshakes(&world).await;
    let result = load.finish().await;

    let mut report = Report::new("silent-flood");
    report.record_load(&result);
    report.fact(
        format!("{SILENT_CONNECTIONS} silent connections opened in"),
        seconds(opened),
    );
    report.fact(
        "pending handshakes when the agent started (proxy metric) / after",
        format!("{} / {}", describe(&pending), seconds(all_pending)),
    );
    report.fact(
        "agent registration (2 connections), no flood",
        seconds(baseline),
    );
    report.fact(
        "agent registration (2 connections), under the flood",
        seconds(under_flood),
    );
    report.fact(
        "silent connections closed by the proxy / time from the flood's start",
        format!("{closed} / {}", seconds(all_closed_after)),
    );
    report.check(
        "the proxy holds every silent connection as a pending handshake",
        all_held(&pending),
        format!("{} pending", describe(&pending)),
    );
    report.check(
        format!(
            "a real agent registers promptly under the flood (≤ {})",
            seconds(PROMPT)
        ),
        under_flood <= PROMPT,
        seconds(under_flood),
    );
    for phase in [BASELINE, FLOOD, AFTER] {
        let t = result.tally_of(phase);
        report.check(
            format!("{phase}: no request fails"),
            t.sent > 0 && t.failed() == 0,
            format!("{} of {} failed", t.failed(), t.sent),
        );
    }
    report.check(
        "every silent connection is closed by the proxy after the handshake timeout",
        closed == SILENT_CONNECTIONS,
        format!("{closed} of {SILENT_CONNECTIONS}"),
    );
    report.check(
        "no handshake left pending afterwards",
        matches!(pending_after, Ok(0)),
        format!("{} pending", describe(&pending_after)),
    );
    drop((serving, probe));
    Ok(world.finish(report).await)
}

/// The proxy's `sentinel_agent_handshakes_pending` gauge, or why it could not be read: a
/// failed read (or a page without the gauge) must fail the checks, never count as 0.
type PendingRead = Result<u64, String>;

async fn pending_handshakes(world: &crate::scenarios::World) -> PendingRead {
    const GAUGE: &str = "sentinel_agent_handshakes_pending";
    let metrics = world
        .proxy
        .metrics()
        .await
        .map_err(|e| format!("reading /metrics failed: {e}"))?;
    if !prometheus::parse(&metrics).iter().any(|s| s.name == GAUGE) {
        return Err(format!("/metrics has no {GAUGE}"));
    }
    Ok(prometheus::metric_sum(&metrics, GAUGE, &[]) as u64)
}

fn describe(read: &PendingRead) -> String {
    match read {
        Ok(n) => n.to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// How many of `streams` the proxy closed (EOF or reset) before `deadline`.
async fn count_closed(streams: Vec<UnixStream>, deadline: Instant) -> usize {
    let waits = streams.into_iter().map(|stream| async move {
        let mut connection = RawConnection::from_stream(stream);
        let left = deadline.saturating_duration_since(Instant::now());
        connection.read_until_closed(left).await.0
    });
    futures::future::join_all(waits)
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count()
}
