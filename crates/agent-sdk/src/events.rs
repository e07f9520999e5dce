//! [`RunnerEvent`]: what the runner reports about its connections (attempts, registrations,
//! refusals, disconnects, backoff delays, configuration), broadcast to anyone who subscribed.
//! The same facts go to the log; events exist so programs and tests can react to them.

use std::time::Duration;

use sentinel_agent_protocol::{Encoding, RegistrationErrorCode};
use tokio::sync::broadcast;

use crate::address::ProxyAddr;

/// Why a registered connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// Our own shutdown: GoAway sent, in-flight work finished or the grace period ran out.
    Shutdown,
    /// The proxy sent GoAway and then closed the connection (or its grace period ran out).
    Drained,
    /// The proxy closed the connection without a GoAway.
    ProxyClosed,
    /// Nothing arrived from the proxy for this long (several heartbeat intervals).
    Silent(Duration),
    /// The stream broke or the proxy sent what could not be understood.
    Protocol(String),
    /// A write failed or did not finish within the write timeout.
    WriteFailed(String),
}

/// One thing that happened to one connection slot (`slot` counts from 0 for each proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerEvent {
    /// A connection attempt starts.
    Connecting {
        /// The proxy.
        proxy: ProxyAddr,
        /// The slot.
        slot: usize,
    },
    /// The proxy accepted a registration.
    Registered {
        /// The proxy.
        proxy: ProxyAddr,
        /// The slot.
        slot: usize,
        /// `<agent_id>-conn-<n>`.
        assigned_id: String,
        /// The negotiated encoding.
        encoding: Encoding,
    },
    /// A connection attempt failed.
    RegistrationFailed {
        /// The proxy.
        proxy: ProxyAddr,
        /// The slot.
        slot: usize,
        /// The refusal code, when the proxy answered.
        code: Option<RegistrationErrorCode>,
        /// Whether retrying cannot help (the slot waits near the maximum delay).
        permanent: bool,
        /// What went wrong.
        error: String,
    },
    /// A registered connection ended.
    Disconnected {
        /// The proxy.
        proxy: ProxyAddr,
        /// The slot.
        slot: usize,
        /// The connection.
        assigned_id: String,
        /// Why.
        reason: Disconnect,
        /// How long it was registered.
        uptime: Duration,
    },
    /// The slot waits before its next attempt.
    Backoff {
        /// The proxy.
        proxy: ProxyAddr,
        /// The slot.
        slot: usize,
        /// The wait.
        delay: Duration,
        /// The ceiling it was drawn under (the maximum for permanent failures).
        ceiling: Duration,
        /// Whether the last failure was permanent.
        permanent: bool,
    },
    /// The agent accepted a pushed configuration.
    ConfigApplied,
    /// A connection delivered the configuration the agent already has; not applied again.
    ConfigUnchanged,
    /// The agent refused a pushed configuration and keeps the previous one.
    ConfigRejected {
        /// The agent's reason.
        error: String,
    },
    /// A slot stopped for good (shutdown).
    Stopped {
        /// The proxy.
        proxy: ProxyAddr,
        /// The slot.
        slot: usize,
    },
}

/// Where the runner's parts publish events. Publishing never blocks; a subscriber that falls
/// more than 1024 events behind loses the oldest.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    sender: broadcast::Sender<RunnerEvent>,
}

impl EventSink {
    pub(crate) fn new() -> EventSink {
        EventSink {
            sender: broadcast::channel(1024).0,
        }
    }

    pub(crate) fn emit(&self, event: RunnerEvent) {
        // No subscriber is fine.
        let _ = self.sender.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RunnerEvent> {
        self.sender.subscribe()
    }
}
