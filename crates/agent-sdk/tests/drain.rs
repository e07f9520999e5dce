//! Draining in both directions against the real pool: a proxy GoAway lets in-flight work
//! finish before the agent reconnects; the agent's own shutdown sends GoAway, finishes
//! in-flight work, and is bounded by its grace period when a handler never ends.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sentinel_agent_sdk::protocol::Action;
use sentinel_agent_sdk::{Disconnect, RunnerEvent};
use sentinel_agent_testkit::{eventually, request, AgentReply, DispatchError, TestProxy, PATIENCE};

#[tokio::test]
async fn proxy_go_away_lets_in_flight_finish_then_the_agent_reconnects() {
    let proxy = TestProxy::start().await;
    let mut running = run(Probe::default(), fast_config("waf-1", &[proxy.unix_addr()]));
    proxy.wait_for_connections(1).await;
    let probe = running.agent.clone();
    let old_id = proxy.pool.snapshot()[0].connections[0].assigned_id.clone();

    let mut slow = proxy.pool.begin("agents").unwrap();
    let call = tokio::spawn(async move { slow.send(request("GET", "/slow", &[]), LONG).await });
    eventually("the slow request in the handler", PATIENCE, || {
        std::future::ready(probe.in_flight() == 1)
    })
    .await;

    let pool = proxy.pool.clone();
    let drain_id = old_id.clone();
    let drain = tokio::spawn(async move { pool.drain(&drain_id, Duration::from_secs(5)).await });
    // The proxy now waits for the in-flight request; the agent still answers it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !drain.is_finished(),
        "the drain waits for the in-flight request"
    );
    probe.open_gate();
    let reply = call.await.unwrap();
    assert!(
        matches!(&reply, Ok(AgentReply::Decision(d)) if d.action == Action::Allow),
        "{reply:?}"
    );
    assert!(drain.await.unwrap());

    let (ended, _) = running.next_disconnect().await;
    assert!(
        matches!(&ended, RunnerEvent::Disconnected { reason: Disconnect::Drained, assigned_id, .. } if *assigned_id == old_id),
        "{ended:?}"
    );
    proxy.wait_for_connections(1).await;
    let new_id = proxy.pool.snapshot()[0].connections[0].assigned_id.clone();
    assert_ne!(new_id, old_id);
    assert_eq!(probe.aborted(), 0, "nothing was abandoned");
}

#[tokio::test]
async fn shutdown_sends_go_away_and_finishes_in_flight_work() {
    let proxy = TestProxy::start().await;
    let mut config = fast_config("waf-1", &[proxy.unix_addr(), proxy.tcp_addr()]);
    config.drain_grace = Duration::from_secs(10);
    let mut running = run(Probe::default(), config);
    proxy.wait_for_connections(2).await;
    let probe = running.agent.clone();

    let mut slow = proxy.pool.begin("agents").unwrap();
    let call = tokio::spawn(async move { slow.send(request("GET", "/slow", &[]), LONG).await });
    eventually("the slow request in the handler", PATIENCE, || {
        std::future::ready(probe.in_flight() == 1)
    })
    .await;

    running.shutdown.cancel();
    // The idle connection goes away at once; the busy one announces GoAway (the proxy starts
    // nothing new on it) and waits for its request.
    proxy.wait_for_connections(1).await;
    let pool = proxy.pool.clone();
    eventually("the busy connection draining", PATIENCE, || {
        std::future::ready({
            pool.snapshot()
                .iter()
                .flat_map(|a| a.connections.iter())
                .all(|c| c.draining)
        })
    })
    .await;
    assert!(matches!(
        proxy.pool.begin("agents"),
        Err(DispatchError::NoConnection(_))
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(proxy.connection_count(), 1);
    assert!(!running.task.is_finished());

    probe.open_gate();
    let reply = call.await.unwrap();
    assert!(
        matches!(&reply, Ok(AgentReply::Decision(d)) if d.action == Action::Allow),
        "{reply:?}"
    );
    let events = &mut running;
    for _ in 0..2 {
        let (ended, reason) = events.next_disconnect().await;
        assert!(matches!(reason, Disconnect::Shutdown), "{ended:?}");
    }
    proxy.wait_for_connections(0).await;
    assert_eq!(probe.aborted(), 0);
    running.stop_within(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_grace_period_bounds_shutdown_when_a_handler_never_ends() {
    let proxy = TestProxy::start().await;
    let mut config = fast_config("waf-1", &[proxy.unix_addr()]);
    let grace = Duration::from_millis(300);
    config.drain_grace = grace;
    let running = run(Probe::default(), config);
    proxy.wait_for_connections(1).await;
    let probe = running.agent.clone();

    let mut stuck = proxy.pool.begin("agents").unwrap();
    let call = tokio::spawn(async move { stuck.send(request("GET", "/stuck", &[]), LONG).await });
    eventually("the stuck handler running", PATIENCE, || {
        std::future::ready(probe.in_flight() == 1)
    })
    .await;

    let stopping = Instant::now();
    running.stop_within(Duration::from_secs(5)).await;
    assert!(
        stopping.elapsed() >= grace,
        "shutdown waited for the grace period"
    );
    eventually("the stuck handler stopped", PATIENCE, || {
        std::future::ready(probe.aborted() == 1)
    })
    .await;
    let outcome = call.await.unwrap();
    assert!(
        matches!(outcome, Err(DispatchError::ConnectionLost(_))),
        "{outcome:?}"
    );
    proxy.wait_for_connections(0).await;
}
