//! Serving requests against the real pool: events of one connection run concurrently,
//! Cancel and CancelAll stop the running handlers, per-request context survives between body
//! chunks, and a panicking handler becomes a RequestError without hurting the connection.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use sentinel_agent_sdk::protocol::Action;
use sentinel_agent_testkit::{
    body_chunk, eventually, request, request_with_body, AgentReply, DispatchError, TestProxy,
    PATIENCE,
};

fn is_allow(reply: &Result<AgentReply, DispatchError>) -> bool {
    matches!(reply, Ok(AgentReply::Decision(d)) if d.action == Action::Allow)
}

#[tokio::test]
async fn events_on_one_connection_are_processed_concurrently() {
    let proxy = TestProxy::start().await;
    let mut config = fast_config("waf-1", &[proxy.unix_addr()]);
    config.max_concurrent_requests = 8;
    let running = run(Probe::default(), config);
    proxy.wait_for_connections(1).await;
    let probe = running.agent.clone();

    let mut calls = Vec::new();
    for _ in 0..5 {
        let mut request = proxy.pool.begin("agents").unwrap();
        calls.push(tokio::spawn(async move {
            request
                .send(sentinel_agent_testkit::request("GET", "/slow", &[]), LONG)
                .await
        }));
    }
    // All five are inside the handler at the same time, on the single connection.
    eventually("5 handlers running at once", PATIENCE, || {
        std::future::ready(probe.in_flight() == 5)
    })
    .await;
    probe.open_gate();
    for call in calls {
        let reply = call.await.unwrap();
        assert!(is_allow(&reply), "{reply:?}");
    }
    assert_eq!(probe.max_in_flight.load(Ordering::SeqCst), 5);
    let snapshot = proxy.pool.snapshot();
    assert_eq!(snapshot[0].connections.len(), 1);
    assert_eq!(snapshot[0].connections[0].max_in_flight, 8);
}

#[tokio::test]
async fn cancel_stops_the_running_handler_and_frees_its_slot() {
    let proxy = TestProxy::start().await;
    let mut config = fast_config("waf-1", &[proxy.tcp_addr()]);
    config.max_concurrent_requests = 1;
    let running = run(Probe::default(), config);
    proxy.wait_for_connections(1).await;
    let probe = running.agent.clone();

    // The proxy times out after 300 ms and sends Cancel { reason: "timeout" }.
    let outcome = proxy
        .send(
            "agents",
            request("GET", "/stuck", &[]),
            Duration::from_millis(300),
        )
        .await;
    assert!(
        matches!(outcome, Err(DispatchError::Timeout { .. })),
        "{outcome:?}"
    );
    eventually("the stuck handler aborted", PATIENCE, || {
        std::future::ready(probe.aborted() == 1)
    })
    .await;
    eventually("on_cancel called", PATIENCE, || {
        std::future::ready(probe.cancels().len() == 1)
    })
    .await;
    let cancel = &probe.cancels()[0];
    assert_eq!(cancel.reason, "timeout");
    assert!(cancel.connection_id.starts_with("waf-1-conn-"));
    // The only slot (max_concurrent_requests = 1) is free again.
    let reply = proxy.send("agents", request("GET", "/", &[]), LONG).await;
    assert!(is_allow(&reply), "{reply:?}");
    assert_eq!(probe.in_flight(), 0);
}

#[tokio::test]
async fn cancel_all_stops_every_handler() {
    let proxy = TestProxy::start().await;
    let running = run(Probe::default(), fast_config("waf-1", &[proxy.unix_addr()]));
    proxy.wait_for_connections(1).await;
    let probe = running.agent.clone();
    let mut calls = Vec::new();
    for _ in 0..3 {
        let mut request = proxy.pool.begin("agents").unwrap();
        calls.push(tokio::spawn(async move {
            request
                .send(sentinel_agent_testkit::request("GET", "/stuck", &[]), LONG)
                .await
        }));
    }
    eventually("3 handlers running", PATIENCE, || {
        std::future::ready(probe.in_flight() == 3)
    })
    .await;
    proxy.pool.cancel_all("operator");
    for call in calls {
        let outcome = call.await.unwrap();
        assert!(
            matches!(outcome, Err(DispatchError::Cancelled(_))),
            "{outcome:?}"
        );
    }
    eventually("every handler aborted", PATIENCE, || {
        std::future::ready(probe.aborted() == 3)
    })
    .await;
    eventually("on_cancel for each", PATIENCE, || {
        std::future::ready(probe.cancels().len() == 3)
    })
    .await;
    assert!(probe.cancels().iter().all(|c| c.reason == "operator"));
    let reply = proxy.send("agents", request("GET", "/", &[]), LONG).await;
    assert!(is_allow(&reply), "the connection still serves: {reply:?}");
}

#[tokio::test]
async fn context_carries_state_across_body_chunks() {
    let proxy = TestProxy::start().await;
    let running = run(Probe::default(), fast_config("waf-1", &[proxy.unix_addr()]));
    proxy.wait_for_connections(1).await;
    for (parts, blocked) in [(["ev", "il"], true), (["go", "od"], false)] {
        let mut request = proxy.pool.begin("agents").unwrap();
        let headers = request
            .send(request_with_body("POST", "/upload", &[]), LONG)
            .await
            .unwrap();
        assert!(
            matches!(&headers, AgentReply::Decision(d) if d.action == Action::Continue),
            "{headers:?}"
        );
        let first = request
            .send(body_chunk(0, parts[0].as_bytes(), false), LONG)
            .await
            .unwrap();
        assert!(matches!(&first, AgentReply::Decision(d) if d.action == Action::Continue));
        let last = request
            .send(body_chunk(1, parts[1].as_bytes(), true), LONG)
            .await
            .unwrap();
        let AgentReply::Decision(decision) = last else {
            panic!("{last:?}")
        };
        if blocked {
            assert!(
                matches!(decision.action, Action::Block { status: 403, .. }),
                "{decision:?}"
            );
            let audit = decision.audit.expect("audit");
            assert_eq!(audit.rule_ids, ["evil-body"]);
            assert_eq!(audit.reason.as_deref(), Some("evil in the body of /upload"));
        } else {
            assert_eq!(decision.action, Action::Allow);
        }
    }
    drop(running);
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_request_error() {
    let proxy = TestProxy::start().await;
    let _running = run(Probe::default(), fast_config("waf-1", &[proxy.unix_addr()]));
    proxy.wait_for_connections(1).await;
    let reply = proxy
        .send("agents", request("GET", "/panic", &[]), LONG)
        .await;
    assert!(
        matches!(&reply, Ok(AgentReply::Error(e)) if e.code == "internal"),
        "{reply:?}"
    );
    let reply = proxy.send("agents", request("GET", "/", &[]), LONG).await;
    assert!(is_allow(&reply), "{reply:?}");
    assert_eq!(proxy.connection_count(), 1, "the connection survived");
}
