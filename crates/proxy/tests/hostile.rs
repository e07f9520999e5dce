//! Concurrency and floods: the per-agent limit under 50 simultaneous registrations, and a
//! flood of silent connections that must not delay an honest agent; failed registrations
//! throttled by address; the cap on agent connections of all agents together.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::future::join_all;
use sentinel::pool::PoolSettings;
use sentinel::reverse::{ThrottleSettings, TokenRule, TokenSource};
use sentinel_agent_protocol::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_simultaneous_registrations_of_one_id_give_exactly_the_limit() {
    let proxy = Proxy::start_with(
        |c| c.max_connections_per_agent = 4,
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    for via in BOTH {
        let mut agents = Vec::new();
        for _ in 0..50 {
            agents.push(proxy.dial(via).await);
        }
        // Send every registration before reading any answer.
        let sent = join_all(
            agents
                .iter_mut()
                .map(|a| a.send(RegistrationRequest::new("waf-1").into())),
        )
        .await;
        assert_eq!(sent.len(), 50);
        let answers = join_all(agents.iter_mut().map(|a| a.recv())).await;
        let mut accepted = 0;
        let mut limited = 0;
        for answer in answers {
            match answer {
                Some(Message::RegistrationResponse(r)) => match *r {
                    RegistrationResponse::Accepted { .. } => accepted += 1,
                    RegistrationResponse::Rejected {
                        error: RegistrationErrorCode::ConnectionLimit,
                        ..
                    } => limited += 1,
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((accepted, limited), (4, 46), "{via:?}");
        assert_eq!(proxy.pool.get_health("waf-1").unwrap().total_connections, 4);
        drop(agents);
        proxy.wait_for_connections(0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_flood_does_not_delay_an_honest_agent() {
    // Few pending places and a long handshake timeout: without eviction of the oldest pending
    // handshake, the honest agent would wait the full 30 s.
    let proxy = Proxy::start_with(
        |c| {
            c.max_pending_handshakes = 32;
            c.handshake_timeout = Duration::from_secs(30);
        },
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    let mut flood = Vec::new();
    for i in 0..500 {
        flood.push(
            proxy
                .dial(if i % 2 == 0 { Via::Uds } else { Via::Tcp })
                .await,
        );
    }
    common::eventually("flood pending", common::CONDITION_TIMEOUT, || {
        std::future::ready(proxy.stats.snapshot().pending_handshakes >= 32)
    })
    .await;
    for via in BOTH {
        let started = Instant::now();
        let (_agent, id) = proxy.register(via, "waf-honest").await;
        let took = started.elapsed();
        eprintln!("{via:?}: registered {id} in {took:?} under a flood of 500 silent connections");
        assert!(
            took < Duration::from_secs(5),
            "honest agent waited {took:?}"
        );
        flood.push(_agent);
    }
    let pending = proxy.stats.snapshot().pending_handshakes;
    assert!(pending <= 32, "pending handshakes capped, got {pending}");
}

/// A token guesser from one address: each failure is answered later than the one before,
/// then the address is refused unread for the block period, while a Unix socket agent is
/// unaffected; after the block, the address may register again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_registrations_from_one_address_are_delayed_then_refused() {
    let proxy = Proxy::start_with(
        |c| {
            c.require_auth = true;
            c.tokens =
                vec![
                    TokenRule::load("auth-agent", &TokenSource::Value("the-right-token".into()))
                        .unwrap(),
                ];
            c.failed_registrations = ThrottleSettings {
                limit: 4,
                window: Duration::from_secs(60),
                block: Duration::from_secs(2),
                delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(300),
            };
        },
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    let mut waits = Vec::new();
    for _ in 0..4 {
        let mut guesser = proxy.dial(Via::Tcp).await;
        let started = Instant::now();
        let answer = guesser
            .register(request_with_token("auth-agent", Some("a-guess")))
            .await;
        waits.push(started.elapsed());
        assert!(
            matches!(
                answer,
                RegistrationResponse::Rejected {
                    error: RegistrationErrorCode::AuthFailed,
                    ..
                }
            ),
            "{answer:?}"
        );
    }
    for (wait, least) in waits.iter().zip([100, 200, 300, 300]) {
        assert!(
            *wait >= Duration::from_millis(least),
            "failure answers must slow down: {waits:?}"
        );
    }

    // Blocked: closed without an answer, whatever is sent, even the right token.
    let mut blocked = proxy.dial(Via::Tcp).await;
    blocked
        .send(request_with_token("auth-agent", Some("the-right-token")).into())
        .await;
    assert!(
        blocked.recv().await.is_none(),
        "a blocked address gets no answer"
    );
    let throttle = proxy.stats.snapshot().throttle;
    assert_eq!(
        (throttle.blocks, throttle.blocked_peers),
        (1, 1),
        "{throttle:?}"
    );
    assert!(throttle.refused_connections >= 1, "{throttle:?}");
    assert_eq!(throttle.delayed_rejections, 4, "{throttle:?}");

    // Unix socket peers have no address and are never throttled.
    let (_local, _) = proxy
        .register_request(
            Via::Uds,
            request_with_token("auth-agent", Some("the-right-token")),
        )
        .await;

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_remote, _) = proxy
        .register_request(
            Via::Tcp,
            request_with_token("auth-agent", Some("the-right-token")),
        )
        .await;
    assert_eq!(proxy.stats.snapshot().throttle.blocked_peers, 0);
}

/// Refusals that say nothing about the peer (its id is at its connection limit) are not
/// throttled: an agent fleet scaling past its limit must not get its address blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refusals_are_not_throttled() {
    let proxy = Proxy::start_with(
        |c| {
            c.max_connections_per_agent = 1;
            c.failed_registrations.limit = 2;
        },
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    let (_first, _) = proxy.register(Via::Tcp, "waf-1").await;
    for _ in 0..5 {
        let mut extra = proxy.dial(Via::Tcp).await;
        let answer = extra.register(RegistrationRequest::new("waf-1")).await;
        assert!(
            matches!(
                answer,
                RegistrationResponse::Rejected {
                    error: RegistrationErrorCode::ConnectionLimit,
                    ..
                }
            ),
            "{answer:?}"
        );
    }
    let (_other, _) = proxy.register(Via::Tcp, "waf-2").await;
    assert_eq!(proxy.stats.snapshot().throttle.blocks, 0);
}

/// The total cap counts every agent's connections; a place freed is a place to register.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_agent_connections_are_capped() {
    let proxy = Proxy::start_with(
        |c| c.max_agent_connections = 3,
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    let (first, _) = proxy.register(Via::Uds, "waf-1").await;
    let (_second, _) = proxy.register(Via::Tcp, "waf-2").await;
    let (_third, _) = proxy.register(Via::Uds, "auth-agent").await;
    let mut fourth = proxy.dial(Via::Tcp).await;
    match fourth.register(RegistrationRequest::new("waf-3")).await {
        RegistrationResponse::Rejected {
            error: RegistrationErrorCode::ConnectionLimit,
            message,
        } => assert!(message.contains("max-agent-connections"), "{message}"),
        other => panic!("{other:?}"),
    }
    drop(first);
    proxy.wait_for_connections(2).await;
    let (_fourth, _) = proxy.register(Via::Tcp, "waf-3").await;
}
