//! [`check_registration`]: the bytes a peer sends on a fresh reverse-listener connection, through
//! the listener's handshake task (first-frame read with its size limit and timeout, parsing,
//! version, id syntax, auth, allowlist, the per-agent connection limit, the answer), on two
//! connections at once so that the limit is exercised. What is checked:
//!
//! - each connection gets exactly one well-formed RegistrationResponse first, whose outcome is
//!   the one PROTOCOL.md §1–§3 gives for the bytes, as judged by the independent
//!   [`oracle`](super::oracle) (never by the proxy's own codec or validator);
//! - an accepted registration really carried version 2, a `fuzz-1`/`fuzz-2*` id and the token;
//! - at most one connection of the id is live (the limit is 1);
//! - the token the peer sent never comes back in anything the proxy writes;
//! - once the peers hang up, every connection closes and the pool forgets the id.

use bytes::BytesMut;
use futures::StreamExt;
use sentinel_agent_protocol::{
    Frame, FrameCodec, MessageType, RegistrationErrorCode, RegistrationRequest,
    RegistrationResponse, PROTOCOL_VERSION,
};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, FramedRead};

use super::harness::{read_all_frames, Fixture, FUZZ_TOKEN, MAX_REGISTRATION_FRAME_LENGTH, SETTLE};
use super::oracle::{self, Policy, Verdict};
use super::{violation, Checked};

/// Pieces the peer's bytes are written in, as a socket may deliver them.
const WRITE_PIECE: usize = 7;

/// What the two connections were answered: `accepted` or the rejection code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationReport {
    /// One entry per connection.
    pub outcomes: Vec<&'static str>,
}

/// What the oracle says the first frame deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Accepted,
    Rejected(&'static str),
}

struct Peer {
    frames: FramedRead<ReadHalf<DuplexStream>, FrameCodec>,
    writer: WriteHalf<DuplexStream>,
    handshake: JoinHandle<()>,
}

/// Sends `wire` on two fresh connections and checks the invariants listed in the module docs.
pub async fn check_registration(wire: &[u8]) -> Checked<RegistrationReport> {
    let fixture = Fixture::new()?;
    let (expected, first_frame) = expected_outcome(wire);
    let mut peers: Vec<Peer> = (0..2)
        .map(|_| {
            let connection = fixture.connect();
            let (read, writer) = tokio::io::split(connection.agent);
            Peer {
                frames: FramedRead::new(read, FrameCodec::new()),
                writer,
                handshake: connection.handshake,
            }
        })
        .collect();
    for piece in wire.chunks(WRITE_PIECE) {
        for peer in &mut peers {
            // The proxy may already have answered and hung up: later bytes go nowhere.
            let _ = peer.writer.write_all(piece).await;
        }
        tokio::task::yield_now().await;
    }
    let mut outcomes = Vec::new();
    for peer in &mut peers {
        outcomes.push(first_response(peer, expected, first_frame.as_ref()).await?);
    }
    if !outcomes.contains(&"accepted") && expected == Expected::Accepted {
        return violation("a valid registration was refused on both connections");
    }
    if fixture.pool.connection_count() > 1 {
        return violation("two connections of one agent id are live with a limit of 1");
    }
    for peer in peers {
        hang_up(peer, first_frame.as_ref()).await?;
    }
    fixture.settled().await?;
    Ok(RegistrationReport { outcomes })
}

/// The answer the oracle says `wire` deserves, and the first frame the proxy's codec cuts from
/// it (used only to look for the token in what comes back).
fn expected_outcome(wire: &[u8]) -> (Expected, Option<Frame>) {
    let policy = Policy {
        max_frame_length: MAX_REGISTRATION_FRAME_LENGTH as u64,
        tokens: vec![("fuzz-*", FUZZ_TOKEN)],
        allowed: vec!["fuzz-1", "fuzz-2*"],
    };
    let expected = match oracle::judge(&policy, wire) {
        Verdict::Admissible => Expected::Accepted,
        Verdict::Refused(code) => Expected::Rejected(code),
    };
    let mut buffer = BytesMut::from(wire);
    let first_frame = FrameCodec::with_max_frame_length(MAX_REGISTRATION_FRAME_LENGTH)
        .decode(&mut buffer)
        .ok()
        .flatten();
    (expected, first_frame)
}

