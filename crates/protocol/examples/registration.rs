//! Encodes a RegistrationRequest into a frame, shows its bytes, decodes it back, and does the
//! same for the proxy's answer and a MessagePack decision. Run with
//! `cargo run -p sentinel-agent-protocol --example registration`.

use bytes::BytesMut;
use sentinel_agent_protocol::{
    Capabilities, Decision, Encoding, FrameCodec, Message, RegistrationRequest,
    RegistrationResponse,
};
use tokio_util::codec::{Decoder, Encoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut request = RegistrationRequest::new("waf-worker-3");
    request.capabilities = Capabilities {
        handles_request_headers: true,
        handles_request_body: true,
        supports_cancellation: true,
        max_concurrent_requests: Some(100),
        ..Capabilities::default()
    };
    // A real agent would also set `auth_token`; it is left out so no secret is printed.
    request.metadata.insert("version".into(), "1.2.0".into());
    request.encodings = vec!["msgpack".into(), "json".into()];

    let response = RegistrationResponse::Accepted {
        assigned_id: "waf-worker-3-conn-7".into(),
        config: Some(serde_json::json!({ "rules_version": "3.4.0" })),
        encoding: Encoding::MessagePack,
        heartbeat_interval_ms: 10_000,
    };
    let decision = Decision::block(42, 403);

    let mut codec = FrameCodec::new();
    for (label, message, encoding) in [
        ("agent → proxy", Message::from(request), Encoding::Json),
        ("proxy → agent", Message::from(response), Encoding::Json),
        (
            "agent → proxy",
            Message::from(decision),
            Encoding::MessagePack,
        ),
    ] {
        let mut wire = BytesMut::new();
        codec.encode(message.to_frame(encoding)?, &mut wire)?;
        println!(
            "{label}: {} ({encoding}), {} bytes on the wire",
            message.message_type(),
            wire.len()
        );
        println!("  header  {}", hex(&wire[..5]));
        println!("  payload {}", printable(&wire[5..]));
        let frame = codec.decode(&mut wire)?.ok_or("incomplete frame")?;
        let decoded = Message::from_frame(&frame, encoding)?;
        assert_eq!(decoded, message);
        println!("  decoded back: {decoded:?}\n");
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => hex(bytes),
    }
}
