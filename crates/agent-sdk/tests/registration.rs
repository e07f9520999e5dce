//! Registration against the real listener: what the proxy sees of the agent (capabilities,
//! metadata, transports, encoding), pushed configuration at registration and on ConfigUpdate,
//! N connections per proxy kept up, and several proxies served at once.

mod common;

use std::time::Duration;

use common::*;
use sentinel_agent_sdk::protocol::{Action, HeaderOp};
use sentinel_agent_sdk::RunnerEvent;
use sentinel_agent_testkit::{request, AgentReply, LogicalAgent, TestProxy};
use serde_json::json;

fn waf_proxy() -> sentinel_agent_testkit::TestProxyBuilder {
    TestProxy::builder().logical(
        LogicalAgent::new("waf", &["waf-*"]).with_config(json!({"rules_version": "3.4.0"})),
    )
}

#[tokio::test]
async fn registers_over_unix_and_tcp_with_metadata_and_pushed_config() {
    let proxy = waf_proxy().start().await;
    let mut config = fast_config("waf-1", &[proxy.unix_addr(), proxy.tcp_addr()]);
    config.connections_per_proxy = 2;
    config.version = "2.0.0".into();
    config.metadata.insert("ruleset".into(), json!("crs-4"));
    let mut running = run(Probe::default(), config);
    proxy.wait_for_connections(4).await;

    let agents = proxy.pool.snapshot();
    assert_eq!(agents.len(), 1);
    let agent = &agents[0];
    assert_eq!(agent.agent_id, "waf-1");
    for key in ["hostname", "pid", "started_at"] {
        assert!(
            agent.metadata.contains_key(key),
            "metadata lacks {key}: {:?}",
            agent.metadata
        );
    }
    assert_eq!(agent.metadata["version"], "2.0.0");
    assert_eq!(agent.metadata["ruleset"], "crs-4");
    assert_eq!(agent.metadata["pid"], std::process::id());
    let mut transports: Vec<_> = agent
        .connections
        .iter()
        .map(|c| c.transport.as_str())
        .collect();
    transports.sort();
    assert_eq!(transports, ["tcp", "tcp", "uds", "uds"]);
    assert!(agent.connections.iter().all(|c| c.encoding == "msgpack"));
    assert!(agent.connections.iter().all(|c| c.max_in_flight == 100));

    // The pushed config reached on_config once, not once per connection.
    running.config_applied_then_unchanged(3).await;
    assert_eq!(running.agent.configs(), [json!({"rules_version": "3.4.0"})]);

    let reply = proxy
        .send("waf", request("GET", "/hello", &[]), LONG)
        .await
        .unwrap();
    let AgentReply::Decision(decision) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(decision.action, Action::Allow);
    assert!(
        matches!(&decision.request_headers[..], [HeaderOp::Set { name, value }]
            if name == "x-probe" && value.starts_with("waf-1-conn-")),
        "{:?}",
        decision.request_headers
    );
    running.stop_within(Duration::from_secs(5)).await;
    proxy.wait_for_connections(0).await;
}

#[tokio::test]
async fn config_updates_reach_on_config_once_per_change() {
    let proxy = waf_proxy().start().await;
    let mut config = fast_config("waf-1", &[proxy.unix_addr()]);
    config.connections_per_proxy = 3;
    let mut running = run(Probe::default(), config);
    proxy.wait_for_connections(3).await;
    let probe = running.agent.clone();
    // At registration: applied once, recognised as unchanged on the other two connections.
    running.config_applied_then_unchanged(2).await;
    assert_eq!(probe.configs(), [json!({"rules_version": "3.4.0"})]);

    // Each update reaches all three connections; it is applied once, the other two copies
    // are recognised as unchanged.
    assert_eq!(
        proxy.push_config("waf", json!({"rules_version": "3.5.0"})),
        3
    );
    running.config_applied_then_unchanged(2).await;
    // A refused config is reported and does not stop the agent.
    assert_eq!(proxy.push_config("waf", json!({"reject": true})), 3);
    let refused = running
        .next_event(|e| matches!(e, RunnerEvent::ConfigRejected { .. }))
        .await;
    assert!(format!("{refused:?}").contains("refuses"), "{refused:?}");
    for _ in 0..2 {
        running
            .next_event(|e| matches!(e, RunnerEvent::ConfigUnchanged))
            .await;
    }
    assert_eq!(
        probe.configs(),
        [
            json!({"rules_version": "3.4.0"}),
            json!({"rules_version": "3.5.0"}),
            json!({"reject": true})
        ]
    );
    assert!(proxy
        .send("waf", request("GET", "/", &[]), LONG)
        .await
        .is_ok());
}

#[tokio::test]
async fn keeps_n_connections_and_replaces_one_the_proxy_drains() {
    let proxy = TestProxy::start().await;
    let mut config = fast_config("echo-1", &[proxy.tcp_addr()]);
    config.connections_per_proxy = 3;
    let mut running = run(Probe::default(), config);
    proxy.wait_for_connections(3).await;
    for _ in 0..3 {
        running
            .next_event(|e| matches!(e, RunnerEvent::Registered { .. }))
            .await;
    }
    let victim = proxy.pool.snapshot()[0].connections[0].assigned_id.clone();
    assert!(proxy.pool.drain(&victim, Duration::from_secs(5)).await);
    let replacement = running
        .next_event(|e| matches!(e, RunnerEvent::Registered { .. }))
        .await;
    let RunnerEvent::Registered { assigned_id, .. } = replacement else {
        unreachable!()
    };
    assert_ne!(assigned_id, victim);
    proxy.wait_for_connections(3).await;
    let ids: Vec<String> = proxy.pool.snapshot()[0]
        .connections
        .iter()
        .map(|c| c.assigned_id.clone())
        .collect();
    assert!(!ids.contains(&victim), "{ids:?}");
}

#[tokio::test]
async fn one_agent_serves_several_proxies() {
    let first = TestProxy::start().await;
    let second = TestProxy::start().await;
    let mut config = fast_config("fleet-1", &[first.unix_addr(), second.tcp_addr()]);
    config.connections_per_proxy = 2;
    let _running = run(Probe::default(), config);
    first.wait_for_connections(2).await;
    second.wait_for_connections(2).await;
    for proxy in [&first, &second] {
        let reply = proxy.send("agents", request("GET", "/", &[]), LONG).await;
        assert!(matches!(reply, Ok(AgentReply::Decision(_))), "{reply:?}");
    }
}
