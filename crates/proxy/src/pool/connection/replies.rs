//! The reply map of one connection: which caller waits for which `request_id`, and handing a
//! Decision or RequestError to it. It does not time requests out (the caller does) nor decide
//! whether a failed request is retried elsewhere (that is the `dispatch` module).

use tokio::sync::oneshot;

use super::AgentConnection;
use crate::pool::dispatch::AgentReply;

impl AgentConnection {
    /// Registers the waiter for `request_id`'s reply; `false` if the connection is closed.
    pub(crate) fn expect_reply(&self, request_id: u64, reply: oneshot::Sender<AgentReply>) -> bool {
        let Ok(mut waiting) = self.waiting.lock() else {
            return false;
        };
        waiting.insert(request_id, reply);
        drop(waiting);
        // `close` cancels before it clears the map, so a waiter inserted after the clear sees
        // the cancellation here and is not left waiting for its timeout.
        if self.closed.is_cancelled() {
            self.forget_reply(request_id);
            return false;
        }
        true
    }

    /// Requests waiting for a reply on this connection.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn awaited_replies(&self) -> usize {
        self.waiting.lock().map_or(0, |w| w.len())
    }

    /// Drops the waiter for `request_id`; `true` if a reply was still awaited.
    pub(crate) fn forget_reply(&self, request_id: u64) -> bool {
        self.waiting
            .lock()
            .map(|mut w| w.remove(&request_id).is_some())
            .unwrap_or(false)
    }

    pub(super) fn forget_all_replies(&self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            // Dropping the senders wakes every waiter with an error.
            waiting.clear();
        }
    }

    /// Hands `reply` to whoever waits for `request_id`; a reply nobody waits for any more (the
    /// request was cancelled or timed out) is counted and dropped.
    pub(super) fn deliver(&self, request_id: u64, reply: AgentReply) {
        let waiter = self
            .waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(&request_id));
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(reply);
            }
            None => {
                self.counters.record_late_reply();
                tracing::debug!(assigned_id = %self.assigned_id(), request_id, "reply for a cancelled or unknown request dropped");
            }
        }
    }
}
