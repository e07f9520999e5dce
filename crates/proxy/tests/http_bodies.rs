//! Body inspection end to end: request and response chunks shown to agents and replaced by
//! them (with a correct length), the per-route inspection limit with `reject` (413) and
//! `forward`, and bodies nobody inspects streamed rather than buffered.

mod common;
mod http_support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use http_support::*;
use hyper::body::Frame;
use sentinel::config::BodyOverflow;
use sentinel::config::FailureMode::Closed;
use sentinel_agent_protocol::*;

fn body_config(
    up: &Upstream,
    events: &[&str],
    limit: usize,
    overflow: BodyOverflow,
) -> sentinel::config::Config {
    let mut route = route("default", "/", "backend", &["waf"]);
    route.max_body_inspect = limit;
    route.body_overflow = overflow;
    config(
        vec![upstream("backend", &[up.addr])],
        vec![agent("waf", events, Closed, WAIT)],
        vec![route],
    )
}

/// Chunks an agent received, in order.
type Chunks = Arc<Mutex<Vec<BodyChunk>>>;

/// An agent that wants every body and replaces each chunk with `rewrite(chunk)`.
async fn rewriting_agent(h: &Harness, rewrite: fn(&[u8]) -> Vec<u8>) -> (ScriptedAgent, Chunks) {
    let chunks: Chunks = Arc::default();
    let log = chunks.clone();
    let agent = ScriptedAgent::start(h, "waf-1", move |m| match m {
        Message::RequestHeaders(e) => reply(Decision::continue_(e.request_id)),
        Message::ResponseHeaders(e) => reply(Decision::continue_(e.request_id)),
        Message::RequestBodyChunk(c) | Message::ResponseBodyChunk(c) => {
            log.lock().unwrap().push(c.clone());
            let mut d = if c.is_last {
                Decision::allow(c.request_id)
            } else {
                Decision::continue_(c.request_id)
            };
            d.body = Some(Bytes::from(rewrite(&c.data)));
            reply(d)
        }
        _ => None,
    })
    .await;
    h.proxy.wait_for_connections(1).await;
    (agent, chunks)
}

fn shout(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_ascii_uppercase();
    out.push(b'!');
    out
}

fn upper(data: &[u8]) -> Vec<u8> {
    data.to_ascii_uppercase()
}

#[tokio::test]
async fn request_chunks_are_inspected_and_replaced_before_forwarding() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(body_config(
        &up,
        &["request_headers", "request_body"],
        1 << 20,
        BodyOverflow::Reject,
    ))
    .await;
    let (_agent, chunks) = rewriting_agent(&h, shout).await;

    // Larger than one chunk, so it arrives in several.
    let original: Vec<u8> = b"hello world "
        .iter()
        .copied()
        .cycle()
        .take(150_000)
        .collect();
    let request = http::Request::post(h.url("/upload"))
        .body(Full::new(Bytes::from(original.clone())))
        .unwrap();
    let got = send(request).await;
    assert_eq!(got.status, 200);

    let chunks = chunks.lock().unwrap().clone();
    assert!(
        chunks.len() >= 3,
        "150 000 bytes come in chunks of at most 64 KiB"
    );
    let seen: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
    assert_eq!(seen, original, "the agent saw the whole body, in order");
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.chunk_index, i as u64);
        assert_eq!(chunk.is_last, i == chunks.len() - 1);
    }
    let expected: Vec<u8> = chunks.iter().flat_map(|c| shout(&c.data)).collect();
    let upstream_saw = up.last();
    assert_eq!(upstream_saw.body, expected, "every chunk replaced");
    assert_eq!(
        upstream_saw.headers["content-length"],
        expected.len().to_string().as_str(),
        "content-length follows the replacement"
    );
    assert_eq!(got.body, expected, "the upstream echoed what it got");
}

#[tokio::test]
async fn response_chunks_are_inspected_and_replaced() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(body_config(
        &up,
        &["response_body"],
        1 << 20,
        BodyOverflow::Reject,
    ))
    .await;
    let (_agent, chunks) = rewriting_agent(&h, upper).await;
    let got = get(&h.url("/size/100000")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, vec![b'A'; 100_000]);
    assert_eq!(got.headers["content-length"], "100000");
    let chunks = chunks.lock().unwrap();
    assert!(chunks.last().unwrap().is_last);
    assert_eq!(chunks.iter().map(|c| c.data.len()).sum::<usize>(), 100_000);
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_rejected_with_413() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(body_config(
        &up,
        &["request_headers", "request_body"],
        16,
        BodyOverflow::Reject,
    ))
    .await;
    let (_agent, _chunks) = rewriting_agent(&h, upper).await;

    // Declared too large.
    let got = post(&h.url("/upload"), &[b'x'; 100]).await;
    assert_eq!(got.status, 413);
    // Found too large while reading a chunked body.
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"0123456789"))),
        Ok(Frame::data(Bytes::from_static(b"0123456789"))),
    ];
    let request = http::Request::post(h.url("/upload"))
        .body(StreamBody::new(futures::stream::iter(frames)))
        .unwrap();
    let response = tokio::time::timeout(
        WAIT,
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http()
            .request(request),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 413);
    assert!(
        up.requests().is_empty(),
        "nothing reaches the upstream uninspected"
    );

    // Within the limit it goes through.
    let got = post(&h.url("/upload"), b"sixteen bytes ok").await;
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "SIXTEEN BYTES OK")
    );
}

