//! Agents in the request path, end to end over real sockets: a real client, the real HTTP
//! listener, agents dialing in through the real reverse listener, a real upstream. Block,
//! redirect, header operations both ways, two agents in order, failure modes with the agent
//! down, hanging or erring, and Cancel when the client goes away or another agent blocks.

mod common;
mod http_support;

use std::time::Duration;

use http_body_util::Full;
use http_support::*;
use sentinel::config::FailureMode::{Closed, Open};
use sentinel_agent_protocol::*;
use tokio::io::AsyncWriteExt;

fn one_agent_config(up: &Upstream, events: &[&str]) -> sentinel::config::Config {
    config(
        vec![upstream("backend", &[up.addr])],
        vec![agent("waf", events, Closed, WAIT)],
        vec![route("default", "/", "backend", &["waf"])],
    )
}

fn headers_of(message: &Message) -> &RequestHeaders {
    match message {
        Message::RequestHeaders(h) => h,
        other => panic!("expected RequestHeaders, got {other:?}"),
    }
}

fn has_pair(pairs: &[HeaderPair], name: &str, value: &str) -> bool {
    pairs.iter().any(|(n, v)| n == name && v == value)
}

/// The upstream `backend`; the agent `strict` (fails closed) on `/closed` and `lenient`
/// (fails open) on `/open`, both consulted on request headers with `timeout`.
async fn strict_and_lenient(up: &Upstream, timeout: Duration) -> Harness {
    Harness::start(config(
        vec![upstream("backend", &[up.addr])],
        vec![
            agent("strict", &["request_headers"], Closed, timeout),
            agent("lenient", &["request_headers"], Open, timeout),
        ],
        vec![
            route("closed", "/closed", "backend", &["strict"]),
            route("open", "/open", "backend", &["lenient"]),
        ],
    ))
    .await
}

/// The agent's next message is the Cancel of request `id` for `reason`.
async fn expect_cancel(agent: &mut ScriptedAgent, id: u64, reason: &str) {
    match agent.next().await {
        Message::Cancel(c) => assert_eq!((c.request_id, c.reason.as_str()), (id, reason)),
        other => panic!("expected Cancel, got {other:?}"),
    }
}

