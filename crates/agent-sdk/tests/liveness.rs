//! Health monitoring, tested with a bare protocol peer on a real Unix socket (the real proxy
//! always pings, so it cannot play a proxy that falls silent or sends garbage): Ping is
//! answered, a silent proxy is replaced, unknown frames are ignored, and repeated undecodable
//! frames make the agent reconnect while a single one does not.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use sentinel_agent_sdk::protocol::{
    Encoding, Frame, FrameCodec, Message, MessageType, Ping, RegistrationResponse,
};
use sentinel_agent_sdk::{Disconnect, RunnerEvent};
use sentinel_agent_testkit::PATIENCE;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::Framed;

struct RawProxy {
    listener: UnixListener,
    address: String,
    _dir: tempfile::TempDir,
}

type Peer = Framed<UnixStream, FrameCodec>;

impl RawProxy {
    fn bind() -> RawProxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.sock");
        RawProxy {
            listener: UnixListener::bind(&path).unwrap(),
            address: format!("unix:{}", path.display()),
            _dir: dir,
        }
    }

    /// Accepts the next connection and accepts its registration.
    async fn accept(&self, heartbeat_interval_ms: u64) -> Peer {
        let (stream, _) = tokio::time::timeout(PATIENCE, self.listener.accept())
            .await
            .expect("the agent dials")
            .unwrap();
        let mut peer = Framed::new(stream, FrameCodec::new());
        match recv(&mut peer).await {
            Some(Message::RegistrationRequest(request)) => assert_eq!(request.agent_id, "raw-1"),
            other => panic!("expected a registration, got {other:?}"),
        }
        let accepted = RegistrationResponse::Accepted {
            assigned_id: "raw-1-conn-1".into(),
            config: None,
            encoding: Encoding::Json,
            heartbeat_interval_ms,
        };
        send(&mut peer, accepted.into()).await;
        peer
    }
}

async fn send(peer: &mut Peer, message: Message) {
    peer.send(message.to_frame(Encoding::Json).unwrap())
        .await
        .unwrap();
}

/// The next message, or `None` once the agent closed the connection.
async fn recv(peer: &mut Peer) -> Option<Message> {
    match tokio::time::timeout(PATIENCE, peer.next())
        .await
        .expect("a frame or EOF")
    {
        Some(Ok(frame)) => Some(Message::from_frame(&frame, Encoding::Json).unwrap()),
        _ => None,
    }
}

async fn ping_pong(peer: &mut Peer, nonce: u64) {
    send(peer, Ping { nonce }.into()).await;
    match recv(peer).await {
        Some(Message::Pong(pong)) => assert_eq!(pong.nonce, nonce),
        other => panic!("expected Pong {nonce}, got {other:?}"),
    }
}

#[tokio::test]
async fn answers_ping_and_replaces_a_silent_proxy() {
    let proxy = RawProxy::bind();
    let mut running = run(
        Probe::default(),
        fast_config("raw-1", &[proxy.address.as_str()]),
    );
    let heartbeat = Duration::from_millis(100);
    let mut first = proxy.accept(heartbeat.as_millis() as u64).await;
    // The Ping is the last frame the agent hears; it is sent after this instant.
    let silent_since = Instant::now();
    ping_pong(&mut first, 5).await;
    // From now on this "proxy" says nothing: after 3 heartbeat intervals the agent gives up.
    assert!(
        recv(&mut first).await.is_none(),
        "the agent closes the silent connection"
    );
    assert!(
        silent_since.elapsed() >= heartbeat * 3,
        "not before 3 intervals of silence"
    );
    let (ended, reason) = running.next_disconnect().await;
    assert!(matches!(reason, Disconnect::Silent(_)), "{ended:?}");
    let mut second = proxy.accept(0).await;
    ping_pong(&mut second, 6).await;
}

#[tokio::test]
async fn repeated_undecodable_frames_force_a_reconnect_single_ones_do_not() {
    let proxy = RawProxy::bind();
    let mut running = run(
        Probe::default(),
        fast_config("raw-1", &[proxy.address.as_str()]),
    );
    let mut peer = proxy.accept(0).await;
    let garbage = || Frame::new(MessageType::RequestHeaders, &b"not json"[..]);

    // Unknown types are ignored; two bad frames in a row are tolerated.
    peer.send(Frame {
        type_byte: 0x77,
        payload: "{}".into(),
    })
    .await
    .unwrap();
    peer.send(garbage()).await.unwrap();
    peer.send(garbage()).await.unwrap();
    ping_pong(&mut peer, 1).await;
    // The good frame reset the count: two more are still tolerated, the third is not.
    peer.send(garbage()).await.unwrap();
    peer.send(garbage()).await.unwrap();
    ping_pong(&mut peer, 2).await;
    for _ in 0..3 {
        peer.send(garbage()).await.unwrap();
    }
    assert!(
        recv(&mut peer).await.is_none(),
        "the agent closes the connection"
    );
    let (ended, _) = running.next_disconnect().await;
    assert!(
        matches!(&ended, RunnerEvent::Disconnected { reason: Disconnect::Protocol(why), .. } if why.contains("3 undecodable frames")),
        "{ended:?}"
    );
    let mut again = proxy.accept(0).await;
    ping_pong(&mut again, 3).await;
}
