//! The real `sentinel-echo-agent` process against the real listener: it registers the number
//! of connections asked for, marks requests and responses with its id, and on SIGTERM drains
//! and exits 0; bad flags exit non-zero with a clear message.

use std::time::Duration;

use sentinel_agent_sdk::protocol::{Action, HeaderOp};
use sentinel_agent_testkit::pki::TestCa;
use sentinel_agent_testkit::{request, AgentProcess, AgentReply, ReverseTls, TestProxy, TlsFiles};

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
    let mut agent = AgentProcess::dial(BIN, &unix, "echo-1", &["--connections", "2"], &[]);
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
async fn a_tls_address_without_a_ca_bundle_is_refused_with_a_clear_message() {
    let mut agent = AgentProcess::dial(BIN, "tls:127.0.0.1:9443", "echo-1", &[], &[]);
    let status = agent.wait(Duration::from_secs(10)).await;
    let log = agent.log();
    assert!(!status.success());
    assert!(log.contains("pass --tls-ca FILE"), "{log}");
}

#[tokio::test]
async fn registers_over_mutual_tls_with_the_tls_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server_ca = TestCa::new("echo test server CA");
    let agent_ca = TestCa::new("echo test agent CA");
    let (cert_file, key_file) = server_ca
        .server(&["proxy.test"])
        .write(dir.path(), "server");
    let tls = ReverseTls::load(TlsFiles {
        cert_file,
        key_file,
        client_ca_file: Some(agent_ca.write(dir.path(), "agent-ca")),
    })
    .expect("test certificates load");
    let proxy = TestProxy::builder()
        .listener(move |c| c.tls = Some(tls.clone()))
        .start()
        .await;
    let ca = server_ca.write(dir.path(), "server-ca");
    let (cert, key) = agent_ca
        .client(&["echo-1"], None)
        .write(dir.path(), "echo-1");
    let path = |p: &std::path::Path| p.display().to_string();
    let mut agent = AgentProcess::dial(
        BIN,
        &proxy.tls_addr(),
        "echo-1",
        &[
            "--connections",
            "1",
            "--tls-ca",
            &path(&ca),
            "--tls-cert",
            &path(&cert),
            "--tls-key",
            &path(&key),
            "--tls-server-name",
            "proxy.test",
        ],
        &[],
    );
    proxy.wait_for_connections(1).await;
    assert_eq!(
        proxy.pool.snapshot()[0].connections[0].transport.as_str(),
        "tls"
    );
    let reply = proxy
        .send("agents", request("GET", "/", &[]), Duration::from_secs(10))
        .await
        .expect("a reply over TLS");
    let AgentReply::Decision(decision) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(decision.request_headers, [set("x-echo-agent", "echo-1")]);
    let status = agent.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}
