//! The bench's minimal SPOA (HAProxy SPOE agent): accepts HAProxy's connections on a Unix
//! socket, does the HELLO handshake (SPOP 2.0, `pipelining` when HAProxy offers it), answers
//! every NOTIFY with an ACK, and answers HAPROXY-DISCONNECT with AGENT-DISCONNECT. Two
//! messages are understood: `check-auth` (argument `token`, the Authorization header) and
//! `check-body` (argument `body`, `req.body`); each gets `set-var(txn.ok)` true or false from
//! [`super::check`]. Anything else HAProxy sends is answered with an ACK without actions.
//! Bench-only: never shipped. Frame bytes live in [`super::spop`].

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::check::{BearerCheck, BodyCheck};
use super::spop::{
    status, Ack, Action, AgentHello, Disconnect, Frame, HaproxyHello, Notify, SpopError, TypedData,
    VarScope, MIN_FRAME_SIZE,
};

/// Largest frame this agent accepts (HAProxy's default is tune.bufsize - 4 = 16380).
const MAX_FRAME_SIZE: u32 = 16380;
/// How long HAProxy has to send its HELLO.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle connection is closed after this (HAProxy's `timeout idle` is shorter).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What the agent decides with.
#[derive(Clone)]
pub struct Checks {
    /// For `check-auth`.
    pub bearer: BearerCheck,
    /// For `check-body`.
    pub body: BodyCheck,
}

/// `peers spoa`: serves SPOP on the Unix socket `path` until killed.
pub fn run(path: &Path, checks: Checks) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("binding the SPOA socket {}", path.display()))?;
        loop {
            let (stream, _) = listener.accept().await?;
            let checks = checks.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(stream, &checks).await {
                    eprintln!("spoa: connection closed: {e:#}");
                }
            });
        }
    })
}

/// Why a connection ends.
enum End {
    /// HAProxy closed it or said goodbye.
    Normal,
    /// The agent must send AGENT-DISCONNECT with this status, then close.
    Refuse(u32, String),
}

impl From<SpopError> for End {
    fn from(error: SpopError) -> End {
        End::Refuse(error.status_code(), error.to_string())
    }
}

/// One HAProxy connection, from HELLO to close.
pub async fn serve(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    checks: &Checks,
) -> anyhow::Result<()> {
    let mut input = BytesMut::with_capacity(MAX_FRAME_SIZE as usize);
    let mut output = BytesMut::with_capacity(MAX_FRAME_SIZE as usize);
    let end = match handshake(&mut stream, &mut input, &mut output).await? {
        Handshake::Refused(end) => end,
        Handshake::HealthCheck => return Ok(()),
        Handshake::Done(max_frame_size) => {
            exchange(&mut stream, &mut input, &mut output, max_frame_size, checks).await?
        }
    };
    if let End::Refuse(status_code, message) = end {
        output.clear();
        Frame::AgentDisconnect(Disconnect {
            status_code,
            message,
        })
        .encode(&mut output);
        stream.write_all(&output).await?;
    }
    Ok(())
}

enum Handshake {
    Done(u32),
    HealthCheck,
    Refused(End),
}

async fn handshake(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    input: &mut BytesMut,
    output: &mut BytesMut,
) -> anyhow::Result<Handshake> {
    let first = tokio::time::timeout(HELLO_TIMEOUT, next_frame(stream, input, MAX_FRAME_SIZE))
        .await
        .unwrap_or(Ok(None));
    let hello = match first {
        Ok(Some(Frame::HaproxyHello(hello))) => hello,
        Ok(None) => {
            return Ok(Handshake::Refused(End::Refuse(
                status::TIMEOUT,
                "no HAPROXY-HELLO".into(),
            )))
        }
        Ok(Some(_)) => {
            return Ok(Handshake::Refused(End::Refuse(
                status::INVALID,
                "expected HAPROXY-HELLO".into(),
            )))
        }
        Err(e) => return Ok(Handshake::Refused(e.into())),
    };
    let reply = match agent_hello(&hello) {
        Ok(reply) => reply,
        Err(end) => return Ok(Handshake::Refused(end)),
    };
    let max_frame_size = reply.max_frame_size;
    output.clear();
    Frame::AgentHello(reply).encode(output);
    stream.write_all(output).await?;
    Ok(if hello.healthcheck {
        Handshake::HealthCheck
    } else {
        Handshake::Done(max_frame_size)
    })
}

