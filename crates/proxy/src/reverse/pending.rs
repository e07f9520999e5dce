//! The bounded set of handshakes in progress. When it is full, admitting a new connection evicts
//! the *oldest* pending handshake: a flood of silent connections then only displaces itself,
//! while an honest agent, which sends its registration at once, completes long before it could
//! become the oldest.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

pub(crate) struct PendingHandshakes {
    capacity: usize,
    state: Mutex<PendingState>,
}

#[derive(Default)]
struct PendingState {
    next_id: u64,
    by_age: BTreeMap<u64, CancellationToken>,
}

/// One admitted handshake. `evicted` fires if it is pushed out; dropping it frees the place.
pub(crate) struct PendingTicket {
    owner: Arc<PendingHandshakes>,
    id: u64,
    pub evicted: CancellationToken,
}

impl PendingHandshakes {
    pub(crate) fn new(capacity: usize) -> Arc<PendingHandshakes> {
        Arc::new(PendingHandshakes {
            capacity: capacity.max(1),
            state: Mutex::new(PendingState::default()),
        })
    }

    pub(crate) fn admit(self: &Arc<Self>) -> PendingTicket {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while state.by_age.len() >= self.capacity {
            if let Some((_, oldest)) = state.by_age.pop_first() {
                oldest.cancel();
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let evicted = CancellationToken::new();
        state.by_age.insert(id, evicted.clone());
        PendingTicket {
            owner: self.clone(),
            id,
            evicted,
        }
    }
}

impl Drop for PendingTicket {
    fn drop(&mut self) {
        let mut state = self.owner.state.lock().unwrap_or_else(|p| p.into_inner());
        state.by_age.remove(&self.id);
    }
}