async fn first_response(
    peer: &mut Peer,
    expected: Expected,
    sent: Option<&Frame>,
) -> Checked<&'static str> {
    let frame = match tokio::time::timeout(SETTLE, peer.frames.next()).await {
        Err(_) => return violation("no registration response within the handshake timeout"),
        Ok(None) => return violation("the connection closed without a registration response"),
        Ok(Some(Err(e))) => return violation(format!("malformed registration response: {e}")),
        Ok(Some(Ok(frame))) => frame,
    };
    check_no_token_echo(sent, &frame)?;
    if frame.message_type() != Some(MessageType::RegistrationResponse) {
        return violation(format!(
            "the first frame from the proxy has type 0x{:02x}",
            frame.type_byte
        ));
    }
    let response: RegistrationResponse = match serde_json::from_slice(&frame.payload) {
        Ok(response) => response,
        Err(e) => return violation(format!("unparseable RegistrationResponse: {e}")),
    };
    match (response, expected) {
        (RegistrationResponse::Accepted { .. }, Expected::Accepted) => {
            check_really_admissible(sent)?;
            Ok("accepted")
        }
        (RegistrationResponse::Rejected { error, .. }, Expected::Accepted)
            if error == RegistrationErrorCode::ConnectionLimit =>
        {
            Ok(error.as_str())
        }
        (RegistrationResponse::Rejected { error, .. }, Expected::Rejected(code))
            if error.as_str() == code =>
        {
            Ok(error.as_str())
        }
        (response, expected) => violation(format!(
            "the proxy answered {response:?} where the contract (the oracle) expects {expected:?}"
        )),
    }
}

/// An independent check of the security property: only version 2, the allowed ids and the
/// right token get in, whatever the validator thinks.
fn check_really_admissible(sent: Option<&Frame>) -> Checked<()> {
    let Some(request) = sent.and_then(|f| RegistrationRequest::parse(&f.payload).ok()) else {
        return violation("accepted a registration that does not parse");
    };
    let id = request.agent_id.as_str();
    let allowed = id == "fuzz-1" || id.starts_with("fuzz-2");
    let token = request.auth_token.as_ref().map(|t| t.expose());
    if request.protocol_version != PROTOCOL_VERSION || !allowed || token != Some(FUZZ_TOKEN) {
        return violation(format!(
            "accepted agent_id {id:?} (version {}) without the allowlist and token holding",
            request.protocol_version
        ));
    }
    Ok(())
}

/// The token must not come back. Checked only when the request carries it once, literally, as
/// its `auth_token` and nowhere else: otherwise the peer also sent it as, say, its agent id,
/// which the proxy may rightly quote.
fn check_no_token_echo(sent: Option<&Frame>, received: &Frame) -> Checked<()> {
    let Some(sent) = sent else { return Ok(()) };
    let payload = &sent.payload[..];
    let occurrences = payload
        .windows(FUZZ_TOKEN.len())
        .filter(|w| *w == FUZZ_TOKEN.as_bytes())
        .count();
    let as_auth_token = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v.get("auth_token").cloned())
        .is_some_and(|t| t.as_str() == Some(FUZZ_TOKEN));
    if occurrences != 1 || payload.contains(&b'\\') || !as_auth_token {
        return Ok(());
    }
    let echoed = received
        .payload
        .windows(FUZZ_TOKEN.len())
        .any(|w| w == FUZZ_TOKEN.as_bytes());
    if echoed {
        return violation("the proxy wrote the agent's auth token back to it");
    }
    Ok(())
}

async fn hang_up(mut peer: Peer, sent: Option<&Frame>) -> Checked<()> {
    let _ = peer.writer.shutdown().await;
    for frame in read_all_frames(peer.frames).await? {
        check_no_token_echo(sent, &frame)?;
    }
    match tokio::time::timeout(SETTLE, peer.handshake).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => violation(format!("the handshake task failed: {e}")),
        Err(_) => violation("the handshake task did not end"),
    }
}