/// The AGENT-HELLO for `hello`, or why the agent refuses it.
fn agent_hello(hello: &HaproxyHello) -> Result<AgentHello, End> {
    let speaks_2 = hello
        .supported_versions
        .split(',')
        .any(|v| v.trim().split('.').next() == Some("2"));
    if !speaks_2 {
        return Err(End::Refuse(
            status::BAD_VERSION,
            format!("unsupported versions {:?}", hello.supported_versions),
        ));
    }
    let max_frame_size = hello.max_frame_size.min(MAX_FRAME_SIZE);
    if max_frame_size < MIN_FRAME_SIZE {
        return Err(End::Refuse(
            status::BAD_FRAME_SIZE,
            format!("max-frame-size {} is below 256", hello.max_frame_size),
        ));
    }
    let pipelining = hello
        .capabilities
        .split(',')
        .any(|c| c.trim() == "pipelining");
    Ok(AgentHello {
        version: "2.0".into(),
        max_frame_size,
        capabilities: if pipelining { "pipelining" } else { "" }.into(),
    })
}

/// Reads until one whole frame is buffered; `None` when the peer closed first.
async fn next_frame(
    stream: &mut (impl AsyncRead + Unpin),
    input: &mut BytesMut,
    max_frame_size: u32,
) -> Result<Option<Frame>, SpopError> {
    loop {
        if let Some(frame) = Frame::decode(input, max_frame_size)? {
            return Ok(Some(frame));
        }
        match stream.read_buf(input).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// NOTIFY/ACK until HAProxy disconnects. Every frame already buffered is answered before one
/// write, so pipelined NOTIFYs cost one write per batch.
async fn exchange(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    input: &mut BytesMut,
    output: &mut BytesMut,
    max_frame_size: u32,
    checks: &Checks,
) -> anyhow::Result<End> {
    loop {
        output.clear();
        loop {
            let frame = match Frame::decode(input, max_frame_size) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Ok(e.into()),
            };
            match frame {
                Frame::Notify(notify) => Frame::Ack(answer(&notify, checks)).encode(output),
                Frame::HaproxyDisconnect(_) => {
                    stream.write_all(output).await?;
                    return Ok(End::Refuse(status::NORMAL, "bye".into()));
                }
                Frame::Unknown(_) => {}
                _ => {
                    return Ok(End::Refuse(
                        status::INVALID,
                        "unexpected frame after HELLO".into(),
                    ))
                }
            }
        }
        if !output.is_empty() {
            stream.write_all(output).await?;
        }
        match tokio::time::timeout(IDLE_TIMEOUT, stream.read_buf(input)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(End::Normal),
            Ok(Ok(_)) => {}
            Err(_) => return Ok(End::Refuse(status::TIMEOUT, "idle".into())),
        }
    }
}

/// The ACK for one NOTIFY: `txn.ok` for each message the agent knows.
pub fn answer(notify: &Notify, checks: &Checks) -> Ack {
    let mut actions = Vec::new();
    for message in &notify.messages {
        let verdict = match message.name.as_ref() {
            b"check-auth" => Some(
                message
                    .arg("token")
                    .and_then(TypedData::as_bytes)
                    .is_some_and(|token| checks.bearer.allows(token)),
            ),
            // No body (a NULL sample) has nothing to match.
            b"check-body" => Some(match message.arg("body") {
                None | Some(TypedData::Null) => true,
                Some(body) => body.as_bytes().is_some_and(|b| checks.body.allows(b)),
            }),
            _ => None,
        };
        if let Some(ok) = verdict {
            actions.push(Action::SetVar {
                scope: VarScope::Transaction,
                name: Bytes::from_static(b"ok"),
                value: TypedData::Bool(ok),
            });
        }
    }
    Ack {
        stream_id: notify.stream_id,
        frame_id: notify.frame_id,
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::spop::Message;
    use tokio::net::UnixStream;

    const TOKEN: &str = "bench-token";

    fn checks() -> Checks {
        Checks {
            bearer: BearerCheck::new(TOKEN),
            body: BodyCheck::default(),
        }
    }

    fn hello(versions: &str, max_frame_size: u32) -> Frame {
        Frame::HaproxyHello(HaproxyHello {
            supported_versions: versions.into(),
            max_frame_size,
            capabilities: "pipelining,async".into(),
            healthcheck: false,
            engine_id: None,
        })
    }

    fn notify(stream_id: u64, name: &'static str, arg: &'static str, value: TypedData) -> Frame {
        Frame::Notify(Notify {
            stream_id,
            frame_id: 1,
            messages: vec![Message {
                name: Bytes::from_static(name.as_bytes()),
                args: vec![(Bytes::from_static(arg.as_bytes()), value)],
            }],
        })
    }

    /// Plays HAProxy against [`serve`] over a real socket pair.
    struct Haproxy {
        stream: UnixStream,
        input: BytesMut,
        agent: tokio::task::JoinHandle<anyhow::Result<()>>,
    }

    impl Haproxy {
        fn start() -> Haproxy {
            let (ours, theirs) = UnixStream::pair().expect("socket pair");
            let agent = tokio::spawn(async move { serve(theirs, &checks()).await });
            Haproxy {
                stream: ours,
                input: BytesMut::new(),
                agent,
            }
        }

        async fn send(&mut self, frames: &[Frame]) {
            let mut out = BytesMut::new();
            for frame in frames {
                frame.encode(&mut out);
            }
            self.stream.write_all(&out).await.expect("write");
        }

        async fn receive(&mut self) -> Option<Frame> {
            let read = next_frame(&mut self.stream, &mut self.input, 1 << 20);
            tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .expect("agent answered in time")
                .expect("valid frame")
        }
    }

    fn ok_of(frame: Option<Frame>) -> (u64, bool) {
        let Some(Frame::Ack(ack)) = frame else {
            panic!("expected ACK, got {frame:?}");
        };
        match ack.actions.as_slice() {
            [Action::SetVar {
                scope: VarScope::Transaction,
                name,
                value: TypedData::Bool(ok),
            }] if name.as_ref() == b"ok" => (ack.stream_id, *ok),
            other => panic!("unexpected actions {other:?}"),
        }
    }

    #[tokio::test]
    async fn hello_notify_ack_disconnect() {
        let mut haproxy = Haproxy::start();
        haproxy.send(&[hello("2.0", 16380)]).await;
        let Some(Frame::AgentHello(reply)) = haproxy.receive().await else {
            panic!("no AGENT-HELLO");
        };
        assert_eq!(reply.version, "2.0");
        assert_eq!(reply.max_frame_size, 16380);
        assert_eq!(reply.capabilities, "pipelining");
        // Pipelined NOTIFYs in one write: every one is acknowledged with its own ids.
        haproxy
            .send(&[
                notify(
                    1,
                    "check-auth",
                    "token",
                    TypedData::string("Bearer bench-token"),
                ),
                notify(2, "check-auth", "token", TypedData::string("Bearer wrong")),
                notify(3, "check-auth", "token", TypedData::Null),
                notify(
                    4,
                    "check-body",
                    "body",
                    TypedData::Binary(Bytes::from(crate::wire::clean_body())),
                ),
                notify(
                    5,
                    "check-body",
                    "body",
                    TypedData::Binary(Bytes::from_static(b"x=<script>")),
                ),
            ])
            .await;
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(ok_of(haproxy.receive().await));
        }
        assert_eq!(
            answers,
            [(1, true), (2, false), (3, false), (4, true), (5, false)]
        );
        haproxy
            .send(&[Frame::HaproxyDisconnect(Disconnect {
                status_code: 0,
                message: "stopping".into(),
            })])
            .await;
        let Some(Frame::AgentDisconnect(bye)) = haproxy.receive().await else {
            panic!("no AGENT-DISCONNECT");
        };
        assert_eq!(bye.status_code, status::NORMAL);
        assert_eq!(haproxy.receive().await, None, "agent closed the socket");
        haproxy.agent.await.expect("joined").expect("clean end");
    }

    #[tokio::test]
    async fn frame_size_is_the_smaller_of_both() {
        let mut haproxy = Haproxy::start();
        haproxy.send(&[hello("1.0, 2.0", 1024)]).await;
        let Some(Frame::AgentHello(reply)) = haproxy.receive().await else {
            panic!("no AGENT-HELLO");
        };
        assert_eq!(reply.max_frame_size, 1024);
        // A frame above the negotiated size ends the connection with status 3.
        let big = TypedData::Binary(Bytes::from(vec![b'a'; 2048]));
        haproxy.send(&[notify(9, "check-body", "body", big)]).await;
        let Some(Frame::AgentDisconnect(bye)) = haproxy.receive().await else {
            panic!("no AGENT-DISCONNECT");
        };
        assert_eq!(bye.status_code, status::TOO_BIG);
    }

    #[tokio::test]
    async fn unsupported_version_or_tiny_frames_are_refused() {
        for (versions, size, expected) in [
            ("1.0", 16380, status::BAD_VERSION),
            ("2.0", 100, status::BAD_FRAME_SIZE),
        ] {
            let mut haproxy = Haproxy::start();
            haproxy.send(&[hello(versions, size)]).await;
            let Some(Frame::AgentDisconnect(bye)) = haproxy.receive().await else {
                panic!("no AGENT-DISCONNECT for {versions} / {size}");
            };
            assert_eq!(bye.status_code, expected);
        }
    }

    #[tokio::test]
    async fn garbage_instead_of_hello_is_refused() {
        let mut haproxy = Haproxy::start();
        haproxy
            .stream
            .write_all(&[0, 0, 0, 3, 1, 0, 0])
            .await
            .expect("write");
        let Some(Frame::AgentDisconnect(bye)) = haproxy.receive().await else {
            panic!("no AGENT-DISCONNECT");
        };
        assert_eq!(bye.status_code, status::INVALID);
    }
}
