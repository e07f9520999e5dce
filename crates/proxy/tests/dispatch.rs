//! The agent pool's dispatch path against real sockets: replies correlated by request_id,
//! load spread, concurrency limits, timeouts and Cancel, lost connections failing fast and
//! retried once elsewhere, pushed config, heartbeats and draining.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sentinel::pool::PoolSettings;
use sentinel::{AgentReply, AgentRequest, DispatchError, LogicalAgent};
use sentinel_agent_protocol::*;
use serde_json::json;

const LONG: Duration = Duration::from_secs(30);

fn request_id_of(message: &Message) -> u64 {
    message.request_id().expect("an event with a request_id")
}

/// A proxy with `waf-1` registered over the Unix socket, and a request to `waf` begun (on
/// that agent's only connection).
async fn one_agent_and_a_request() -> (Proxy, TestAgent, AgentRequest) {
    let proxy = Proxy::start().await;
    let (agent, _) = proxy.register(Via::Uds, "waf-1").await;
    proxy.wait_for_connections(1).await;
    let request = proxy.pool.begin("waf").unwrap();
    (proxy, agent, request)
}

#[tokio::test]
async fn decisions_are_correlated_by_request_id_in_both_encodings() {
    let proxy = Proxy::start().await;
    for (via, encodings) in [(Via::Uds, vec!["msgpack".to_string()]), (Via::Tcp, vec![])] {
        let mut request = RegistrationRequest::new("waf-1");
        request.encodings = encodings;
        let (mut agent, _) = proxy.register_request(via, request).await;
        proxy.wait_for_connections(1).await;
        let mut first = proxy.pool.begin("waf").unwrap();
        let mut second = proxy.pool.begin("waf").unwrap();
        let a = tokio::spawn(async move { first.send(headers_event("/a"), LONG).await });
        let b = tokio::spawn(async move { second.send(headers_event("/b"), LONG).await });
        let mut events = vec![
            agent.recv_event().await.unwrap(),
            agent.recv_event().await.unwrap(),
        ];
        // Answer in reverse order: /b gets block, /a gets allow.
        events.reverse();
        for event in &events {
            let Message::RequestHeaders(h) = event else {
                panic!("{event:?}")
            };
            let decision = if h.uri == "/b" {
                Decision::block(h.request_id, 451)
            } else {
                Decision::allow(h.request_id)
            };
            agent.decide(decision).await;
        }
        let a = a.await.unwrap().unwrap();
        let b = b.await.unwrap().unwrap();
        assert!(
            matches!(
                a,
                AgentReply::Decision(Decision {
                    action: Action::Allow,
                    ..
                })
            ),
            "{a:?}"
        );
        assert!(
            matches!(
                b,
                AgentReply::Decision(Decision {
                    action: Action::Block { status: 451, .. },
                    ..
                })
            ),
            "{b:?}"
        );
        drop(agent);
        proxy.wait_for_connections(0).await;
    }
}

#[tokio::test]
async fn request_error_is_returned_to_the_caller() {
    let (proxy, mut agent, mut request) = one_agent_and_a_request().await;
    let call = tokio::spawn(async move { request.send(headers_event("/"), LONG).await });
    let event = agent.recv_event().await.unwrap();
    agent
        .send(
            RequestError {
                request_id: request_id_of(&event),
                code: "internal".into(),
                message: "boom".into(),
            }
            .into(),
        )
        .await;
    assert!(
        matches!(call.await.unwrap(), Ok(AgentReply::Error(RequestError { code, .. })) if code == "internal")
    );
    assert!(proxy.pool.get_health("waf-1").unwrap().success_rate < 1.0);
}

#[tokio::test]
async fn vanishing_peer_fails_the_waiting_caller_at_once() {
    let proxy = Proxy::start().await;
    for via in BOTH {
        let (mut agent, _) = proxy.register(via, "waf-1").await;
        proxy.wait_for_connections(1).await;
        let mut request = proxy.pool.begin("waf").unwrap();
        let started = Instant::now();
        let call = tokio::spawn(async move { request.send(headers_event("/"), LONG).await });
        agent.recv_event().await.unwrap();
        drop(agent);
        let outcome = call.await.unwrap();
        let took = started.elapsed();
        assert!(
            matches!(outcome, Err(DispatchError::ConnectionLost(_))),
            "{outcome:?}"
        );
        assert!(
            took < Duration::from_secs(2),
            "failed after {took:?}, timeout was {LONG:?}"
        );
        proxy.wait_for_connections(0).await;
        assert!(matches!(
            proxy.pool.begin("waf"),
            Err(DispatchError::NoConnection(_))
        ));
    }
}

