//! The auth agent's decisions on real requests through its Agent handler: bearer tokens and
//! API keys (in clear and hashed), 401 with `WWW-Authenticate`, identity spoofing, public
//! paths, and credentials replaced by pushed configuration.
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

use sentinel_agent_auth::{AuthAgent, AuthSettings};
use sentinel_agent_sdk::prelude::*;
use sentinel_agent_sdk::protocol::{Action, HeaderOp};
use sentinel_agent_testkit::request_headers;
use serde_json::json;

const ALICE: &str = "alice-token-3f9c";
const CI_KEY: &str = "ci-key-77aa";
// sha256("bob-token-0b1d")
const BOB_SHA256: &str = "163080f44c48cb2a90b38419a389d1d838e6a64d0ba5dfe7fffdc39b091c7252";

fn tokens_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("tokens.json");
    std::fs::write(
        &path,
        json!({"credentials": [
            {"user": "alice", "bearer": ALICE},
            {"user": "ci-bot", "api_key": CI_KEY},
        ]})
        .to_string(),
    )
    .unwrap();
    path
}

fn agent(dir: &tempfile::TempDir) -> AuthAgent {
    AuthAgent::new(AuthSettings {
        tokens_file: Some(tokens_file(dir)),
        public_paths: vec!["/health".into()],
        ..AuthSettings::default()
    })
    .unwrap()
}

fn request(uri: &str, headers: &[(&str, &str)]) -> RequestHeaders {
    RequestHeaders {
        request_id: 1,
        client_addr: "203.0.113.9:4000".into(),
        ..request_headers("GET", uri, headers)
    }
}

async fn decide(agent: &AuthAgent, uri: &str, headers: &[(&str, &str)]) -> Verdict {
    let mut ctx = RequestContext::new(1, "auth-1-conn-1");
    agent
        .on_request_headers(&request(uri, headers), &mut ctx)
        .await
}

fn identity(verdict: &Verdict) -> Option<&str> {
    assert!(verdict.is_allow(), "{verdict:?}");
    match verdict.request_header_ops() {
        [HeaderOp::Set { name, value }] if name == "x-auth-user" => Some(value),
        [HeaderOp::Remove { name }] if name == "x-auth-user" => None,
        other => panic!("unexpected header ops {other:?}"),
    }
}

fn assert_401(verdict: &Verdict, reason: &str) {
    match verdict.action() {
        Some(Action::Block {
            status: 401,
            headers,
            ..
        }) => {
            assert_eq!(
                headers,
                &[(
                    "www-authenticate".to_string(),
                    "Bearer realm=\"sentinel\"".to_string()
                )]
            );
        }
        other => panic!("expected 401, got {other:?}"),
    }
    assert_eq!(verdict.audit().reason.as_deref(), Some(reason));
    let audit = format!("{:?}", verdict.audit());
    assert!(!audit.contains(ALICE) && !audit.contains(CI_KEY), "{audit}");
}

#[tokio::test]
async fn known_credentials_pass_with_the_identity_set() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(&dir);
    let bearer = format!("Bearer {ALICE}");
    let verdict = decide(&agent, "/orders", &[("authorization", &bearer)]).await;
    assert_eq!(identity(&verdict), Some("alice"));
    let verdict = decide(&agent, "/orders", &[("X-Api-Key", CI_KEY)]).await;
    assert_eq!(identity(&verdict), Some("ci-bot"));
    // A client cannot pick its identity: the header is overwritten.
    let verdict = decide(
        &agent,
        "/orders",
        &[("authorization", &bearer), ("x-auth-user", "root")],
    )
    .await;
    assert_eq!(identity(&verdict), Some("alice"));
}

#[tokio::test]
async fn missing_wrong_or_misplaced_credentials_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(&dir);
    assert_401(
        &decide(&agent, "/orders", &[]).await,
        "no bearer token or API key",
    );
    assert_401(
        &decide(&agent, "/orders", &[("x-auth-user", "root")]).await,
        "no bearer token or API key",
    );
    let wrong = format!("Bearer {ALICE}x");
    assert_401(
        &decide(&agent, "/orders", &[("authorization", &wrong)]).await,
        "unknown bearer token or API key",
    );
    // An API key is not a bearer token and vice versa.
    let misplaced = format!("Bearer {CI_KEY}");
    assert_401(
        &decide(&agent, "/orders", &[("authorization", &misplaced)]).await,
        "unknown bearer token or API key",
    );
    assert_401(
        &decide(&agent, "/orders", &[("x-api-key", ALICE)]).await,
        "unknown bearer token or API key",
    );
    assert_401(
        &decide(
            &agent,
            "/orders",
            &[("authorization", "Basic YWxpY2U6eA==")],
        )
        .await,
        "no bearer token or API key",
    );
}

#[tokio::test]
async fn public_paths_pass_without_credentials_and_without_a_claimed_identity() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(&dir);
    let verdict = decide(&agent, "/health/live", &[("x-auth-user", "root")]).await;
    assert_eq!(identity(&verdict), None);
}

#[tokio::test]
async fn pushed_config_replaces_credentials_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(&dir);
    let bearer = format!("Bearer {ALICE}");
    agent
        .on_config(&json!({
            "identity_header": "x-user",
            "public_paths": [],
            "credentials": [{"user": "bob", "bearer_sha256": BOB_SHA256}, {"user": "dora", "api_key": "dora-key-1"}]
        }))
        .await
        .unwrap();
    assert_eq!(agent.credential_count(), 2);
    assert_401(
        &decide(&agent, "/orders", &[("authorization", &bearer)]).await,
        "unknown bearer token or API key",
    );
    let verdict = decide(&agent, "/orders", &[("x-api-key", "dora-key-1")]).await;
    assert!(
        matches!(verdict.request_header_ops(), [HeaderOp::Set { name, value }] if name == "x-user" && value == "dora")
    );
    assert_401(
        &decide(&agent, "/health", &[]).await,
        "no bearer token or API key",
    );
    let bob = decide(
        &agent,
        "/orders",
        &[("authorization", "Bearer bob-token-0b1d")],
    )
    .await;
    assert!(
        matches!(bob.request_header_ops(), [HeaderOp::Set { value, .. }] if value == "bob"),
        "{bob:?}"
    );

    // A broken config is refused and the previous credentials stay.
    let broken = agent
        .on_config(&json!({"credentials": [{"user": "x"}]}))
        .await;
    assert!(broken.unwrap_err().to_string().contains("exactly one"));
    assert_eq!(agent.credential_count(), 2);

    // Null: back to the start-up file and settings.
    agent.on_config(&serde_json::Value::Null).await.unwrap();
    assert_eq!(
        identity(&decide(&agent, "/orders", &[("authorization", &bearer)]).await),
        Some("alice")
    );
}