#[tokio::test]
async fn beyond_the_limit_forward_sends_the_rest_uninspected() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(body_config(
        &up,
        &["request_headers", "request_body"],
        16,
        BodyOverflow::Forward,
    ))
    .await;
    let (_agent, chunks) = rewriting_agent(&h, upper).await;
    let body: &'static [u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let got = post(&h.url("/upload"), body).await;
    assert_eq!(got.status, 200);
    let chunks = chunks.lock().unwrap().clone();
    let seen: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
    assert_eq!(
        seen,
        &body[..16],
        "the agent saw exactly the first max-body-inspect bytes"
    );
    assert!(
        chunks.last().unwrap().is_last,
        "the last inspected chunk is marked last"
    );
    assert_eq!(
        up.last().body,
        Bytes::from_static(b"ABCDEFGHIJKLMNOPqrstuvwxyz0123456789"),
        "inspected part replaced, the rest forwarded as sent"
    );
}

#[tokio::test]
async fn a_response_body_over_the_limit_under_reject_is_not_delivered() {
    let up = Upstream::start("backend").await;
    let h = Harness::start(body_config(
        &up,
        &["response_body"],
        16,
        BodyOverflow::Reject,
    ))
    .await;
    let (_agent, _chunks) = rewriting_agent(&h, upper).await;
    assert_eq!(get(&h.url("/size/100")).await.status, 502);
    assert_eq!(get(&h.url("/size/16")).await.text(), "A".repeat(16));
}

#[tokio::test]
async fn bodies_nobody_inspects_are_streamed() {
    // An upstream that sends the first part of its body, then waits for the test to release
    // the rest: the client can only read the first part if the proxy streams it.
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let release_rx = Arc::new(Mutex::new(Some(release_rx)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |_request| {
            let release = release_rx.lock().unwrap().take();
            async move {
                let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
                tokio::spawn(async move {
                    let _ = tx
                        .send(Ok(Frame::data(Bytes::from_static(b"first;"))))
                        .await;
                    if let Some(release) = release {
                        let _ = release.await;
                    }
                    let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"rest")))).await;
                });
                let body = StreamBody::new(tokio_stream_from(rx));
                Ok::<_, Infallible>(http::Response::new(body))
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .await;
    });
    let (h, _waf) = behind_an_allowing_waf(upstream_addr).await;

    let response = tokio::time::timeout(
        WAIT,
        client().request(
            http::Request::get(h.url("/stream"))
                .body(Full::default())
                .unwrap(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = tokio::time::timeout(WAIT, body.frame())
        .await
        .expect("the first part arrives before the upstream finished")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first;");
    release_tx.send(()).unwrap();
    let rest = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "rest");
}

/// The proxy in front of the upstream at `addr`, every request passing a WAF agent that
/// allows it (connected once this returns).
async fn behind_an_allowing_waf(addr: std::net::SocketAddr) -> (Harness, ScriptedAgent) {
    let h = Harness::start(config(
        vec![upstream("backend", &[addr])],
        vec![agent("waf", &["request_headers"], Closed, WAIT)],
        vec![route("default", "/", "backend", &["waf"])],
    ))
    .await;
    let waf = ScriptedAgent::start(&h, "waf-1", |m| reply(Decision::allow(m.request_id()?))).await;
    h.proxy.wait_for_connections(1).await;
    (h, waf)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn request_bodies_nobody_inspects_are_streamed() {
    // The upstream reports the first part of the request body while the client still holds
    // the rest back: possible only if the proxy forwards the body as it comes.
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service =
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let first_tx = first_tx.clone();
                async move {
                    let mut body = request.into_body();
                    let mut all = Vec::new();
                    while let Some(Ok(frame)) = body.frame().await {
                        if let Ok(data) = frame.into_data() {
                            let _ = first_tx.send(data.clone());
                            all.extend_from_slice(&data);
                        }
                    }
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(all))))
                }
            });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .await;
    });
    let (h, _waf) = behind_an_allowing_waf(upstream_addr).await;

    let (body_tx, body_rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
    let request = http::Request::post(h.url("/upload"))
        .body(StreamBody::new(tokio_stream_from(body_rx)))
        .unwrap();
    let call = tokio::spawn(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http()
            .request(request),
    );
    body_tx
        .send(Ok(Frame::data(Bytes::from_static(b"first;"))))
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, first_rx.recv())
        .await
        .expect("the upstream got the first part while the client held the rest")
        .unwrap();
    assert_eq!(first, "first;");
    body_tx
        .send(Ok(Frame::data(Bytes::from_static(b"rest"))))
        .await
        .unwrap();
    drop(body_tx);
    let response = tokio::time::timeout(WAIT, call)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "first;rest");
}
