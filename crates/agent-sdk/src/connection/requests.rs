//! The requests a connection knows about: each one's [`RequestContext`] between events, whether
//! a handler is working on it right now, and whether it is in the middle of a phase (the agent
//! answered `continue` and waits for the next chunk). Bounded: beyond the cap the least
//! recently used idle request is forgotten, so a proxy that never finishes requests cannot
//! make it grow.

use std::collections::HashMap;
use std::sync::Arc;

use crate::context::RequestContext;

/// What happens to a request after its handler answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// More events of the current phase will come.
    MidPhase,
    /// The request phase is over; the response phase will come.
    BetweenPhases,
    /// Nothing more will come for this agent.
    Done,
}

struct Slot {
    /// `None` while a handler holds it.
    ctx: Option<RequestContext>,
    mid_phase: bool,
    touched: u64,
}

pub(crate) struct RequestTable {
    slots: HashMap<u64, Slot>,
    cap: usize,
    clock: u64,
    connection_id: Arc<str>,
}

/// A handler is already working on this request (the proxy sent two events at once).
#[derive(Debug)]
pub(crate) struct Busy;

impl RequestTable {
    pub(crate) fn new(connection_id: Arc<str>, cap: usize) -> RequestTable {
        RequestTable {
            slots: HashMap::new(),
            cap: cap.max(1),
            clock: 0,
            connection_id,
        }
    }

    /// Takes the context of `request_id` for a handler, creating it if the request is new.
    /// `fresh` starts over (a RequestHeaders event begins a new request).
    pub(crate) fn checkout(
        &mut self,
        request_id: u64,
        fresh: bool,
    ) -> Result<RequestContext, Busy> {
        self.clock += 1;
        let clock = self.clock;
        if let Some(slot) = self.slots.get_mut(&request_id) {
            let ctx = slot.ctx.take().ok_or(Busy)?;
            slot.touched = clock;
            if !fresh {
                return Ok(ctx);
            }
        } else {
            self.evict_if_full();
            self.slots.insert(
                request_id,
                Slot {
                    ctx: None,
                    mid_phase: false,
                    touched: clock,
                },
            );
        }
        Ok(RequestContext::new(request_id, self.connection_id.clone()))
    }

    /// Returns a context after its handler answered.
    pub(crate) fn checkin(&mut self, ctx: RequestContext, after: After) {
        let request_id = ctx.request_id();
        match after {
            After::Done => {
                self.slots.remove(&request_id);
            }
            After::MidPhase | After::BetweenPhases => {
                if let Some(slot) = self.slots.get_mut(&request_id) {
                    slot.ctx = Some(ctx);
                    slot.mid_phase = after == After::MidPhase;
                }
            }
        }
    }

    /// Forgets a request (cancelled); `true` if it was known.
    pub(crate) fn remove(&mut self, request_id: u64) -> bool {
        self.slots.remove(&request_id).is_some()
    }

    /// Every known request.
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.slots.keys().copied().collect()
    }

    /// Requests waiting for the next event of a phase they are in.
    pub(crate) fn mid_phase(&self) -> usize {
        self.slots.values().filter(|s| s.mid_phase).count()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    fn evict_if_full(&mut self) {
        if self.slots.len() < self.cap {
            return;
        }
        let oldest_idle = self
            .slots
            .iter()
            .filter(|(_, s)| s.ctx.is_some())
            .min_by_key(|(_, s)| s.touched)
            .map(|(id, _)| *id);
        if let Some(id) = oldest_idle {
            tracing::debug!(connection = %self.connection_id, request_id = id, "request context evicted: too many open requests");
            self.slots.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_survives_between_events_and_is_dropped_when_done() {
        let mut table = RequestTable::new("c".into(), 10);
        let mut ctx = table.checkout(1, true).unwrap();
        ctx.state::<Vec<u8>>().push(1);
        assert!(matches!(table.checkout(1, false), Err(Busy)));
        table.checkin(ctx, After::MidPhase);
        assert_eq!(table.mid_phase(), 1);
        let mut ctx = table.checkout(1, false).unwrap();
        assert_eq!(ctx.state::<Vec<u8>>(), &[1]);
        table.checkin(ctx, After::BetweenPhases);
        assert_eq!((table.mid_phase(), table.len()), (0, 1));
        let ctx = table.checkout(1, false).unwrap();
        table.checkin(ctx, After::Done);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn fresh_checkout_starts_over() {
        let mut table = RequestTable::new("c".into(), 10);
        let mut ctx = table.checkout(1, true).unwrap();
        *ctx.state::<u32>() = 9;
        table.checkin(ctx, After::BetweenPhases);
        let mut ctx = table.checkout(1, true).unwrap();
        assert_eq!(*ctx.state::<u32>(), 0);
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest_idle_request() {
        let mut table = RequestTable::new("c".into(), 3);
        for id in 1..=3 {
            let ctx = table.checkout(id, true).unwrap();
            table.checkin(ctx, After::MidPhase);
        }
        // Request 1 is touched again, so 2 is now the oldest idle one.
        let ctx = table.checkout(1, false).unwrap();
        table.checkin(ctx, After::MidPhase);
        let _busy = table.checkout(4, true).unwrap();
        let mut ids = table.ids();
        ids.sort();
        assert_eq!(ids, [1, 3, 4]);
    }
}
