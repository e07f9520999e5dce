//! Codec micro-benchmarks: encode (typed message → payload → framed bytes) and decode (framed
//! bytes → frame → typed message) of each hot message — RequestHeaders with 10 headers, a
//! 4 KiB RequestBodyChunk, ResponseHeaders, the echo agent's Decision, a block Decision with an
//! audit record, Cancel and Ping — in JSON and in MessagePack.
//!
//! `cargo bench -p sentinel-bench --bench codec`

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sentinel_agent_protocol::{
    Audit, BodyChunk, Cancel, Decision, Encoding, FrameCodec, Message, Ping, ResponseHeaders,
};
use tokio_util::codec::{Decoder, Encoder};

/// The benchmark's own request and decision, shared with the bench binary.
#[path = "../src/wire.rs"]
#[allow(dead_code)]
mod wire;

fn hot_messages() -> Vec<(&'static str, Message)> {
    let allow = wire::decision(1_000_000);
    let mut block = Decision::block(1_000_000, 403);
    block.audit = Some(Audit {
        tags: vec!["sqli".into()],
        rule_ids: vec!["942100".into()],
        reason: Some("SQL injection in query".into()),
    });
    vec![
        (
            "request_headers_10",
            Message::from(wire::request_headers(1_000_000)),
        ),
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
