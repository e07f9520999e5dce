//! Body inspection: reads a request or response body in chunks of at most [`MAX_CHUNK`] bytes
//! and passes each through the agents still open in that phase, up to the route's
//! `max-body-inspect` bytes, before anything of it is forwarded. A chunk is sent once the next
//! one is known, so `is_last` is exact; it is also set on the last chunk of the inspected
//! prefix when the rest goes on uninspected (`body-overflow forward`), since that is the last
//! chunk the agents will see. A body that ends without bytes is sent as one empty last chunk.
//! Once no agent wants more, the rest is streamed through untouched.

use std::collections::VecDeque;

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::Body;

use super::agents::{AgentChain, Phase, Stop};
use super::body::{next_data, BoxError};
use crate::config::BodyOverflow;

/// The largest chunk sent to an agent in one event.
pub const MAX_CHUNK: usize = 64 * 1024;

/// A body after inspection.
pub(crate) struct Inspected<B> {
    /// What to forward first: the inspected chunks (possibly replaced), then bytes read but
    /// not inspected.
    pub(crate) head: Vec<Bytes>,
    /// The unread rest of the body; `None` when it was read to its end.
    pub(crate) rest: Option<B>,
    /// Whether an agent replaced a chunk.
    pub(crate) replaced: bool,
}

/// Why inspection ended the request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InspectError {
    /// An agent stopped the request.
    #[error("an agent stopped the request")]
    Stopped(Stop),
    /// The body is larger than the inspection limit and the route rejects that.
    #[error("the body exceeds the inspection limit")]
    TooLarge,
    /// Reading the body failed.
    #[error("reading the body failed: {0}")]
    Body(BoxError),
    /// No body data arrived for [`BODY_STALL_TIMEOUT`] while agents were waiting for it.
    #[error("no body data for {BODY_STALL_TIMEOUT:?}")]
    Stalled,
}

/// Longest wait for the next piece of a body that agents are inspecting. The request holds an
/// in-flight slot on each of its agents' connections meanwhile, so a client that trickles or
/// withholds its body must not hold those slots for long.
pub const BODY_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Inspects `body` in `phase` with at most `limit` bytes seen by agents.
pub(crate) async fn inspect<B>(
    chain: &mut AgentChain,
    phase: Phase,
    mut body: B,
    limit: usize,
    overflow: BodyOverflow,
    mut request_headers: Option<&mut HeaderMap>,
) -> Result<Inspected<B>, InspectError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut out = Output {
        head: Vec::new(),
        replaced: false,
        index: 0,
    };
    let mut seen = 0usize;
    // Read but not yet inspected, in order.
    let mut input: VecDeque<Bytes> = VecDeque::new();
    // To be inspected, waiting to learn whether it is the last chunk.
    let mut held: Option<Bytes> = None;
    let mut ended = false;

    loop {
        if !chain.wants_body() {
            // Nobody wants more: everything left goes on uninspected.
            out.head.extend(held.take());
            out.head.extend(input.drain(..));
            return Ok(out.done((!ended).then_some(body)));
        }
        if input.is_empty() && !ended {
            let next = tokio::time::timeout(BODY_STALL_TIMEOUT, next_data(&mut body)).await;
            match next.map_err(|_| InspectError::Stalled)? {
                None => ended = true,
                Some(Err(e)) => return Err(InspectError::Body(e)),
                Some(Ok(mut data)) => {
                    while data.len() > MAX_CHUNK {
                        input.push_back(data.split_to(MAX_CHUNK));
                    }
                    input.push_back(data);
                }
            }
        }
        let Some(mut piece) = input.pop_front() else {
            // The end of the body: the held chunk (or an empty one) is the last.
            let last = held.take().unwrap_or_default();
            out.send(chain, phase, last, true, request_headers.as_deref_mut())
                .await?;
            return Ok(out.done(None));
        };
        let room = limit - seen;
        if piece.len() > room {
            if overflow == BodyOverflow::Reject {
                return Err(InspectError::TooLarge);
            }
            let inspected = piece.split_to(room);
            if let Some(previous) = held.take() {
                let is_last = inspected.is_empty();
                out.send(
                    chain,
                    phase,
                    previous,
                    is_last,
                    request_headers.as_deref_mut(),
                )
                .await?;
            }
            if !inspected.is_empty() {
                out.send(
                    chain,
                    phase,
                    inspected,
                    true,
                    request_headers.as_deref_mut(),
                )
                .await?;
            }
            out.head.push(piece);
            out.head.extend(input.drain(..));
            return Ok(out.done((!ended).then_some(body)));
        }
        seen += piece.len();
        if let Some(previous) = held.replace(piece) {
            out.send(
                chain,
                phase,
                previous,
                false,
                request_headers.as_deref_mut(),
            )
            .await?;
        }
    }
}

/// What inspection has produced so far.
struct Output {
    head: Vec<Bytes>,
    replaced: bool,
    index: u64,
}

impl Output {
    /// Passes the next chunk through the agents and keeps what they let through.
    async fn send(
        &mut self,
        chain: &mut AgentChain,
        phase: Phase,
        data: Bytes,
        is_last: bool,
        request_headers: Option<&mut HeaderMap>,
    ) -> Result<(), InspectError> {
        let (data, replaced) = chain
            .body_chunk(phase, self.index, data, is_last, request_headers)
            .await
            .map_err(InspectError::Stopped)?;
        self.index += 1;
        self.replaced |= replaced;
        self.head.push(data);
        Ok(())
    }

    fn done<B>(self, rest: Option<B>) -> Inspected<B> {
        Inspected {
            head: self.head,
            rest,
            replaced: self.replaced,
        }
    }
}
