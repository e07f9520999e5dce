//! The count of requests in flight on one agent connection, and the wait for it to reach zero
//! that draining uses (a GoAway'd connection closes as soon as its last request is answered,
//! without polling). It owns only the number; the limit it is checked against and what a slot
//! is for belong to the connection ([`super::AgentConnection`]).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Requests in flight, woken at zero.
#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    /// Notified each time the count drops to zero.
    zero: Notify,
}

impl InFlight {
    /// The count right now.
    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Takes one slot if fewer than `limit` are taken.
    pub(crate) fn try_acquire(&self, limit: usize) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives one slot back (never below zero), waking [`InFlight::zero`] waiters at zero.
    pub(crate) fn release(&self) {
        let before = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.zero.notify_waiters();
        }
    }

    /// Resolves once no slot is taken (at once if none is).
    pub(crate) async fn zero(&self) {
        loop {
            // Enabled before the look, so a release right after it still wakes us.
            let mut released = std::pin::pin!(self.zero.notified());
            released.as_mut().enable();
            if self.get() == 0 {
                return;
            }
            released.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn slots_are_bounded_and_never_go_below_zero() {
        let in_flight = InFlight::default();
        assert!(in_flight.try_acquire(2));
        assert!(in_flight.try_acquire(2));
        assert!(!in_flight.try_acquire(2));
        in_flight.release();
        in_flight.release();
        in_flight.release();
        assert_eq!(in_flight.get(), 0);
    }

    #[tokio::test]
    async fn zero_waits_for_the_last_release() {
        let in_flight = Arc::new(InFlight::default());
        in_flight.zero().await;
        assert!(in_flight.try_acquire(2));
        assert!(in_flight.try_acquire(2));
        let waiter = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.zero().await }
        });
        in_flight.release();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        in_flight.release();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("zero() resolves after the last release")
            .expect("the waiter does not panic");
    }
}
