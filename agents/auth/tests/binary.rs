//! The real `sentinel-auth-agent` process against a real listener that requires a
//! registration token: it registers with the token from `--auth-token-env`, answers 401 or
//! passes the identity, keeps every secret out of its log, and on SIGTERM drains and exits 0.
//! With a wrong registration token it reports the refusal and keeps its distance.
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

use std::time::Duration;

use sentinel_agent_sdk::protocol::{Action, Decision, HeaderOp};
use sentinel_agent_testkit::{
    request, AgentProcess, AgentReply, LogicalAgent, TestProxy, TokenRule, TokenSource,
};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_sentinel-auth-agent");
const WAIT: Duration = Duration::from_secs(10);
const REGISTRATION_TOKEN: &str = "reg-token-5e8a0c";
const ALICE: &str = "alice-token-91b7";

async fn proxy() -> TestProxy {
    TestProxy::builder()
        .logical(LogicalAgent::new("auth", &["auth-*"]))
        .listener(|config| {
            config.require_auth = true;
            config.tokens =
                vec![
                    TokenRule::load("auth-*", &TokenSource::Value(REGISTRATION_TOKEN.into()))
                        .unwrap(),
                ];
        })
        .start()
        .await
}

async fn decide(proxy: &TestProxy, headers: &[(&str, &str)]) -> Decision {
    match proxy
        .send("auth", request("GET", "/orders", headers), WAIT)
        .await
    {
        Ok(AgentReply::Decision(decision)) => decision,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn registers_with_its_token_and_authenticates_requests() {
    let proxy = proxy().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.json");
    std::fs::write(
        &tokens,
        json!([{"user": "alice", "bearer": ALICE}]).to_string(),
    )
    .unwrap();
    let tcp = proxy.tcp_addr();
    let mut agent = AgentProcess::dial(
        BIN,
        &tcp,
        "auth-1",
        &[
            "--auth-token-env",
            "AUTH_AGENT_TEST_TOKEN",
            "--connections",
            "1",
            "--tokens",
            tokens.to_str().unwrap(),
        ],
        &[
            ("AUTH_AGENT_TEST_TOKEN", REGISTRATION_TOKEN),
            ("RUST_LOG", "debug"),
        ],
    );
    proxy.wait_for_connections(1).await;

    let bearer = format!("Bearer {ALICE}");
    let ok = decide(
        &proxy,
        &[("authorization", &bearer), ("x-auth-user", "root")],
    )
    .await;
    assert_eq!(ok.action, Action::Allow);
    assert_eq!(
        ok.request_headers,
        [HeaderOp::Set {
            name: "x-auth-user".into(),
            value: "alice".into()
        }]
    );
    let refused = decide(&proxy, &[("authorization", "Bearer guess")]).await;
    assert!(
        matches!(refused.action, Action::Block { status: 401, .. }),
        "{refused:?}"
    );
    let refused = decide(&proxy, &[]).await;
    assert!(
        matches!(refused.action, Action::Block { status: 401, .. }),
        "{refused:?}"
    );

    agent.wait_for_log("request authenticated").await;
    let status = agent.terminate(WAIT).await;
    assert!(status.success(), "{status:?}");
    proxy.wait_for_connections(0).await;
    // The whole log, from start to exit, at debug level.
    let log = agent.log();
    assert!(log.contains("user=alice"), "{log}");
    assert!(log.contains("connection closed for shutdown"), "{log}");
    for secret in [REGISTRATION_TOKEN, ALICE] {
        assert!(
            !log.contains(secret),
            "a secret leaked into the log:\n{log}"
        );
    }
}

#[tokio::test]
async fn a_wrong_registration_token_is_reported_without_being_logged() {
    let proxy = proxy().await;
    let unix = proxy.unix_addr();
    let mut agent = AgentProcess::dial(
        BIN,
        &unix,
        "auth-1",
        &["--auth-token-env", "AUTH_AGENT_TEST_TOKEN"],
        &[
            ("AUTH_AGENT_TEST_TOKEN", "not-the-token-4d2f"),
            ("RUST_LOG", "trace"),
        ],
    );
    agent.wait_for_log("refused for good").await;
    // The default maximum backoff is 30 s: within a second, one attempt per connection.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let refusals = proxy
        .stats()
        .rejected
        .get("auth_failed")
        .copied()
        .unwrap_or(0);
    assert!(
        (1..=4).contains(&refusals),
        "{refusals} refusals from 4 connections"
    );
    assert_eq!(proxy.connection_count(), 0);
    let status = agent.terminate(WAIT).await;
    assert!(status.success(), "{status:?}");
    let log = agent.log();
    assert!(log.contains("auth_failed"), "{log}");
    assert!(!log.contains("not-the-token-4d2f"), "{log}");
}

#[tokio::test]
async fn a_missing_token_variable_stops_the_agent_with_its_name() {
    let mut agent = AgentProcess::dial(
        BIN,
        "unix:/nonexistent.sock",
        "auth-1",
        &["--auth-token-env", "SURELY_UNSET_TOKEN_VAR_42"],
        &[],
    );
    let status = agent.wait(WAIT).await;
    let log = agent.log();
    assert!(!status.success());
    assert!(log.contains("SURELY_UNSET_TOKEN_VAR_42"), "{log}");
}
