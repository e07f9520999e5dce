//! The [`Agent`] trait an author implements, and [`Events`], the declaration of which events
//! the agent wants (Rust cannot see which handlers were overridden, so the agent says so; the
//! registration's capabilities are derived from it). Every handler has a default that allows.

use std::fmt;
use std::future::Future;
use std::ops::BitOr;

use sentinel_agent_protocol::{BodyChunk, RequestHeaders, ResponseHeaders};
use serde_json::Value;

use crate::context::RequestContext;
use crate::error::BoxError;
use crate::verdict::Verdict;

/// A policy agent: async handlers for each event the proxy sends.
///
/// Implement the handlers you need with `async fn` and declare them in [`Agent::events`];
/// the others allow. The runner calls handlers concurrently (one task per event, up to the
/// connection's `max_concurrent_requests`), so keep shared state behind a lock or an atomic.
///
/// ```
/// use sentinel_agent_sdk::prelude::*;
///
/// struct NoAdmin;
///
/// impl Agent for NoAdmin {
///     async fn on_request_headers(&self, req: &RequestHeaders, _ctx: &mut RequestContext) -> Verdict {
///         if req.path().starts_with("/admin") {
///             Verdict::block(403).reason("admin is closed")
///         } else {
///             Verdict::allow()
///         }
///     }
/// }
/// ```
pub trait Agent: Send + Sync + 'static {
    /// Which events this agent handles (default: request headers only).
    fn events(&self) -> Events {
        Events::REQUEST_HEADERS
    }

    /// The request's headers: the first event of the request phase.
    fn on_request_headers(
        &self,
        request: &RequestHeaders,
        ctx: &mut RequestContext,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (request, ctx);
        async { Verdict::allow() }
    }

    /// One chunk of the request body. Answer [`Verdict::continue_`] to see the next chunk.
    fn on_request_body_chunk(
        &self,
        chunk: &BodyChunk,
        ctx: &mut RequestContext,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (chunk, ctx);
        async { Verdict::allow() }
    }

    /// The upstream's response headers: the first event of the response phase.
    fn on_response_headers(
        &self,
        response: &ResponseHeaders,
        ctx: &mut RequestContext,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (response, ctx);
        async { Verdict::allow() }
    }

    /// One chunk of the response body.
    fn on_response_body_chunk(
        &self,
        chunk: &BodyChunk,
        ctx: &mut RequestContext,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (chunk, ctx);
        async { Verdict::allow() }
    }

    /// Configuration pushed by the proxy: at registration and on every ConfigUpdate.
    /// `Value::Null` means the proxy has no configuration for this agent (any more).
    /// Called once per distinct configuration, never concurrently. An error keeps the agent
    /// running with what it had and is logged.
    fn on_config(&self, config: &Value) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = config;
        async { Ok(()) }
    }

    /// The proxy cancelled a request (Cancel or CancelAll). Its running handler, if any, has
    /// already been stopped and its [`RequestContext`] dropped; this is for bookkeeping.
    fn on_cancel(&self, cancelled: &Cancelled) -> impl Future<Output = ()> + Send {
        let _ = cancelled;
        async {}
    }
}

/// A request the proxy cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    /// The connection it ran on.
    pub connection_id: String,
    /// Its id on that connection.
    pub request_id: u64,
    /// The proxy's reason (`client_disconnected`, `timeout`, …).
    pub reason: String,
}

/// A set of event kinds, combined with `|`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Events(u8);

impl Events {
    /// No events.
    pub const NONE: Events = Events(0);
    /// RequestHeaders.
    pub const REQUEST_HEADERS: Events = Events(1);
    /// RequestBodyChunk.
    pub const REQUEST_BODY: Events = Events(2);
    /// ResponseHeaders.
    pub const RESPONSE_HEADERS: Events = Events(4);
    /// ResponseBodyChunk.
    pub const RESPONSE_BODY: Events = Events(8);
    /// Everything.
    pub const ALL: Events = Events(15);

    /// Whether every event in `other` is in `self`.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the agent takes part in the response phase.
    pub const fn in_response_phase(self) -> bool {
        self.0 & (Events::RESPONSE_HEADERS.0 | Events::RESPONSE_BODY.0) != 0
    }
}

impl BitOr for Events {
    type Output = Events;

    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Events::REQUEST_HEADERS, "request_headers"),
            (Events::REQUEST_BODY, "request_body"),
            (Events::RESPONSE_HEADERS, "response_headers"),
            (Events::RESPONSE_BODY, "response_body"),
        ];
        f.debug_set()
            .entries(
                names
                    .iter()
                    .filter(|(e, _)| self.contains(*e))
                    .map(|(_, n)| n),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_combine() {
        let e = Events::REQUEST_HEADERS | Events::REQUEST_BODY;
        assert!(e.contains(Events::REQUEST_BODY));
        assert!(!e.contains(Events::RESPONSE_HEADERS));
        assert!(!e.in_response_phase());
        assert!(Events::ALL.in_response_phase());
        assert_eq!(format!("{e:?}"), r#"{"request_headers", "request_body"}"#);
    }
}