#[tokio::test]
async fn lost_connection_retries_the_event_once_on_another() {
    let proxy = Proxy::start().await;
    let (first, first_id) = proxy.register(Via::Uds, "waf-1").await;
    let (second, second_id) = proxy.register(Via::Tcp, "waf-2").await;
    proxy.wait_for_connections(2).await;
    let mut request = proxy.pool.begin("waf").unwrap();
    let (mut doomed, mut survivor) = if request.assigned_id() == first_id {
        (first, second)
    } else {
        (second, first)
    };
    assert!([first_id, second_id].contains(&request.assigned_id().to_string()));
    let call = tokio::spawn(async move {
        let reply = request.send(headers_event("/retry"), LONG).await;
        (reply, request.assigned_id().to_string())
    });
    doomed.recv_event().await.unwrap();
    drop(doomed);
    let event = survivor.recv_event().await.expect("the event is resent");
    let Message::RequestHeaders(h) = &event else {
        panic!("{event:?}")
    };
    assert_eq!(h.uri, "/retry");
    survivor.decide(Decision::allow(h.request_id)).await;
    let (reply, served_by) = call.await.unwrap();
    assert!(matches!(reply, Ok(AgentReply::Decision(_))), "{reply:?}");
    assert_eq!(proxy.pool.connection_count(), 1);
    assert!(proxy.pool.snapshot()[0].connections[0].assigned_id == served_by);
}

#[tokio::test]
async fn requests_spread_over_connections_and_agents_by_load() {
    let proxy = Proxy::start().await;
    let mut agents = Vec::new();
    for id in ["waf-1", "waf-1", "waf-2", "waf-2"] {
        agents.push(proxy.register(Via::Uds, id).await.0);
    }
    proxy.wait_for_connections(4).await;
    // Eight requests held open: least-loaded picking gives every connection exactly two.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(proxy.pool.begin("waf").unwrap());
    }
    for agent in proxy.pool.snapshot() {
        for connection in agent.connections {
            assert_eq!(connection.in_flight, 2, "{}", connection.assigned_id);
        }
    }
    assert_eq!(proxy.pool.get_health("waf-1").unwrap().in_flight, 4);
    drop(held);
    assert_eq!(proxy.pool.get_health("waf-2").unwrap().in_flight, 0);
    // Sequential requests rotate over idle connections instead of piling on the first.
    let mut served = std::collections::HashSet::new();
    for _ in 0..4 {
        served.insert(proxy.pool.begin("waf").unwrap().assigned_id().to_string());
    }
    assert_eq!(served.len(), 4, "{served:?}");
}

#[tokio::test]
async fn concurrency_limit_of_a_connection_is_never_exceeded() {
    let proxy = Proxy::start().await;
    let mut request = RegistrationRequest::new("waf-1");
    request.capabilities.max_concurrent_requests = Some(2);
    let (_agent, _) = proxy.register_request(Via::Uds, request).await;
    proxy.wait_for_connections(1).await;
    let a = proxy.pool.begin("waf").unwrap();
    let _b = proxy.pool.begin("waf").unwrap();
    assert!(matches!(
        proxy.pool.begin("waf"),
        Err(DispatchError::Saturated(_))
    ));
    drop(a);
    assert!(proxy.pool.begin("waf").is_ok());
    assert!(matches!(
        proxy.pool.begin("nope"),
        Err(DispatchError::UnknownAgent(_))
    ));
}

#[tokio::test]
async fn timeout_sends_cancel_and_the_late_decision_is_dropped() {
    let proxy = Proxy::start().await;
    let (mut agent, _) = proxy.register(Via::Tcp, "waf-1").await;
    proxy.wait_for_connections(1).await;
    let mut request = proxy.pool.begin("waf").unwrap();
    let call = tokio::spawn(async move {
        request
            .send(headers_event("/slow"), Duration::from_millis(200))
            .await
    });
    let event = agent.recv_event().await.unwrap();
    let outcome = call.await.unwrap();
    assert!(
        matches!(outcome, Err(DispatchError::Timeout { .. })),
        "{outcome:?}"
    );
    match agent.recv_event().await {
        Some(Message::Cancel(cancel)) => {
            assert_eq!(cancel.request_id, request_id_of(&event));
            assert_eq!(cancel.reason, "timeout");
        }
        other => panic!("expected Cancel, got {other:?}"),
    }
    agent.decide(Decision::allow(request_id_of(&event))).await;
    let pool = proxy.pool.clone();
    eventually("late reply counted", CONDITION_TIMEOUT, move || {
        std::future::ready(pool.get_health("waf-1").unwrap().counters.late_replies == 1)
    })
    .await;
    let health = proxy.pool.get_health("waf-1").unwrap();
    assert_eq!((health.counters.timeouts, health.in_flight), (1, 0));
}