#[tokio::test]
async fn block_answers_with_the_agents_status_body_and_headers() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(one_agent_config(&up, &["request_headers"])).await;
    let mut waf = ScriptedAgent::start(&h, "waf-1", |m| match m {
        Message::RequestHeaders(e) if e.uri.starts_with("/admin") => {
            let mut d = Decision::new(
                e.request_id,
                Action::Block {
                    status: 451,
                    body: Some("no admin here".into()),
                    headers: vec![("x-blocked-by".into(), "waf".into())],
                },
            );
            d.response_headers = vec![HeaderOp::Add {
                name: "x-waf".into(),
                value: "checked".into(),
            }];
            reply(d)
        }
        Message::RequestHeaders(e) => reply(Decision::allow(e.request_id)),
        _ => None,
    })
    .await;
    h.proxy.wait_for_connections(1).await;

    let got = get(&h.url("/admin/users?x=1")).await;
    assert_eq!(got.status, 451);
    assert_eq!(got.text(), "no admin here");
    assert_eq!(got.headers["x-blocked-by"], "waf");
    assert_eq!(got.headers["x-waf"], "checked");
    assert!(
        up.requests().is_empty(),
        "a blocked request must not reach the upstream"
    );

    let event = waf.next().await;
    let event = headers_of(&event);
    assert_eq!(
        (
            event.method.as_str(),
            event.uri.as_str(),
            event.version.as_str()
        ),
        ("GET", "/admin/users?x=1", "HTTP/1.1")
    );
    assert_eq!(event.route, "default");
    assert!(!event.has_body);
    assert!(
        event.client_addr.starts_with("127.0.0.1:"),
        "{}",
        event.client_addr
    );
    assert!(event.headers.iter().any(|(n, _)| n == "host"));

    let got = get(&h.url("/public")).await;
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "hello from backend")
    );

    let metrics = h.metrics();
    assert!(
        metrics.contains(r#"sentinel_agent_decisions_total{agent="waf",action="block"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sentinel_http_requests_total{route="default",status="451"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn redirect_answers_with_status_and_location() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(one_agent_config(&up, &["request_headers"])).await;
    let _auth = ScriptedAgent::start(&h, "waf-1", |m| match m {
        Message::RequestHeaders(e) => reply(Decision::new(
            e.request_id,
            Action::Redirect {
                location: "https://login.example/?next=%2Fapp".into(),
                status: 307,
            },
        )),
        _ => None,
    })
    .await;
    h.proxy.wait_for_connections(1).await;
    let got = get(&h.url("/app")).await;
    assert_eq!(got.status, 307);
    assert_eq!(
        got.headers["location"],
        "https://login.example/?next=%2Fapp"
    );
    assert!(up.requests().is_empty());

    // Without a status the default is 302.
    let h2 = Harness::start(one_agent_config(&up, &["request_headers"])).await;
    let _auth = ScriptedAgent::start(&h2, "waf-1", |m| {
        reply(Decision::redirect(m.request_id()?, "/login"))
    })
    .await;
    h2.proxy.wait_for_connections(1).await;
    let got = get(&h2.url("/app")).await;
    assert_eq!(got.status, 302);
    assert_eq!(got.headers["location"], "/login");
}

#[tokio::test]
async fn header_operations_apply_to_the_upstream_request_and_the_client_response() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(one_agent_config(
        &up,
        &["request_headers", "response_headers"],
    ))
    .await;
    let mut waf = ScriptedAgent::start(&h, "waf-1", |m| match m {
        Message::RequestHeaders(e) => {
            let mut d = Decision::allow(e.request_id);
            d.request_headers = vec![
                HeaderOp::Set {
                    name: "x-user".into(),
                    value: "alice".into(),
                },
                HeaderOp::Remove {
                    name: "cookie".into(),
                },
                HeaderOp::Add {
                    name: "x-tag".into(),
                    value: "a".into(),
                },
            ];
            d.response_headers = vec![HeaderOp::Add {
                name: "x-waf".into(),
                value: "checked".into(),
            }];
            reply(d)
        }
        Message::ResponseHeaders(e) => {
            let mut d = Decision::allow(e.request_id);
            d.response_headers = vec![HeaderOp::Set {
                name: "x-upstream".into(),
                value: "rewritten".into(),
            }];
            reply(d)
        }
        _ => None,
    })
    .await;
    h.proxy.wait_for_connections(1).await;

    let request = http::Request::get(h.url("/profile"))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("x-user", "mallory")
        .body(Full::default())
        .unwrap();
    let got = send(request).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.headers["x-waf"], "checked",
        "request-phase response op applied"
    );
    assert_eq!(
        got.headers["x-upstream"], "rewritten",
        "response-phase op applied"
    );

    let seen = up.last();
    assert_eq!(
        seen.headers.get_all("x-user").iter().collect::<Vec<_>>(),
        ["alice"]
    );
    assert!(seen.headers.get("cookie").is_none());
    assert_eq!(seen.headers["x-tag"], "a");

    let request_event = waf.next().await;
    let request_event = headers_of(&request_event);
    assert!(has_pair(&request_event.headers, "cookie", "a=1"));
    assert!(
        has_pair(&request_event.headers, "cookie", "b=2"),
        "repeated headers stay repeated"
    );
    match waf.next().await {
        Message::ResponseHeaders(r) => {
            assert_eq!(
                r.request_id, request_event.request_id,
                "one request_id for both phases"
            );
            assert_eq!(r.status, 200);
            assert!(r.has_body);
            assert!(has_pair(&r.headers, "x-upstream", "backend"));
            assert!(
                !r.headers
                    .iter()
                    .any(|(n, _)| n == "x-upstream-hop" || n == "keep-alive"),
                "agents see the response without hop-by-hop headers: {:?}",
                r.headers
            );
        }
        other => panic!("expected ResponseHeaders, got {other:?}"),
    }
}

