//! Running one event through the agent: which handler an event goes to, whether it is the last
//! event of its phase, and the task wrapper that turns a panicking handler into a RequestError
//! instead of a lost request.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use sentinel_agent_protocol::{Action, BodyChunk, RequestHeaders, ResponseHeaders};
use tokio::sync::OwnedSemaphorePermit;

use super::requests::After;
use crate::agent::{Agent, Events};
use crate::context::RequestContext;
use crate::verdict::Verdict;

/// An event addressed to a handler.
pub(crate) enum Event {
    RequestHeaders(Arc<RequestHeaders>),
    RequestBody(BodyChunk),
    ResponseHeaders(Arc<ResponseHeaders>),
    ResponseBody(BodyChunk),
}

impl Event {
    pub(crate) fn request_id(&self) -> u64 {
        match self {
            Event::RequestHeaders(h) => h.request_id,
            Event::RequestBody(c) | Event::ResponseBody(c) => c.request_id,
            Event::ResponseHeaders(h) => h.request_id,
        }
    }

    /// Whether this is the last event of its phase that this agent will get.
    fn last_in_phase(&self, events: Events) -> bool {
        match self {
            Event::RequestHeaders(h) => !h.has_body || !events.contains(Events::REQUEST_BODY),
            Event::ResponseHeaders(h) => !h.has_body || !events.contains(Events::RESPONSE_BODY),
            Event::RequestBody(c) | Event::ResponseBody(c) => c.is_last,
        }
    }

    fn in_request_phase(&self) -> bool {
        matches!(self, Event::RequestHeaders(_) | Event::RequestBody(_))
    }

    /// What happens to the request once `verdict` answered this event.
    pub(crate) fn after(&self, verdict: &Verdict, events: Events) -> After {
        match verdict.action() {
            None | Some(Action::Block { .. }) | Some(Action::Redirect { .. }) => After::Done,
            Some(Action::Continue) if !self.last_in_phase(events) => After::MidPhase,
            Some(_) if self.in_request_phase() && events.in_response_phase() => {
                After::BetweenPhases
            }
            Some(_) => After::Done,
        }
    }
}

/// A handler's result, back on the connection task.
pub(crate) struct Finished {
    pub request_id: u64,
    pub verdict: Verdict,
    pub after: After,
    pub ctx: RequestContext,
}

/// Runs `event` through the matching handler. Holds `permit` until done.
pub(crate) async fn run<A: Agent>(
    agent: Arc<A>,
    event: Event,
    mut ctx: RequestContext,
    permit: OwnedSemaphorePermit,
) -> Finished {
    let call = call(&*agent, &event, &mut ctx);
    let verdict = match AssertUnwindSafe(call).catch_unwind().await {
        Ok(verdict) => verdict,
        Err(_panic) => {
            tracing::error!(connection = %ctx.connection_id(), request_id = event.request_id(), "the agent's handler panicked; answering with a RequestError");
            Verdict::error("internal", "the agent's handler panicked")
        }
    };
    drop(permit);
    Finished {
        request_id: event.request_id(),
        after: event.after(&verdict, agent.events()),
        verdict,
        ctx,
    }
}

async fn call<A: Agent>(agent: &A, event: &Event, ctx: &mut RequestContext) -> Verdict {
    match event {
        Event::RequestHeaders(h) => {
            ctx.request_headers = Some(h.clone());
            agent.on_request_headers(h, ctx).await
        }
        Event::RequestBody(c) => agent.on_request_body_chunk(c, ctx).await,
        Event::ResponseHeaders(h) => {
            ctx.response_headers = Some(h.clone());
            agent.on_response_headers(h, ctx).await
        }
        Event::ResponseBody(c) => agent.on_response_body_chunk(c, ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn headers(has_body: bool) -> Event {
        Event::RequestHeaders(Arc::new(RequestHeaders {
            request_id: 1,
            method: "POST".into(),
            uri: "/".into(),
            version: "HTTP/1.1".into(),
            headers: vec![],
            client_addr: String::new(),
            route: String::new(),
            has_body,
        }))
    }

    fn chunk(is_last: bool) -> Event {
        Event::RequestBody(BodyChunk {
            request_id: 1,
            chunk_index: 0,
            data: Bytes::new(),
            is_last,
        })
    }

    #[test]
    fn phase_bookkeeping() {
        let body = Events::REQUEST_HEADERS | Events::REQUEST_BODY;
        let go_on = Verdict::continue_();
        assert_eq!(headers(true).after(&go_on, body), After::MidPhase);
        assert_eq!(headers(false).after(&go_on, body), After::Done);
        // The agent does not take body chunks: continue on headers ends its phase.
        assert_eq!(
            headers(true).after(&go_on, Events::REQUEST_HEADERS),
            After::Done
        );
        assert_eq!(chunk(false).after(&go_on, body), After::MidPhase);
        assert_eq!(chunk(true).after(&go_on, body), After::Done);
        assert_eq!(headers(true).after(&Verdict::deny(), body), After::Done);
        assert_eq!(
            headers(false).after(&Verdict::allow(), Events::ALL),
            After::BetweenPhases
        );
        assert_eq!(
            headers(true).after(&Verdict::error("x", "y"), Events::ALL),
            After::Done
        );
    }
}