#[tokio::test]
async fn dropping_a_waiting_request_sends_cancel() {
    let (_proxy, mut agent, mut request) = one_agent_and_a_request().await;
    let call = tokio::spawn(async move { request.send(headers_event("/"), LONG).await });
    let event = agent.recv_event().await.unwrap();
    call.abort(); // the client went away
    match agent.recv_event().await {
        Some(Message::Cancel(cancel)) => {
            assert_eq!(cancel.request_id, request_id_of(&event));
            assert_eq!(cancel.reason, "client_disconnected");
        }
        other => panic!("expected Cancel, got {other:?}"),
    }
}

#[tokio::test]
async fn cancel_all_reaches_every_connection_and_fails_waiters() {
    let (proxy, mut agent, mut request) = one_agent_and_a_request().await;
    let call = tokio::spawn(async move { request.send(headers_event("/"), LONG).await });
    agent.recv_event().await.unwrap();
    proxy.pool.cancel_all("operator");
    assert!(
        matches!(agent.recv_event().await, Some(Message::CancelAll(c)) if c.reason == "operator")
    );
    assert!(matches!(
        call.await.unwrap(),
        Err(DispatchError::Cancelled(_))
    ));
}

#[tokio::test]
async fn config_reload_pushes_config_update_only_where_it_changed() {
    let proxy = Proxy::start().await;
    let (mut waf, _) = proxy.register(Via::Uds, "waf-1").await;
    let (mut auth, _) = proxy.register(Via::Tcp, "auth-agent").await;
    proxy.wait_for_connections(2).await;
    let pushed = proxy.pool.set_logical_agents(vec![
        LogicalAgent::new("waf", &["waf-*"]).with_config(json!({"rules_version": "3.5.0"})),
        LogicalAgent::new("auth", &["auth-agent"]),
    ]);
    assert_eq!(pushed, 1);
    match waf.recv_event().await {
        Some(Message::ConfigUpdate(update)) => {
            assert_eq!(update.config, json!({"rules_version": "3.5.0"}))
        }
        other => panic!("{other:?}"),
    }
    // The auth agent's config did not change: it gets nothing (a Ping would be the next frame).
    assert!(
        tokio::time::timeout(Duration::from_millis(200), auth.recv_event())
            .await
            .is_err()
    );
    // The same config again pushes nothing.
    assert_eq!(proxy.pool.set_logical_agents(common::default_logical()), 1);
}

#[tokio::test]
async fn heartbeat_pings_idle_connections_and_closes_dead_ones() {
    let heartbeat = Duration::from_millis(200);
    let settings = PoolSettings {
        heartbeat_interval: heartbeat,
        ..PoolSettings::default()
    };
    let proxy = Proxy::start_with(|_| {}, settings, default_logical()).await;
    let (mut alive, _) = proxy.register(Via::Uds, "waf-alive").await;
    let (mut dead, _) = proxy.register(Via::Tcp, "waf-dead").await;
    proxy.wait_for_connections(2).await;
    // The agent may ping too and gets a Pong with its nonce.
    alive.send(Ping { nonce: 99 }.into()).await;
    let answering = tokio::spawn(async move {
        let mut pings = 0;
        let mut pong_seen = false;
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), alive.recv()).await {
                Ok(Some(Message::Ping(ping))) => {
                    pings += 1;
                    alive.send(Pong { nonce: ping.nonce }.into()).await;
                }
                Ok(Some(Message::Pong(pong))) => pong_seen = pong.nonce == 99,
                Ok(other) => panic!("{other:?}"),
                Err(_) => {}
            }
        }
        (pings, pong_seen, alive)
    });
    // The dead agent reads the ping but never answers: closed when the next interval ends,
    // instead of being pinged again (an order, not a wall-clock bound, decides it; the bound
    // below only tells "closed by the heartbeat" from "never closed" on a loaded machine).
    let started = Instant::now();
    assert!(matches!(dead.recv().await, Some(Message::Ping(_))));
    while let Some(message) = dead.recv().await {
        assert!(
            matches!(message, Message::GoAway(_)),
            "a connection that missed its pong must be closed, not sent {message:?}"
        );
    }
    let took = started.elapsed();
    assert!(took < heartbeat * 20, "dead peer detected after {took:?}");
    let (pings, pong_seen, _alive) = answering.await.unwrap();
    assert!(
        pings >= 3,
        "an idle connection is pinged every interval, saw {pings}"
    );
    assert!(pong_seen, "the agent's own ping was answered");
    assert!(proxy.pool.get_health("waf-alive").is_some());
    assert!(proxy.pool.get_health("waf-dead").is_none());
}

