//! The real `sentinel-echo-agent` process against the real listener: it registers the number
//! of connections asked for, marks requests and responses with its id, and on SIGTERM drains
//! and exits 0; bad flags exit non-zero with a clear message.

use std::time::Duration;

use sentinel_agent_sdk::protocol::{Action, HeaderOp};
use sentinel_agent_testkit::{request, AgentProcess, AgentReply, TestProxy};

const BIN: &str = env!("CARGO_BIN_EXE_sentinel-echo-agent");

fn set(name: &str, value: &str) -> HeaderOp {
    HeaderOp::Set {
        name: name.into(),
        value: value.into(),
    }
}

#[tokio::test]
async fn marks_requests_and_drains_on_sigterm() {
    let proxy = TestProxy::start().await;
    let unix = proxy.unix_addr();
    let mut agent = AgentProcess::spawn(
        BIN,
        &[
            "--connect",
            &unix,
            "--agent-id",
            "echo-1",
            "--connections",
            "2",
        ],
        &[],
    );
    proxy.wait_for_connections(2).await;
    let reply = proxy
        .send(
            "agents",
            request("GET", "/hello", &[]),
            Duration::from_secs(10),
        )
        .await
        .expect("a reply");
    let AgentReply::Decision(decision) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(decision.action, Action::Allow);
    assert_eq!(decision.request_headers, [set("x-echo-agent", "echo-1")]);
    assert_eq!(decision.response_headers, [set("x-echo-agent", "echo-1")]);

    let status = agent.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    proxy.wait_for_connections(0).await;
}

#[tokio::test]
async fn a_tls_address_is_refused_with_a_clear_message() {
    let mut agent = AgentProcess::spawn(
        BIN,
        &["--connect", "tls:127.0.0.1:9443", "--agent-id", "echo-1"],
        &[],
    );
    let status = agent.wait(Duration::from_secs(10)).await;
    let log = agent.log();
    assert!(!status.success());
    assert!(log.contains("TLS is not supported yet"), "{log}");
}
