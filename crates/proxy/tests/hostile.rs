//! Concurrency and floods: the per-agent limit under 50 simultaneous registrations, and a
//! flood of silent connections that must not delay an honest agent.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::future::join_all;
use sentinel::pool::PoolSettings;
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
    common::eventually(
        || proxy.stats.snapshot().pending_handshakes >= 32,
        "flood pending",
    )
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