#[tokio::test]
async fn agent_go_away_stops_new_requests_on_that_connection() {
    let proxy = Proxy::start().await;
    let (mut first, first_id) = proxy.register(Via::Uds, "waf-1").await;
    let (mut second, _) = proxy.register(Via::Uds, "waf-2").await;
    proxy.wait_for_connections(2).await;
    // Hold a request on the connection that will leave, so it stays open while draining.
    let held = proxy.pool.begin("waf").unwrap();
    let leaving = if held.assigned_id() == first_id {
        &mut first
    } else {
        &mut second
    };
    let leaving_id = held.assigned_id().to_string();
    leaving
        .send(
            GoAway {
                reason: "scale-down".into(),
                grace_ms: 5000,
            }
            .into(),
        )
        .await;
    let pool = proxy.pool.clone();
    eventually("draining", CONDITION_TIMEOUT, move || {
        std::future::ready({
            pool.snapshot()
                .iter()
                .any(|a| a.connections.iter().any(|c| c.draining))
        })
    })
    .await;
    for _ in 0..5 {
        assert_ne!(proxy.pool.begin("waf").unwrap().assigned_id(), leaving_id);
    }
    drop(held);
}

#[tokio::test]
async fn shutdown_sends_go_away_lets_in_flight_finish_then_closes() {
    let proxy = Proxy::start().await;
    let mut agents = Vec::new();
    for (via, id) in [
        (Via::Uds, "waf-1"),
        (Via::Tcp, "waf-2"),
        (Via::Uds, "auth-agent"),
    ] {
        agents.push(proxy.register(via, id).await.0);
    }
    proxy.wait_for_connections(3).await;
    let mut request = proxy.pool.begin("auth").unwrap();
    let call = tokio::spawn(async move { request.send(headers_event("/"), LONG).await });
    let event = agents[2].recv_event().await.unwrap();
    proxy.shutdown.cancel();
    let pool = proxy.pool.clone();
    let shutdown = tokio::spawn(async move { pool.shutdown(Duration::from_secs(5)).await });
    for agent in &mut agents {
        match agent.recv_event().await {
            Some(Message::GoAway(go_away)) => {
                assert_eq!(go_away.reason, "shutdown");
                assert_eq!(go_away.grace_ms, 5000);
            }
            other => panic!("expected GoAway, got {other:?}"),
        }
    }
    // The in-flight request still gets its answer after the GoAway.
    agents[2]
        .decide(Decision::allow(request_id_of(&event)))
        .await;
    assert!(matches!(call.await.unwrap(), Ok(AgentReply::Decision(_))));
    shutdown.await.unwrap();
    for agent in &mut agents {
        agent.expect_closed().await;
    }
    proxy.wait_for_connections(0).await;
    // No new registrations while shut down.
    proxy.listener_task.await.unwrap();
    assert!(!proxy.socket.exists(), "socket file removed on shutdown");
}

#[tokio::test]
async fn after_a_timeout_the_request_is_over_for_that_agent() {
    let (_proxy, mut agent, mut request) = one_agent_and_a_request().await;
    let first = request
        .send(headers_event("/a"), Duration::from_millis(100))
        .await;
    assert!(
        matches!(first, Err(DispatchError::Timeout { .. })),
        "{first:?}"
    );
    let event = agent.recv_event().await.unwrap();
    // The late block for the first event must never become the reply to a later one.
    agent
        .decide(Decision::block(request_id_of(&event), 403))
        .await;
    let second = request.send(headers_event("/b"), LONG).await;
    assert!(
        matches!(second, Err(DispatchError::Timeout { .. })),
        "{second:?}"
    );
}