#[tokio::test]
async fn two_agents_are_consulted_in_order_and_a_block_stops_the_chain() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(config(
        vec![upstream("backend", &[up.addr])],
        vec![
            agent("first", &["request_headers"], Closed, WAIT),
            agent("second", &["request_headers"], Closed, WAIT),
        ],
        vec![route("default", "/", "backend", &["first", "second"])],
    ))
    .await;
    let mut first = ScriptedAgent::start(&h, "first-1", |m| match m {
        Message::RequestHeaders(e) if e.uri == "/blocked" => {
            reply(Decision::block(e.request_id, 403))
        }
        Message::RequestHeaders(e) => {
            let mut d = Decision::allow(e.request_id);
            d.request_headers = vec![HeaderOp::Set {
                name: "x-first".into(),
                value: "1".into(),
            }];
            reply(d)
        }
        _ => None,
    })
    .await;
    let mut second = ScriptedAgent::start(&h, "second-1", |m| match m {
        Message::RequestHeaders(e) => {
            let mut d = Decision::allow(e.request_id);
            d.request_headers = vec![HeaderOp::Set {
                name: "x-second".into(),
                value: "2".into(),
            }];
            reply(d)
        }
        _ => None,
    })
    .await;
    h.proxy.wait_for_connections(2).await;

    let got = get(&h.url("/ok")).await;
    assert_eq!(got.status, 200);
    let seen = up.last();
    assert_eq!(seen.headers["x-first"], "1");
    assert_eq!(seen.headers["x-second"], "2");
    assert_eq!(headers_of(&first.next().await).uri, "/ok");
    let to_second = second.next().await;
    assert!(
        has_pair(&headers_of(&to_second).headers, "x-first", "1"),
        "the second agent sees the first one's changes, so it was asked after it"
    );

    let got = get(&h.url("/blocked")).await;
    assert_eq!(got.status, 403);
    assert_eq!(headers_of(&first.next().await).uri, "/blocked");

    let got = get(&h.url("/after")).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        headers_of(&second.next().await).uri,
        "/after",
        "the second agent was not consulted about the blocked request"
    );
    assert_eq!(up.requests().len(), 2);
}

