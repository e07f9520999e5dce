//! Body plumbing for the data plane: the one boxed body type every request and response is
//! converted to, constructors for fixed and streamed bodies, and reading a body one non-empty
//! data frame at a time (trailers are dropped when a body is inspected).

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Empty, Full, StreamBody};
use hyper::body::{Body, Frame};

/// Any error a body can fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every request the proxy sends upstream and every response it sends a client.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding exactly `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with no bytes.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// `body`, streamed through unchanged.
pub fn streamed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// `prefix` (already read, possibly rewritten), then whatever is left of `rest`, streamed.
pub fn prefixed<B>(prefix: Vec<Bytes>, rest: Option<B>) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let head = futures::stream::iter(
        prefix
            .into_iter()
            .filter(|b| !b.is_empty())
            .map(|b| Ok::<_, BoxError>(Frame::data(b))),
    );
    match rest {
        Some(rest) => {
            let tail = BodyStream::new(rest).map(|frame| frame.map_err(Into::into));
            StreamBody::new(head.chain(tail)).boxed_unsync()
        }
        None => StreamBody::new(head).boxed_unsync(),
    }
}

/// The next non-empty data frame of `body`; `None` at its end. Trailers are skipped.
pub(crate) async fn next_data<B>(body: &mut B) -> Option<Result<Bytes, BoxError>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    loop {
        match body.frame().await? {
            Err(e) => return Some(Err(e.into())),
            Ok(frame) => match frame.into_data() {
                Ok(data) if !data.is_empty() => return Some(Ok(data)),
                _ => continue,
            },
        }
    }
}
