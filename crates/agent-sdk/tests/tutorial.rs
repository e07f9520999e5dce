//! The tutorial's agent (examples/admin_gate.rs, shown in docs/writing-an-agent.md) does what
//! the tutorial says, against the real listener.

#[allow(dead_code)]
#[path = "../examples/admin_gate.rs"]
mod admin_gate;

use std::time::Duration;

use sentinel_agent_sdk::protocol::{Action, HeaderOp, RequestHeaders};
use sentinel_agent_sdk::{CancellationToken, Runner, RunnerConfig};
use sentinel_agent_testkit::{AgentReply, Event, TestProxy};

fn from(client: &str, uri: &str) -> Event {
    Event::RequestHeaders(RequestHeaders {
        request_id: 0,
        method: "GET".into(),
        uri: uri.into(),
        version: "HTTP/1.1".into(),
        headers: vec![],
        client_addr: client.into(),
        route: "default".into(),
        has_body: false,
    })
}

#[tokio::test]
async fn the_tutorial_agent_guards_admin() {
    let proxy = TestProxy::start().await;
    let mut config = RunnerConfig::new("admin-gate-1");
    config.proxies.push(proxy.unix_addr().parse().unwrap());
    let shutdown = CancellationToken::new();
    let runner = Runner::new(admin_gate::AdminGate, config).unwrap();
    let task = tokio::spawn(runner.run(shutdown.clone()));
    proxy.wait_for_connections(4).await;

    let wait = Duration::from_secs(10);
    let outside = proxy
        .send("agents", from("203.0.113.5:1000", "/admin/users"), wait)
        .await;
    let Ok(AgentReply::Decision(blocked)) = outside else {
        panic!("{outside:?}")
    };
    assert!(
        matches!(blocked.action, Action::Block { status: 403, .. }),
        "{blocked:?}"
    );
    assert_eq!(blocked.audit.unwrap().rule_ids, ["admin-gate"]);

    for (client, uri) in [
        ("10.1.2.3:1000", "/admin/users"),
        ("203.0.113.5:1000", "/shop"),
    ] {
        let reply = proxy.send("agents", from(client, uri), wait).await;
        let Ok(AgentReply::Decision(allowed)) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(allowed.action, Action::Allow);
        assert_eq!(
            allowed.request_headers,
            [HeaderOp::Set {
                name: "x-admin-gate".into(),
                value: "passed".into()
            }]
        );
    }
    shutdown.cancel();
    task.await.unwrap();
    proxy.wait_for_connections(0).await;
}