#[tokio::test]
async fn an_agent_waiting_for_the_body_is_cancelled_when_a_later_agent_blocks() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(config(
        vec![upstream("backend", &[up.addr])],
        vec![
            agent(
                "watcher",
                &["request_headers", "request_body"],
                Closed,
                WAIT,
            ),
            agent("blocker", &["request_headers"], Closed, WAIT),
        ],
        vec![route("default", "/", "backend", &["watcher", "blocker"])],
    ))
    .await;
    let mut watcher = ScriptedAgent::start(&h, "watcher-1", |m| match m {
        Message::RequestHeaders(e) => reply(Decision::continue_(e.request_id)),
        Message::RequestBodyChunk(c) => reply(Decision::allow(c.request_id)),
        _ => None,
    })
    .await;
    let _blocker = ScriptedAgent::start(&h, "blocker-1", |m| {
        reply(Decision::block(m.request_id()?, 403))
    })
    .await;
    h.proxy.wait_for_connections(2).await;

    let got = post(&h.url("/upload"), b"payload").await;
    assert_eq!(got.status, 403);
    let id = headers_of(&watcher.next().await).request_id;
    expect_cancel(&mut watcher, id, "blocked").await;
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn with_no_agent_connected_closed_fails_with_503_and_open_proceeds() {
    let up = Upstream::start("backend").await;
    let h = strict_and_lenient(&up, WAIT).await;
    let got = get(&h.url("/closed")).await;
    assert_eq!(got.status, 503);
    assert!(up.requests().is_empty());
    let got = get(&h.url("/open")).await;
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "hello from backend")
    );
    assert_eq!(up.requests().len(), 1);
    let metrics = h.metrics();
    assert!(
        metrics
            .contains(r#"sentinel_agent_failures_total{agent="strict",reason="no_connection"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_hanging_agent_times_out_into_its_failure_mode_and_is_cancelled() {
    let up = Upstream::start("backend").await;
    let h = strict_and_lenient(&up, Duration::from_millis(200)).await;
    let mut strict = ScriptedAgent::start(&h, "strict-1", |_| None).await;
    let mut lenient = ScriptedAgent::start(&h, "lenient-1", |_| None).await;
    h.proxy.wait_for_connections(2).await;

    assert_eq!(get(&h.url("/closed")).await.status, 503);
    assert!(up.requests().is_empty());
    assert_eq!(get(&h.url("/open")).await.status, 200);
    assert_eq!(up.requests().len(), 1);

    for agent in [&mut strict, &mut lenient] {
        let id = headers_of(&agent.next().await).request_id;
        expect_cancel(agent, id, "timeout").await;
    }
}

#[tokio::test]
async fn a_request_error_reply_applies_the_failure_mode() {
    let up = Upstream::start("backend").await;
    let h = strict_and_lenient(&up, WAIT).await;
    let error = |m: &Message| {
        Some(Message::RequestError(RequestError {
            request_id: m.request_id()?,
            code: "internal".into(),
            message: "rules not loaded".into(),
        }))
    };
    let _strict = ScriptedAgent::start(&h, "strict-1", error).await;
    let _lenient = ScriptedAgent::start(&h, "lenient-1", error).await;
    h.proxy.wait_for_connections(2).await;
    assert_eq!(get(&h.url("/closed")).await.status, 503);
    assert_eq!(get(&h.url("/open")).await.status, 200);
    assert_eq!(up.requests().len(), 1);
}

#[tokio::test]
async fn a_client_that_disconnects_gets_its_agent_work_cancelled() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(one_agent_config(&up, &["request_headers", "request_body"])).await;
    // Headers of /wait are never answered; anything else with a body wants the body.
    let mut waf = ScriptedAgent::start(&h, "waf-1", |m| match m {
        Message::RequestHeaders(e) if e.uri == "/wait" => None,
        Message::RequestHeaders(e) => reply(Decision::continue_(e.request_id)),
        Message::RequestBodyChunk(c) => reply(Decision::continue_(c.request_id)),
        _ => None,
    })
    .await;
    h.proxy.wait_for_connections(1).await;

    // Gone while the agent is deciding on the headers.
    let mut client = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    client
        .write_all(b"GET /wait HTTP/1.1\r\nhost: app.test\r\n\r\n")
        .await
        .unwrap();
    let id = headers_of(&waf.next().await).request_id;
    drop(client);
    expect_cancel(&mut waf, id, "client_disconnected").await;

    // Gone in the middle of its body, while the agent waits for the next chunk.
    let mut client = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    client
        .write_all(
            b"POST /upload HTTP/1.1\r\nhost: app.test\r\ncontent-length: 100\r\n\r\nfirst part",
        )
        .await
        .unwrap();
    let id = headers_of(&waf.next().await).request_id;
    drop(client);
    loop {
        match waf.next().await {
            Message::RequestBodyChunk(c) => assert_eq!(c.request_id, id),
            Message::Cancel(c) => {
                assert_eq!(
                    (c.request_id, c.reason.as_str()),
                    (id, "client_disconnected")
                );
                break;
            }
            other => panic!("expected a chunk or Cancel, got {other:?}"),
        }
    }
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn http2_prior_knowledge_clients_are_served_with_agents() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(one_agent_config(&up, &["request_headers"])).await;
    let mut waf = ScriptedAgent::start(&h, "waf-1", |m| {
        let mut d = Decision::allow(m.request_id()?);
        d.response_headers = vec![HeaderOp::Set {
            name: "x-waf".into(),
            value: "h2".into(),
        }];
        reply(d)
    })
    .await;
    h.proxy.wait_for_connections(1).await;

    let stream = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(connection);
    let request = http::Request::get(format!("http://app.test:{}/h2", h.addr.port()))
        .body(Full::<bytes::Bytes>::default())
        .unwrap();
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-waf"], "h2");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"hello from backend");

    let event = waf.next().await;
    let event = headers_of(&event);
    assert_eq!(
        (event.version.as_str(), event.uri.as_str()),
        ("HTTP/2.0", "/h2")
    );
    assert!(has_pair(
        &event.headers,
        "host",
        &format!("app.test:{}", h.addr.port())
    ));
    assert_eq!(
        up.last().headers["host"],
        format!("app.test:{}", h.addr.port())
    );
}
