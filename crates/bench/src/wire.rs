//! The messages every benchmark sends: a RequestHeaders event with 10 request headers (what a
//! browser sends), the Decision the bench agent answers with (the echo agent's: allow plus one
//! request and one response header), and a 4 KiB body. Baselines send frames of exactly the
//! encoded sizes of these, so a ratio compares like with like.

use bytes::{BufMut, Bytes, BytesMut};
use sentinel_agent_protocol::{
    Decision, Encoding, HeaderOp, Message, RequestHeaders, FRAME_HEADER_LEN,
};

/// The ten request headers of every benchmark request.
pub const HEADERS: [(&str, &str); 10] = [
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

/// A RequestHeaders event with [`HEADERS`].
pub fn request_headers(request_id: u64) -> RequestHeaders {
    RequestHeaders {
        request_id,
        method: "GET".into(),
        uri: "/catalog/item/42?ref=home".into(),
        version: "HTTP/1.1".into(),
        headers: HEADERS
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        client_addr: "203.0.113.7:51234".into(),
        route: "default".into(),
        has_body: false,
    }
}

/// The decision the bench agent answers with (the same as the echo agent's).
pub fn decision(request_id: u64) -> Decision {
    let mut decision = Decision::allow(request_id);
    decision.request_headers.push(HeaderOp::Set {
        name: "x-echo-agent".into(),
        value: "bench-1".into(),
    });
    decision.response_headers.push(HeaderOp::Set {
        name: "x-echo-agent".into(),
        value: "bench-1".into(),
    });
    decision
}

/// Whole-frame sizes (length prefix included) of the request event and of its decision.
pub fn frame_sizes(encoding: Encoding) -> (usize, usize) {
    // A large id, so the sizes are those of a busy connection.
    let id = 1_000_000;
    let size = |m: Message| {
        FRAME_HEADER_LEN
            + m.to_frame(encoding)
                .expect("sample messages encode")
                .payload
                .len()
    };
    (
        size(Message::from(request_headers(id))),
        size(Message::from(decision(id))),
    )
}

/// A well-formed frame of `total` bytes (length prefix included) with filler payload.
pub fn filler_frame(total: usize, type_byte: u8) -> Bytes {
    let total = total.max(FRAME_HEADER_LEN);
    let mut out = BytesMut::with_capacity(total);
    out.put_u32((total - 4) as u32);
    out.put_u8(type_byte);
    out.resize(total, b'x');
    out.freeze()
}

/// A 4 KiB request body that no built-in WAF rule matches (form-encoded prose).
pub fn clean_body() -> Vec<u8> {
    let sentence = b"comment=the+quick+brown+fox+jumps+over+the+lazy+dog+again+and+again&";
    sentence.iter().copied().cycle().take(4096).collect()
}
