//! The connection over an in-memory stream: what the agent sent right behind its registration
//! is handled before anything else is read, and closing the connection ends the agent's stream.

use std::time::Duration;

use sentinel_agent_protocol::io::{BoxedStream, FrameStream};
use sentinel_agent_protocol::{Capabilities, Encoding, FrameCodec, Message, Ping, Pong};
use tokio::io::{AsyncWriteExt, DuplexStream};

use super::{AgentConnection, ConnectionIdentity, ConnectionSettings};
use crate::transport::Transport;

fn identity() -> ConnectionIdentity {
    ConnectionIdentity {
        assigned_id: "waf-conn-1".into(),
        agent_id: "waf".into(),
        transport: Transport::Uds,
        peer: "uds".into(),
        capabilities: Capabilities::default(),
        metadata: Default::default(),
        encoding: Encoding::Json,
    }
}

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        heartbeat_interval: Duration::from_secs(60),
        write_timeout: Duration::from_secs(5),
        max_frame_length: 1024,
        default_max_in_flight: 4,
        max_in_flight_limit: 8,
    }
}

fn ping_bytes(nonce: u64) -> Vec<u8> {
    let frame = Message::Ping(Ping { nonce })
        .to_frame(Encoding::Json)
        .unwrap();
    let mut out = bytes::BytesMut::new();
    tokio_util::codec::Encoder::encode(&mut FrameCodec::new(), frame, &mut out).unwrap();
    out.to_vec()
}

/// A connection started on a stream whose first frame (standing in for the registration) has
/// been read, with `behind` still buffered; and the agent's end.
async fn connection_with_buffered(
    behind: &[u8],
) -> (std::sync::Arc<AgentConnection>, DuplexStream) {
    let (proxy_end, mut agent_end) = tokio::io::duplex(16 * 1024);
    let mut sent = ping_bytes(1);
    sent.extend_from_slice(behind);
    agent_end.write_all(&sent).await.unwrap();
    let proxy_end: BoxedStream = Box::new(proxy_end);
    let mut stream = FrameStream::new(proxy_end, FrameCodec::new());
    assert!(stream.read_frame().await.unwrap().is_some());
    let connection = AgentConnection::start(identity(), None, stream, settings(), |_, _| {});
    (connection, agent_end)
}

#[tokio::test]
async fn frames_sent_behind_the_registration_are_answered_without_more_bytes() {
    let (connection, agent_end) = connection_with_buffered(&ping_bytes(7)).await;
    let mut agent = FrameStream::new(agent_end, FrameCodec::new());
    let answer = tokio::time::timeout(Duration::from_secs(5), agent.read_frame())
        .await
        .expect("the buffered Ping is answered at once")
        .unwrap()
        .unwrap();
    assert_eq!(
        Message::from_frame(&answer, Encoding::Json).unwrap(),
        Message::Pong(Pong { nonce: 7 })
    );
    assert!(!connection.is_closed());
}

#[tokio::test]
async fn closing_the_connection_ends_the_agents_stream() {
    let (connection, agent_end) = connection_with_buffered(&[]).await;
    connection.close();
    let mut agent = FrameStream::new(agent_end, FrameCodec::new());
    let end = tokio::time::timeout(Duration::from_secs(5), agent.read_frame())
        .await
        .expect("the writer shuts its half down");
    assert!(end.unwrap().is_none());
}
