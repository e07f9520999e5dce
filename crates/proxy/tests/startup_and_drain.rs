//! The HTTP listeners around a restart, as a load balancer sees them: with `wait-for-agents`,
//! a starting proxy refuses client connections until its routed agents have dialled in; and a
//! client whose connection was accepted just before shutdown still gets its answer.

mod common;
mod http_support;

use std::time::Duration;

use common::TestAgent;
use futures::StreamExt;
use http_support::Upstream;
use sentinel::app::RunningProxy;
use sentinel_agent_protocol::*;
use sentinel_test_support::config::{
    Agent, Event, Listener, ProxyConfig, ReverseListener, Route, Upstream as UpstreamBlock,
};
use sentinel_test_support::ports::ANY_LOOPBACK;
use sentinel_test_support::wait::{eventually, try_wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::codec::Framed;

/// The reverse listener in `dir`, one HTTP listener on port 0, the upstream `backend`, the WAF
/// (routed only when `agents`), a 10 s `wait-for-agents` and a 5 s shutdown grace.
fn config_text(dir: &std::path::Path, upstream: std::net::SocketAddr, agents: bool) -> String {
    let route = Route::new("default", "backend");
    let route = if agents { route.agents(["waf"]) } else { route };
    ProxyConfig::new()
        .reverse_listener(ReverseListener::unix(dir.join("agents.sock")))
        .listener(Listener::new("http", ANY_LOOPBACK))
        .upstream(UpstreamBlock::new("backend", upstream))
        .agent(
            Agent::new("waf")
                .agent_ids(["waf-*"])
                .events([Event::RequestHeaders])
                .timeout(Duration::from_millis(2000)),
        )
        .route(route)
        .wait_for_agents(Duration::from_secs(10))
        .shutdown_grace(Duration::from_secs(5))
        .render()
}

async fn start(agents: bool) -> (RunningProxy, Upstream, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start("backend").await;
    let path = dir.path().join("sentinel.kdl");
    let text = config_text(dir.path(), upstream.addr, agents);
    let config = sentinel::config::parse(&text, &path).expect("valid config");
    let proxy = RunningProxy::start(config, None).await.expect("starts");
    (proxy, upstream, dir)
}

#[tokio::test]
async fn listeners_refuse_connections_until_the_routed_agents_are_connected() {
    let (proxy, _upstream, dir) = start(true).await;
    let http = proxy.http_addresses()[0];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let early = TcpStream::connect(http).await;
    assert_eq!(
        early.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused),
        "no agent yet: the connection is refused, not accepted to be answered 503"
    );
    let stream = UnixStream::connect(dir.path().join("agents.sock"))
        .await
        .unwrap();
    let mut agent = TestAgent {
        framed: Framed::new(Box::new(stream), FrameCodec::new()),
        encoding: Encoding::Json,
    };
    let response = agent.register(RegistrationRequest::new("waf-1")).await;
    assert!(matches!(response, RegistrationResponse::Accepted { .. }));
    // Refused until it opens; any other error is a failure at once.
    let opened = try_wait_for("the listener to open", Duration::from_secs(5), || async {
        match TcpStream::connect(http).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(false),
            Err(e) => Err(e),
        }
    });
    if let Err(e) = opened.await {
        panic!("the listener did not open once the agent registered: {e}");
    }
    drop(agent.framed.next());
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_connection_accepted_before_shutdown_is_answered_not_reset() {
    let (proxy, upstream, _dir) = start(false).await;
    let http = proxy.http_addresses()[0];
    // The listener opens at once: no route consults an agent.
    let mut early = TcpStream::connect(http).await.expect("listening");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shutdown = tokio::spawn(proxy.shutdown());
    // New connections are refused once shutdown began (waited for, not slept on).
    let refusing = "new connections to be refused after shutdown began";
    eventually(refusing, Duration::from_secs(5), || async {
        TcpStream::connect(http).await.is_err()
    })
    .await;
    early
        .write_all(b"GET /late HTTP/1.1\r\nhost: example.com\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), early.read_to_end(&mut answer))
        .await
        .expect("answered within 5 s")
        .expect("no reset");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(upstream.requests().len(), 1);
    shutdown.await.unwrap();
}

#[tokio::test]
async fn connections_still_in_the_accept_queue_at_shutdown_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start("backend").await;
    let text = config_text(dir.path(), upstream.addr, false);
    let config = sentinel::config::parse(&text, &dir.path().join("s.kdl")).unwrap();
    let pool = sentinel::AgentPool::new(config.logical_agents(), config.pool);
    let state = std::sync::Arc::new(sentinel::state::ProxyState::new(
        config,
        pool,
        std::sync::Arc::new(sentinel::telemetry::Metrics::default()),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Completed by the kernel, never accepted: they sit in the accept queue.
    let mut queued = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /queued HTTP/1.1\r\nhost: example.com\r\n\r\n")
            .await
            .unwrap();
        queued.push(stream);
    }
    let stop = tokio_util::sync::CancellationToken::new();
    stop.cancel();
    let serve = tokio::spawn(sentinel::http::serve(listener, state, stop));
    for mut stream in queued {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("answered within 5 s")
            .expect("not reset");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    tokio::time::timeout(Duration::from_secs(5), serve)
        .await
        .expect("serve returns once they are answered")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "closed afterwards");
    assert_eq!(upstream.requests().len(), 3);
}
