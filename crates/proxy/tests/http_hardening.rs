//! Hostile clients and misbehaving agents against the HTTP data plane: host confusion between
//! routing and the upstream, dot-segment paths escaping a prefix route, an agent flooding header
//! operations, and a client withholding its body while agents wait for it.

mod common;
mod http_support;

use std::time::Duration;

use http_body_util::Full;
use http_support::*;
use sentinel::config::{FailureMode, RouteMatch};
use sentinel_agent_protocol::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Route `admin` (host admin.test) is guarded by a blocking agent; `public` has no agent.
fn two_hosts(target: std::net::SocketAddr) -> sentinel::config::Config {
    let mut admin = route("admin", "/", "backend", &["guard"]);
    admin.matches = RouteMatch {
        path_prefix: Some("/".into()),
        host: Some("admin.test".into()),
    };
    let public = route("public", "/", "backend", &[]);
    config(
        vec![upstream("backend", &[target])],
        vec![agent(
            "guard",
            &["request_headers"],
            FailureMode::Closed,
            Duration::from_secs(2),
        )],
        vec![admin, public],
    )
}

async fn raw(address: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_upstream_sees_the_host_the_route_was_chosen_on() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(two_hosts(up.addr)).await;
    let _guard = ScriptedAgent::start(&h, "guard-1", |m| {
        reply(Decision::block(m.request_id()?, 403))
    })
    .await;
    h.proxy.wait_for_connections(1).await;

    // Absolute-form URI for the public host with a Host header naming the guarded one.
    let answer = raw(
        h.addr,
        "GET http://public.test/secret HTTP/1.1\r\nhost: admin.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        up.last().headers["host"],
        "public.test",
        "routing and upstream agree on the host"
    );

    // Two Host headers are refused outright.
    let before = up.requests().len();
    let answer = raw(h.addr, "GET /secret HTTP/1.1\r\nhost: public.test\r\nhost: admin.test\r\nconnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(up.requests().len(), before, "nothing reached the upstream");

    // The guarded host is still guarded.
    let answer = raw(
        h.addr,
        "GET /secret HTTP/1.1\r\nhost: admin.test\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

#[tokio::test]
async fn dot_segments_cannot_escape_a_prefix_route() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(config(
        vec![upstream("backend", &[up.addr])],
        vec![],
        vec![route("public", "/public/", "backend", &[])],
    ))
    .await;
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/./x",
        "/public/%2E%2E",
    ] {
        let got = get(&h.url(path)).await;
        assert_eq!(got.status, 400, "{path}");
    }
    assert!(up.requests().is_empty());
    assert_eq!(get(&h.url("/public/ok")).await.status, 200);
}

#[tokio::test]
async fn a_flood_of_header_operations_cannot_crash_a_request() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(config(
        vec![upstream("backend", &[up.addr])],
        vec![agent(
            "waf",
            &["request_headers"],
            FailureMode::Closed,
            Duration::from_secs(5),
        )],
        vec![route("default", "/", "backend", &["waf"])],
    ))
    .await;
    let _waf = ScriptedAgent::start(&h, "waf-1", |m| {
        let mut decision = Decision::allow(m.request_id()?);
        decision.response_headers = (0..40_000)
            .map(|i| HeaderOp::Add {
                name: format!("x-flood-{i}"),
                value: "1".into(),
            })
            .collect();
        decision.request_headers = (0..40_000)
            .map(|i| HeaderOp::Set {
                name: format!("x-req-{i}"),
                value: "1".into(),
            })
            .collect();
        reply(decision)
    })
    .await;
    h.proxy.wait_for_connections(1).await;
    let got = get(&h.url("/")).await;
    assert_eq!(got.status, 200);
    let added = got
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-flood-"))
        .count();
    assert!(added > 0 && added <= 64, "{added} response headers applied");
    assert!(
        up.last()
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("x-req-"))
            .count()
            <= 256
    );
    // The proxy is unharmed.
    assert_eq!(get(&h.url("/")).await.status, 200);
}

#[tokio::test]
async fn a_client_withholding_its_body_gets_408_and_frees_the_agent_slot() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(config(
        vec![upstream("backend", &[up.addr])],
        vec![agent(
            "waf",
            &["request_headers", "request_body"],
            FailureMode::Closed,
            Duration::from_secs(5),
        )],
        vec![route("default", "/", "backend", &["waf"])],
    ))
    .await;
    let mut registration = RegistrationRequest::new("waf-1");
    registration.capabilities.max_concurrent_requests = Some(1);
    let (mut agent, _) = h
        .proxy
        .register_request(common::Via::Uds, registration)
        .await;
    h.proxy.wait_for_connections(1).await;
    // Answers without any timeout of its own: the test waits longer than `recv` would.
    let answering = tokio::spawn(async move {
        use futures::StreamExt;
        while let Some(Ok(frame)) = agent.framed.next().await {
            let reply = match Message::from_frame(&frame, agent.encoding) {
                Ok(Message::RequestHeaders(e)) => Decision::continue_(e.request_id).into(),
                Ok(Message::RequestBodyChunk(c)) => Decision::allow(c.request_id).into(),
                Ok(Message::Ping(p)) => Pong { nonce: p.nonce }.into(),
                _ => continue,
            };
            agent.send(reply).await;
        }
    });
    // The proxy waits BODY_STALL_TIMEOUT (15 s) for body bytes that never come.
    let stalled = tokio::spawn(raw(
        h.addr,
        "POST /upload HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\nconnection: close\r\n\r\n",
    ));
    let answer = stalled.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // The single slot is free again: a normal request with a body goes through.
    let got = send(
        http::Request::post(h.url("/upload"))
            .body(Full::new(bytes::Bytes::from_static(b"hello")))
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 200);
    answering.abort();
}
