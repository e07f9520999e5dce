//! Every row of PROTOCOL.md §3's validation table, over Unix and TCP, against the real listener.

mod common;

use std::time::Duration;

use common::*;
use sentinel::pool::PoolSettings;
use sentinel::reverse::{TokenRule, TokenSource};
use sentinel_agent_protocol::*;
use serde_json::json;

async fn expect_rejection(agent: &mut TestAgent, request: Message, code: RegistrationErrorCode) {
    agent.send(request).await;
    match agent.recv().await {
        Some(Message::RegistrationResponse(response)) => match *response {
            RegistrationResponse::Rejected { error, message } => {
                assert_eq!(error, code, "message: {message}");
            }
            other => panic!("expected rejection {code}, got {other:?}"),
        },
        other => panic!("expected a RegistrationResponse, got {other:?}"),
    }
    agent.expect_closed().await;
}

fn auth_config(config: &mut sentinel::ReverseListenerConfig) {
    config.require_auth = true;
    config.tokens = vec![
        TokenRule::load("waf-*", &TokenSource::Value("waf-secret".into())).unwrap(),
        TokenRule::load("auth-agent", &TokenSource::Value("auth-secret".into())).unwrap(),
    ];
}

#[tokio::test]
async fn accepted_registration_gets_id_config_encoding_and_heartbeat() {
    let proxy = Proxy::start().await;
    let mut live = Vec::new();
    for via in BOTH {
        let mut agent = proxy.dial(via).await;
        let mut request = RegistrationRequest::new("waf-worker-3");
        request.encodings = vec!["msgpack".into(), "json".into()];
        request.metadata.insert("version".into(), json!("1.2.0"));
        match agent.register(request).await {
            RegistrationResponse::Accepted {
                assigned_id,
                config,
                encoding,
                heartbeat_interval_ms,
            } => {
                let n = assigned_id
                    .strip_prefix("waf-worker-3-conn-")
                    .expect("assigned_id is <agent_id>-conn-<n>");
                assert!(n.parse::<u64>().is_ok(), "{assigned_id}");
                assert_eq!(config, Some(json!({"rules_version": "3.4.0"})));
                assert_eq!(encoding, Encoding::MessagePack);
                assert_eq!(heartbeat_interval_ms, 10_000);
            }
            other => panic!("{via:?}: {other:?}"),
        }
        live.push(agent);
    }
    proxy.wait_for_connections(2).await;
    let snapshot = proxy.pool.snapshot();
    assert_eq!(snapshot[0].agent_id, "waf-worker-3");
    assert_eq!(snapshot[0].metadata["version"], "1.2.0");
    let transports: Vec<_> = snapshot[0]
        .connections
        .iter()
        .map(|c| c.transport.as_str())
        .collect();
    assert_eq!(transports, ["uds", "tcp"]);
    // An agent that serves no logical agent with config gets `null`.
    let mut agent = proxy.dial(Via::Uds).await;
    match agent.register(RegistrationRequest::new("auth-agent")).await {
        RegistrationResponse::Accepted {
            config, encoding, ..
        } => {
            assert_eq!(config, None);
            assert_eq!(encoding, Encoding::Json, "no encodings listed means JSON");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(proxy.stats.snapshot().accepted, 3);
}

#[tokio::test]
async fn assigned_ids_are_unique_across_agents_and_transports() {
    let proxy = Proxy::start().await;
    let mut ids = std::collections::HashSet::new();
    for (i, via) in [Via::Uds, Via::Tcp, Via::Uds, Via::Tcp]
        .into_iter()
        .enumerate()
    {
        let (_agent, id) = proxy.register(via, &format!("waf-{}", i % 2)).await;
        let n = id.rsplit("-conn-").next().unwrap().to_string();
        assert!(ids.insert(n), "counter reused in {id}");
    }
}

#[tokio::test]
async fn row1_invalid_request() {
    let proxy = Proxy::start().await;
    for via in BOTH {
        // Wrong first frame type.
        let mut agent = proxy.dial(via).await;
        expect_rejection(
            &mut agent,
            Message::Ping(Ping { nonce: 1 }),
            RegistrationErrorCode::InvalidRequest,
        )
        .await;
        // Not JSON.
        let mut agent = proxy.dial(via).await;
        agent
            .send_raw(&[0, 0, 0, 5, 0x01, b'n', b'o', b'p', b'e'])
            .await;
        match agent.recv().await {
            Some(Message::RegistrationResponse(r)) => assert!(
                matches!(
                    *r,
                    RegistrationResponse::Rejected {
                        error: RegistrationErrorCode::InvalidRequest,
                        ..
                    }
                ),
                "{r:?}"
            ),
            other => panic!("{other:?}"),
        }
        agent.expect_closed().await;
    }
    assert_eq!(proxy.stats.snapshot().rejected["invalid_request"], 4);
    assert_eq!(proxy.pool.connection_count(), 0);
}

#[tokio::test]
async fn row1_oversized_and_garbage_first_frames() {
    let proxy = Proxy::start().await;
    for via in BOTH {
        // Announces 100 MB: refused from the length alone.
        let mut agent = proxy.dial(via).await;
        agent.send_raw(&[0x06, 0x00, 0x00, 0x00, 0x01, b'{']).await;
        match agent.recv().await {
            Some(Message::RegistrationResponse(r)) => match *r {
                RegistrationResponse::Rejected { error, message } => {
                    assert_eq!(error, RegistrationErrorCode::InvalidRequest);
                    assert!(message.contains("exceeds the maximum"), "{message}");
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        agent.expect_closed().await;
        // Zero length.
        let mut agent = proxy.dial(via).await;
        agent.send_raw(&[0, 0, 0, 0]).await;
        assert_refused_as_invalid_request(agent.recv().await);
        agent.expect_closed().await;
        // Random bytes that happen to form a plausible length.
        let mut agent = proxy.dial(via).await;
        agent.send_raw(&[0, 0, 0, 3, 0x01, 0xff, 0xfe]).await;
        assert_refused_as_invalid_request(agent.recv().await);
        agent.expect_closed().await;
    }
    // The proxy is unharmed: a real agent still registers.
    let (_agent, _) = proxy.register(Via::Uds, "waf-1").await;
}

fn assert_refused_as_invalid_request(answer: Option<Message>) {
    match answer {
        Some(Message::RegistrationResponse(response)) => assert!(
            matches!(
                *response,
                RegistrationResponse::Rejected {
                    error: RegistrationErrorCode::InvalidRequest,
                    ..
                }
            ),
            "{response:?}"
        ),
        other => panic!("expected an invalid_request refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn row2_version_mismatch() {
    let proxy = Proxy::start().await;
    for via in BOTH {
        let mut agent = proxy.dial(via).await;
        let mut request = RegistrationRequest::new("waf-1");
        request.protocol_version = 1;
        expect_rejection(
            &mut agent,
            request.into(),
            RegistrationErrorCode::VersionMismatch,
        )
        .await;
    }
}

#[tokio::test]
async fn row3_invalid_agent_id() {
    let proxy = Proxy::start().await;
    for via in BOTH {
        for bad in ["", "-leading-dash", "has space", &"x".repeat(129)] {
            let mut agent = proxy.dial(via).await;
            expect_rejection(
                &mut agent,
                RegistrationRequest::new(bad).into(),
                RegistrationErrorCode::InvalidAgentId,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn row4_auth_failed_for_missing_wrong_and_misdirected_tokens() {
    let proxy = Proxy::start_with(auth_config, PoolSettings::default(), default_logical()).await;
    for via in BOTH {
        let mut messages = Vec::new();
        for token in [None, Some("wrong"), Some("auth-secret"), Some("")] {
            let mut agent = proxy.dial(via).await;
            agent.send(request_with_token("waf-1", token).into()).await;
            match agent.recv().await {
                Some(Message::RegistrationResponse(r)) => match *r {
                    RegistrationResponse::Rejected { error, message } => {
                        assert_eq!(error, RegistrationErrorCode::AuthFailed);
                        messages.push(message);
                    }
                    other => panic!("{token:?}: {other:?}"),
                },
                other => panic!("{other:?}"),
            }
            agent.expect_closed().await;
        }
        messages.dedup();
        assert_eq!(
            messages,
            ["Authentication failed"],
            "missing and wrong tokens look the same"
        );
        let (_a, _) = proxy
            .register_request(via, request_with_token("waf-1", Some("waf-secret")))
            .await;
        let (_b, _) = proxy
            .register_request(via, request_with_token("auth-agent", Some("auth-secret")))
            .await;
    }
}

#[tokio::test]
async fn row5_not_allowed_with_wildcards() {
    let proxy = Proxy::start_with(
        |c| c.allowed_agents = Some(vec!["waf-*".into(), "auth-agent".into(), "rl-?".into()]),
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    for via in BOTH {
        for denied in ["auth-agent-2", "waff-1", "rl-10", "other"] {
            let mut agent = proxy.dial(via).await;
            expect_rejection(
                &mut agent,
                RegistrationRequest::new(denied).into(),
                RegistrationErrorCode::NotAllowed,
            )
            .await;
        }
        for allowed in ["waf-1", "auth-agent", "rl-7"] {
            let (agent, _) = proxy.register(via, allowed).await;
            drop(agent);
        }
    }
}

#[tokio::test]
async fn validation_order_is_version_id_auth_allowlist() {
    let proxy = Proxy::start_with(
        |c| {
            auth_config(c);
            c.allowed_agents = Some(vec!["auth-agent".into()]);
        },
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    let cases = [
        (0, "bad id!", None, RegistrationErrorCode::VersionMismatch),
        (2, "bad id!", None, RegistrationErrorCode::InvalidAgentId),
        (2, "waf-1", None, RegistrationErrorCode::AuthFailed),
        (
            2,
            "waf-1",
            Some("waf-secret"),
            RegistrationErrorCode::NotAllowed,
        ),
    ];
    for (version, id, token, code) in cases {
        let mut agent = proxy.dial(Via::Uds).await;
        let mut request = request_with_token(id, token);
        request.protocol_version = version;
        expect_rejection(&mut agent, request.into(), code).await;
    }
}

#[tokio::test]
async fn row6_connection_limit() {
    let proxy = Proxy::start_with(
        |c| c.max_connections_per_agent = 2,
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    for via in BOTH {
        let (first, _) = proxy.register(via, "waf-1").await;
        let (_second, _) = proxy.register(via, "waf-1").await;
        let mut third = proxy.dial(via).await;
        expect_rejection(
            &mut third,
            RegistrationRequest::new("waf-1").into(),
            RegistrationErrorCode::ConnectionLimit,
        )
        .await;
        // Another id is not affected.
        let (_other, _) = proxy.register(via, "waf-2").await;
        // A slot frees when a connection closes.
        drop(first);
        proxy.wait_for_connections(2).await;
        let (_again, _) = proxy.register(via, "waf-1").await;
        drop(_second);
        drop(_again);
        drop(_other);
        proxy.wait_for_connections(0).await;
    }
}

#[tokio::test]
async fn handshake_timeout_for_silent_and_half_sent_registrations() {
    let proxy = Proxy::start_with(
        |c| c.handshake_timeout = Duration::from_millis(300),
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    for via in BOTH {
        let started = std::time::Instant::now();
        let mut silent = proxy.dial(via).await;
        let mut half = proxy.dial(via).await;
        half.send_raw(&[0, 0, 0, 50, 0x01, b'{']).await;
        for agent in [&mut silent, &mut half] {
            match agent.recv().await {
                Some(Message::RegistrationResponse(r)) => assert!(
                    matches!(
                        *r,
                        RegistrationResponse::Rejected {
                            error: RegistrationErrorCode::Timeout,
                            ..
                        }
                    ),
                    "{r:?}"
                ),
                other => panic!("{other:?}"),
            }
            agent.expect_closed().await;
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
    assert_eq!(proxy.stats.snapshot().rejected["timeout"], 4);
}

#[tokio::test]
async fn shutting_down_answers_pending_handshakes() {
    let proxy = Proxy::start().await;
    let mut pending = Vec::new();
    for via in BOTH {
        pending.push(proxy.dial(via).await);
    }
    common::eventually("handshakes pending", common::CONDITION_TIMEOUT, || {
        std::future::ready(proxy.stats.snapshot().pending_handshakes == 2)
    })
    .await;
    proxy.shutdown.cancel();
    for agent in &mut pending {
        match agent.recv().await {
            Some(Message::RegistrationResponse(r)) => assert!(
                matches!(
                    *r,
                    RegistrationResponse::Rejected {
                        error: RegistrationErrorCode::ShuttingDown,
                        ..
                    }
                ),
                "{r:?}"
            ),
            other => panic!("{other:?}"),
        }
    }
    // And the pool refuses late registrations while it drains.
    proxy.pool.shutdown(Duration::from_millis(10)).await;
    assert!(proxy.pool.is_shutting_down());
}
