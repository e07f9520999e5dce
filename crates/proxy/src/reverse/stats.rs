//! Registration counters of one listener: accepted, rejected by error code, pending handshakes,
//! failed TLS handshakes; the same accepted/rejected figures over the last minute (one ring of
//! per-second buckets, updated in the same call as the cumulative counter); and the failure
//! throttle of its peer addresses, whose figures are part of the same picture.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sentinel_agent_protocol::RegistrationErrorCode;
use serde::Serialize;

use super::throttle::{FailureThrottle, ThrottleSettings, ThrottleSnapshot};
use crate::window::{Counts, SecondRing, WindowClock};

/// Counters shared by the accept loop and the handshake tasks.
#[derive(Debug)]
pub struct RegistrationStats {
    throttle: FailureThrottle,
    accepted: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    pending: AtomicU64,
    tls_failed: AtomicU64,
    /// Registration outcomes per second: `accepted` or the error code.
    recent: Mutex<SecondRing<Counts>>,
}

/// Outcome key of an accepted registration in the per-second ring.
const ACCEPTED: &str = "accepted";

/// A point-in-time copy of [`RegistrationStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegistrationStatsSnapshot {
    /// Registrations accepted since start.
    pub accepted: u64,
    /// Registrations rejected, by error code.
    pub rejected: BTreeMap<String, u64>,
    /// Handshakes in progress right now.
    pub pending_handshakes: u64,
    /// TLS handshakes that failed (bad or missing client certificate, not TLS, timeout); such
    /// a peer gets no RegistrationResponse, so these are not in `rejected`.
    pub tls_handshakes_failed: u64,
    /// Registrations accepted over the last minute.
    pub accepted_last_minute: u64,
    /// Registrations rejected over the last minute, by error code.
    pub rejected_last_minute: BTreeMap<String, u64>,
    /// What the failed-registration throttle has done.
    pub throttle: ThrottleSnapshot,
}

impl Default for RegistrationStats {
    fn default() -> RegistrationStats {
        RegistrationStats::new(ThrottleSettings::default())
    }
}

impl RegistrationStats {
    /// Empty counters, with failed registrations throttled per `throttle`.
    pub fn new(throttle: ThrottleSettings) -> RegistrationStats {
        RegistrationStats {
            throttle: FailureThrottle::new(throttle),
            accepted: AtomicU64::new(0),
            rejected: Mutex::default(),
            pending: AtomicU64::new(0),
            tls_failed: AtomicU64::new(0),
            recent: Mutex::default(),
        }
    }

    pub(crate) fn throttle(&self) -> &FailureThrottle {
        &self.throttle
    }

    pub(crate) fn record_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.record_recent(ACCEPTED);
    }

    fn record_recent(&self, outcome: &str) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.at(WindowClock::now()).add(outcome);
        }
    }

    pub(crate) fn record_rejected(&self, code: RegistrationErrorCode) {
        if let Ok(mut rejected) = self.rejected.lock() {
            *rejected.entry(code.as_str()).or_default() += 1;
        }
        self.record_recent(code.as_str());
    }

    pub(crate) fn record_tls_failed(&self) {
        self.tls_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handshake_started(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handshake_finished(&self) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> RegistrationStatsSnapshot {
        let rejected = self
            .rejected
            .lock()
            .map(|r| r.iter().map(|(k, v)| (k.to_string(), *v)).collect())
            .unwrap_or_default();
        let mut recent = self
            .recent
            .lock()
            .map(|r| r.total(WindowClock::now()).0)
            .unwrap_or_default();
        let accepted_last_minute = recent.remove(ACCEPTED).unwrap_or(0);
        RegistrationStatsSnapshot {
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected,
            pending_handshakes: self.pending.load(Ordering::Relaxed),
            tls_handshakes_failed: self.tls_failed.load(Ordering::Relaxed),
            accepted_last_minute,
            rejected_last_minute: recent,
            throttle: self.throttle.snapshot(),
        }
    }
}
