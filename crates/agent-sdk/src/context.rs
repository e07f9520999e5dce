//! [`RequestContext`]: what a handler knows about the request beyond the event in hand — its
//! `request_id`, the connection it arrived on, the headers seen earlier, and typed per-request
//! state the agent keeps between events (for example a body buffer). The runner creates one
//! per request and drops it when the request is over for this agent.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use sentinel_agent_protocol::{RequestHeaders, ResponseHeaders};

/// Per-request context handed to every handler.
pub struct RequestContext {
    request_id: u64,
    connection_id: Arc<str>,
    pub(crate) request_headers: Option<Arc<RequestHeaders>>,
    pub(crate) response_headers: Option<Arc<ResponseHeaders>>,
    state: HashMap<TypeId, Box<dyn Any + Send>>,
}

impl RequestContext {
    /// A fresh context for `request_id` on the connection `connection_id`.
    pub fn new(request_id: u64, connection_id: impl Into<Arc<str>>) -> RequestContext {
        RequestContext {
            request_id,
            connection_id: connection_id.into(),
            request_headers: None,
            response_headers: None,
            state: HashMap::new(),
        }
    }

    /// The request's id, unique on its connection.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// The `assigned_id` of the connection the request arrived on (`<agent_id>-conn-<n>`).
    pub fn connection_id(&self) -> &str {
        &self.connection_id
    }

    /// The request headers, if this agent received them for this request.
    pub fn request_headers(&self) -> Option<&RequestHeaders> {
        self.request_headers.as_deref()
    }

    /// The response headers, once this agent received them for this request.
    pub fn response_headers(&self) -> Option<&ResponseHeaders> {
        self.response_headers.as_deref()
    }

    /// The agent's state of type `T` for this request, created with `T::default()` on first use.
    #[allow(
        clippy::expect_used,
        reason = "an entry is keyed by its own TypeId, so the downcast cannot fail"
    )]
    pub fn state<T: Default + Send + 'static>(&mut self) -> &mut T {
        self.state
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut::<T>()
            .expect("state entries are keyed by their own TypeId")
    }

    /// The agent's state of type `T`, if it was created.
    pub fn get_state<T: Send + 'static>(&self) -> Option<&T> {
        self.state.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }

    /// Removes and returns the agent's state of type `T`.
    pub fn take_state<T: Send + 'static>(&mut self) -> Option<T> {
        let boxed = self.state.remove(&TypeId::of::<T>())?;
        boxed.downcast::<T>().ok().map(|b| *b)
    }
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext")
            .field("request_id", &self.request_id)
            .field("connection_id", &self.connection_id)
            .field("has_request_headers", &self.request_headers.is_some())
            .field("has_response_headers", &self.response_headers.is_some())
            .field("state_entries", &self.state.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counter(u32);

    #[test]
    fn typed_state_is_created_on_demand_and_kept() {
        let mut ctx = RequestContext::new(5, "waf-1-conn-1");
        assert!(ctx.get_state::<Counter>().is_none());
        ctx.state::<Counter>().0 += 1;
        ctx.state::<Counter>().0 += 1;
        ctx.state::<Vec<u8>>().extend_from_slice(b"ab");
        assert_eq!(ctx.get_state::<Counter>().map(|c| c.0), Some(2));
        assert_eq!(ctx.take_state::<Vec<u8>>(), Some(b"ab".to_vec()));
        assert!(ctx.get_state::<Vec<u8>>().is_none());
        assert_eq!((ctx.request_id(), ctx.connection_id()), (5, "waf-1-conn-1"));
    }
}
