//! The real `sentinel-waf-agent` process against the real listener: built-in and file rules
//! block with their id in the audit, bodies are inspected, a ConfigUpdate reloads the rules,
//! and SIGTERM drains and exits 0.
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

use std::time::Duration;

use sentinel_agent_sdk::protocol::{Action, Decision};
use sentinel_agent_testkit::{
    body_chunk, eventually, request, request_with_body, AgentProcess, AgentReply, LogicalAgent,
    TestProxy, PATIENCE,
};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_sentinel-waf-agent");
const WAIT: Duration = Duration::from_secs(10);

async fn decide(proxy: &TestProxy, uri: &str) -> Decision {
    match proxy.send("waf", request("GET", uri, &[]), WAIT).await {
        Ok(AgentReply::Decision(decision)) => decision,
        other => panic!("{uri}: {other:?}"),
    }
}

fn blocked_by(decision: &Decision) -> Option<&str> {
    match decision.action {
        Action::Block { status: 403, .. } => {
            decision.audit.as_ref().map(|a| a.rule_ids[0].as_str())
        }
        Action::Allow => None,
        _ => panic!("{decision:?}"),
    }
}

#[tokio::test]
async fn blocks_by_rule_inspects_bodies_and_reloads_on_config_update() {
    let proxy = TestProxy::builder()
        .logical(
            LogicalAgent::new("waf", &["waf-*"]).with_config(json!({"rules_version": "3.4.0"})),
        )
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"[{"id": "custom-1", "pattern": "(?i)^/forbidden", "targets": ["path"], "tags": ["custom"]}]"#,
    )
    .unwrap();
    let unix = proxy.unix_addr();
    let mut agent = AgentProcess::dial(
        BIN,
        &unix,
        "waf-1",
        &["--connections", "2", "--rules", rules.to_str().unwrap()],
        &[],
    );
    proxy.wait_for_connections(2).await;

    let sqli = decide(&proxy, "/items?id=1%20UNION%20SELECT%20secret").await;
    assert_eq!(blocked_by(&sqli), Some("sqli-union-select"));
    assert_eq!(sqli.audit.as_ref().unwrap().tags, ["sqli"]);
    assert_eq!(
        blocked_by(&decide(&proxy, "/Forbidden/zone").await),
        Some("custom-1")
    );
    assert_eq!(blocked_by(&decide(&proxy, "/items?id=7").await), None);

    let mut upload = proxy.pool.begin("waf").unwrap();
    let headers = upload
        .send(request_with_body("POST", "/comment", &[]), WAIT)
        .await
        .unwrap();
    assert!(
        matches!(&headers, AgentReply::Decision(d) if d.action == Action::Continue),
        "{headers:?}"
    );
    let body = upload
        .send(body_chunk(0, b"msg=<script>x()</script>", true), WAIT)
        .await
        .unwrap();
    let AgentReply::Decision(body) = body else {
        panic!("{body:?}")
    };
    assert_eq!(blocked_by(&body), Some("xss-script-tag"));
    drop(upload);

    assert_eq!(
        proxy.push_config(
            "waf",
            json!({"default_rules": false, "rules": [
                {"id": "pushed-1", "pattern": "blocked-by-push"}
            ]})
        ),
        2
    );
    eventually("the pushed rules to take effect", PATIENCE, || async {
        blocked_by(&decide(&proxy, "/blocked-by-push").await) == Some("pushed-1")
    })
    .await;
    // The pushed set has no built-in rules: the SQL injection now passes, on every connection.
    for _ in 0..4 {
        assert_eq!(
            blocked_by(&decide(&proxy, "/items?id=1%20UNION%20SELECT%20secret").await),
            None
        );
    }
    agent.wait_for_log("rules reloaded").await;

    let status = agent.terminate(WAIT).await;
    assert!(status.success(), "{status:?}");
    proxy.wait_for_connections(0).await;
}

#[tokio::test]
async fn a_broken_rules_file_stops_the_agent_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, r#"[{"id": "bad", "pattern": "(unclosed"}]"#).unwrap();
    let mut agent = AgentProcess::dial(
        BIN,
        "unix:/nonexistent.sock",
        "waf-1",
        &["--rules", rules.to_str().unwrap()],
        &[],
    );
    let status = agent.wait(WAIT).await;
    let log = agent.log();
    assert!(!status.success());
    assert!(log.contains("rule \"bad\": invalid pattern"), "{log}");
}