#[tokio::test]
async fn agent_go_away_closes_the_connection_after_its_grace_and_frees_the_slot() {
    let proxy = Proxy::start_with(
        |c| c.max_connections_per_agent = 1,
        PoolSettings::default(),
        default_logical(),
    )
    .await;
    let (mut leaving, _) = proxy.register(Via::Uds, "waf-1").await;
    proxy.wait_for_connections(1).await;
    let held = proxy.pool.begin("waf").unwrap();
    leaving
        .send(
            GoAway {
                reason: "restart".into(),
                // Far longer than the test: the close below must come from the request ending.
                grace_ms: 60_000,
            }
            .into(),
        )
        .await;
    // The proxy has taken the GoAway in once it marks the connection draining.
    let pool = proxy.pool.clone();
    common::eventually(
        "the connection to be marked draining",
        common::CONDITION_TIMEOUT,
        move || {
            std::future::ready({
                pool.snapshot()
                    .iter()
                    .all(|a| a.connections.iter().all(|c| c.draining))
            })
        },
    )
    .await;
    // Idle after the held request ends: the proxy closes, and the id may register again.
    assert_eq!(
        proxy.pool.connection_count(),
        1,
        "in-flight work keeps it open"
    );
    drop(held);
    leaving.expect_closed().await;
    proxy.wait_for_connections(0).await;
    let (_again, _) = proxy.register(Via::Uds, "waf-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_stops_reading_cannot_hold_callers_past_their_timeout() {
    let settings = PoolSettings {
        write_timeout: Duration::from_secs(60),
        ..PoolSettings::default()
    };
    let proxy = Proxy::start_with(|_| {}, settings, default_logical()).await;
    let mut request = RegistrationRequest::new("waf-1");
    request.capabilities.max_concurrent_requests = Some(1000);
    let (_agent_not_reading, _) = proxy.register_request(Via::Uds, request).await;
    proxy.wait_for_connections(1).await;
    let started = Instant::now();
    let calls: Vec<_> = (0..400)
        .map(|i| {
            let mut request = proxy.pool.begin("waf").unwrap();
            tokio::spawn(async move {
                let chunk = BodyChunk {
                    request_id: 0,
                    chunk_index: i,
                    data: vec![b'x'; 128 * 1024].into(),
                    is_last: true,
                };
                request
                    .send(
                        sentinel::Event::RequestBodyChunk(chunk),
                        Duration::from_millis(300),
                    )
                    .await
            })
        })
        .collect();
    for call in calls {
        let outcome = call.await.unwrap();
        assert!(
            matches!(outcome, Err(DispatchError::Timeout { .. })),
            "{outcome:?}"
        );
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "callers were held {took:?} with a 300 ms timeout"
    );
}

#[tokio::test]
async fn frames_sent_with_the_registration_are_not_held_back() {
    let proxy = Proxy::start().await;
    let mut agent = proxy.dial(Via::Uds).await;
    // Registration and a Ping in one write: the Ping must be answered without more bytes.
    let mut wire = bytes::BytesMut::new();
    let mut codec = FrameCodec::new();
    use tokio_util::codec::Encoder;
    for message in [
        Message::from(RegistrationRequest::new("waf-1")),
        Ping { nonce: 5 }.into(),
    ] {
        codec
            .encode(message.to_frame(Encoding::Json).unwrap(), &mut wire)
            .unwrap();
    }
    agent.send_raw(&wire).await;
    assert!(matches!(
        agent.recv().await,
        Some(Message::RegistrationResponse(_))
    ));
    let pong = tokio::time::timeout(Duration::from_secs(2), agent.recv()).await;
    assert!(
        matches!(pong, Ok(Some(Message::Pong(Pong { nonce: 5 })))),
        "{pong:?}"
    );
}

#[tokio::test]
async fn a_retry_prefers_another_agent_process_over_a_sibling_connection() {
    let (proxy, mut dying, mut request) = one_agent_and_a_request().await;
    // Then a sibling connection of the same process and another process join.
    let (mut sibling, _) = proxy.register(Via::Uds, "waf-1").await;
    let (mut other, other_id) = proxy.register(Via::Uds, "waf-2").await;
    proxy.wait_for_connections(3).await;
    let call = tokio::spawn(async move {
        let reply = request.send(headers_event("/retry"), LONG).await;
        (reply, request.assigned_id().to_string())
    });
    dying.recv_event().await.unwrap();
    drop(dying);
    let event = other
        .recv_event()
        .await
        .expect("resent to the other process");
    other.decide(Decision::allow(request_id_of(&event))).await;
    let (reply, served_by) = call.await.unwrap();
    assert!(matches!(reply, Ok(AgentReply::Decision(_))), "{reply:?}");
    assert_eq!(served_by, other_id);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), sibling.recv_event())
            .await
            .is_err(),
        "the sibling got nothing"
    );
}
