//! Plain proxying over real sockets: hop-by-hop headers removed both ways, `x-forwarded-for`
//! and `x-forwarded-proto`, routing by path and host (404 without a route), round robin and
//! passive health over upstream targets (surviving a reload), upstream timeouts, and graceful
//! shutdown with a request in flight.

mod common;
mod http_support;

use std::time::Duration;

use http_body_util::Full;
use http_support::*;
use sentinel::config::RouteMatch;

fn plain_config(targets: &[std::net::SocketAddr]) -> sentinel::config::Config {
    config(
        vec![upstream("backend", targets)],
        vec![],
        vec![route("default", "/", "backend", &[])],
    )
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways_and_forwarding_headers_added() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(plain_config(&[up.addr])).await;
    let request = http::Request::get(h.url("/echo?q=1"))
        .header("host", "app.test")
        .header("connection", "keep-alive, x-client-hop")
        .header("x-client-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic abc")
        .header("te", "trailers")
        .header("upgrade", "websocket")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-end-to-end", "kept")
        .body(Full::default())
        .unwrap();
    let got = send(request).await;
    assert_eq!(got.status, 200);

    let seen = up.last();
    assert_eq!(seen.uri, "/echo?q=1");
    for name in [
        "x-client-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(
            seen.headers.get(name).is_none(),
            "{name} reached the upstream"
        );
    }
    if let Some(connection) = seen.headers.get("connection") {
        assert!(!connection.to_str().unwrap().contains("x-client-hop"));
    }
    assert_eq!(seen.headers["x-end-to-end"], "kept");
    assert_eq!(seen.headers["host"], "app.test");
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");

    assert_eq!(got.headers["x-upstream"], "backend");
    for name in ["x-upstream-hop", "keep-alive", "proxy-authenticate"] {
        assert!(got.headers.get(name).is_none(), "{name} reached the client");
    }
}

#[tokio::test]
async fn routes_match_by_path_and_host_and_unmatched_requests_get_404() {
    let api = Upstream::start("api").await;
    let web = Upstream::start("web").await;
    let mut tenant = route("tenant", "/", "web", &[]);
    tenant.matches = RouteMatch {
        path_prefix: None,
        host: Some("*.example.com".into()),
    };
    let h = Harness::start(config(
        vec![upstream("api", &[api.addr]), upstream("web", &[web.addr])],
        vec![],
        vec![route("api", "/api", "api", &[]), tenant],
    ))
    .await;
    let with_host = |path: &str, host: &str| {
        http::Request::get(h.url(path))
            .header("host", host)
            .body(Full::default())
            .unwrap()
    };
    assert_eq!(
        send(with_host("/api/x", "other.test")).await.text(),
        "hello from api"
    );
    assert_eq!(
        send(with_host("/page", "Shop.Example.com:8080"))
            .await
            .text(),
        "hello from web"
    );
    let missing = send(with_host("/page", "example.com")).await;
    assert_eq!(missing.status, 404);
    assert!(
        h.metrics()
            .contains(r#"sentinel_http_requests_total{route="-",status="404"} 1"#),
        "{}",
        h.metrics()
    );
}

#[tokio::test]
async fn requests_are_spread_round_robin_over_targets() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let h = Harness::start(plain_config(&[a.addr, b.addr])).await;
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(get(&h.url("/")).await.text());
    }
    for pair in answers.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "consecutive requests go to different targets: {answers:?}"
        );
    }
    assert_eq!((a.requests().len(), b.requests().len()), (3, 3));
}

#[tokio::test]
async fn a_dead_target_is_skipped_and_its_health_survives_a_reload() {
    let (_dead_port, dead) = dead_address();
    let alive = Upstream::start("alive").await;
    let config = plain_config(&[dead, alive.addr]);
    let h = Harness::start(config.clone()).await;

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(get(&h.url("/")).await.status.as_u16());
    }
    // The first request goes to the dead target (502); once it failed it is skipped.
    assert_eq!(statuses, [502, 200, 200, 200, 200, 200]);
    assert_eq!(alive.requests().len(), 5);

    let health = h.state.upstream_health();
    assert_eq!(health.len(), 1);
    let dead_target = &health[0].targets[0];
    assert_eq!(dead_target.address, dead.to_string());
    assert!(!dead_target.available);
    assert_eq!(dead_target.consecutive_failures, 1);
    assert!(dead_target.down_for_ms.is_some());
    assert!(health[0].targets[1].available);

    // A reload with the same targets (another timeout) keeps the dead one out.
    let mut reloaded = config;
    reloaded.upstreams[0].request_timeout = Duration::from_secs(20);
    h.state.set_config(reloaded);
    assert!(!h.state.upstream_health()[0].targets[0].available);
    for _ in 0..4 {
        assert_eq!(get(&h.url("/")).await.status, 200);
    }
    assert_eq!(alive.requests().len(), 9);
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_gets_504() {
    let slow = Upstream::start("slow").await;
    let mut config = plain_config(&[slow.addr]);
    config.upstreams[0].request_timeout = Duration::from_millis(200);
    let h = Harness::start(config).await;
    assert_eq!(get(&h.url("/sleep/3000")).await.status, 504);
    assert_eq!(
        h.state.upstream_health()[0].targets[0].consecutive_failures,
        1
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_then_stops() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(plain_config(&[up.addr])).await;
    let url = h.url("/sleep/500");
    let in_flight = tokio::spawn(async move { get(&url).await });
    common::eventually(
        "the request reaching the upstream",
        common::CONDITION_TIMEOUT,
        || std::future::ready(up.requests().len() == 1),
    )
    .await;

    h.shutdown.cancel();
    let got = in_flight.await.unwrap();
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "slept in backend")
    );
    tokio::time::timeout(WAIT, h.serve)
        .await
        .expect("serve returns once its connections are done")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(h.addr).await.is_err(),
        "no longer accepting"
    );
}

/// A target that answers each request on a raw socket with a keep-alive response, counts the
/// connections it accepted, and closes every connection right after its first response (as an
/// upstream's keep-alive timeout would, without saying so in a header) unless `keep` is set.
async fn counting_target(
    keep: bool,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        buffer.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if socket.write_all(reply).await.is_err() || !keep {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let (target, accepted) = counting_target(true).await;
    let h = Harness::start(plain_config(&[target])).await;
    for _ in 0..5 {
        let got = get(&h.url("/")).await;
        assert_eq!(
            (got.status, got.text()),
            (http::StatusCode::OK, "ok".to_string())
        );
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_upstream_that_closes_idle_connections_costs_no_request() {
    let (target, accepted) = counting_target(false).await;
    let h = Harness::start(plain_config(&[target])).await;
    for round in 1..=5 {
        let got = get(&h.url("/")).await;
        assert_eq!(got.status, http::StatusCode::OK, "request {round}");
        // Let the close reach the proxy before the next request, as between real requests.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 5);
}
