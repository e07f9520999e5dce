//! Codec micro-benchmarks: encode (typed message → payload → framed bytes) and decode (framed
//! bytes → frame → typed message) of each hot message — RequestHeaders with 10 headers, a
//! 4 KiB RequestBodyChunk, ResponseHeaders, the echo agent's Decision, a block Decision with an
//! audit record, Cancel and Ping — in JSON and in MessagePack.
//!
//! `cargo bench -p sentinel-bench --bench codec`

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sentinel_agent_protocol::{
    Audit, BodyChunk, Cancel, Decision, Encoding, FrameCodec, HeaderOp, Message, Ping,
    RequestHeaders, ResponseHeaders,
};
use tokio_util::codec::{Decoder, Encoder};

fn request_headers() -> RequestHeaders {
    let headers = [
        ("host", "shop.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("referer", "https://shop.example.com/catalog?page=2"),
        ("cookie", "session=6f1c2a9e0b7d4e8f; theme=dark"),
        ("x-request-id", "0d6b8a52-7c2f-4f1e-9a3b-5e8d1c0f2a47"),
        ("x-forwarded-for", "203.0.113.7"),
        ("cache-control", "no-cache"),
    ];
    RequestHeaders {
        request_id: 1_000_000,
        method: "GET".into(),
        uri: "/catalog/item/42?ref=home".into(),
        version: "HTTP/1.1".into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        client_addr: "203.0.113.7:51234".into(),
        route: "default".into(),
        has_body: false,
    }
}

fn hot_messages() -> Vec<(&'static str, Message)> {
    let mut allow = Decision::allow(1_000_000);
    allow.request_headers.push(HeaderOp::Set {
        name: "x-echo-agent".into(),
        value: "echo-1".into(),
    });
    allow.response_headers.push(HeaderOp::Set {
        name: "x-echo-agent".into(),
        value: "echo-1".into(),
    });
    let mut block = Decision::block(1_000_000, 403);
    block.audit = Some(Audit {
        tags: vec!["sqli".into()],
        rule_ids: vec!["942100".into()],
        reason: Some("SQL injection in query".into()),
    });
    vec![
        ("request_headers_10", Message::from(request_headers())),
        (
            "request_body_4k",
            Message::RequestBodyChunk(BodyChunk {
                request_id: 1_000_000,
                chunk_index: 0,
                data: Bytes::from(vec![b'a'; 4096]),
                is_last: true,
            }),
        ),
        (
            "response_headers",
            Message::from(ResponseHeaders {
                request_id: 1_000_000,
                status: 200,
                headers: vec![
                    ("content-type".into(), "text/html; charset=utf-8".into()),
                    ("content-length".into(), "5120".into()),
                    ("cache-control".into(), "private, max-age=0".into()),
                ],
                has_body: true,
            }),
        ),
        ("decision_allow", Message::from(allow)),
        ("decision_block_audit", Message::from(block)),
        (
            "cancel",
            Message::from(Cancel {
                request_id: 1_000_000,
                reason: "client_disconnected".into(),
            }),
        ),
        ("ping", Message::from(Ping { nonce: 7 })),
    ]
}

fn codec(c: &mut Criterion) {
    for encoding in [Encoding::Json, Encoding::MessagePack] {
        let mut group = c.benchmark_group(format!("codec/{encoding}"));
        for (name, message) in hot_messages() {
            let mut wire = BytesMut::new();
            FrameCodec::new()
                .encode(message.to_frame(encoding).unwrap(), &mut wire)
                .unwrap();
            let wire = wire.freeze();
            group.throughput(Throughput::Bytes(wire.len() as u64));
            group.bench_function(format!("encode/{name}"), |b| {
                let mut codec = FrameCodec::new();
                let mut out = BytesMut::with_capacity(8192);
                b.iter(|| {
                    out.clear();
                    let frame = black_box(&message).to_frame(encoding).unwrap();
                    codec.encode(frame, &mut out).unwrap();
                    black_box(out.len())
                })
            });
            group.bench_function(format!("decode/{name}"), |b| {
                let mut codec = FrameCodec::new();
                b.iter(|| {
                    let mut input = BytesMut::from(&black_box(&wire)[..]);
                    let frame = codec.decode(&mut input).unwrap().unwrap();
                    black_box(Message::from_frame(&frame, encoding).unwrap())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
