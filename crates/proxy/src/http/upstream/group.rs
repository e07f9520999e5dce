//! One upstream group with its live state, which owns sending a request to the group and the
//! health its outcome changes: it picks the next target (with [`super::health`]), sends over
//! that target's keep-alive connections ([`super::connections`]), and records connect errors and timeouts
//! against the target. Only those two count against health: an upstream that answered, or whose
//! exchange failed after connecting, stays up. The registry across reloads is [`super::Upstreams`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use http::{Request, Response};

use super::client::{self, UpstreamError};
use super::connections::{SendFailure, TargetConnections, UpstreamBody};
use super::health::{choose, Health};
use super::{TargetHealth, UpstreamHealth};
use crate::config::UpstreamConfig;
use crate::http::body::ProxyBody;

/// One target of a group.
struct Target {
    /// As configured, `host:port`.
    address: String,
    /// Its keep-alive connections; `None` if the address is not a valid `host:port`.
    connections: Option<Arc<TargetConnections>>,
    health: Arc<Mutex<Health>>,
}

/// A configured upstream group with its live state.
pub(crate) struct UpstreamGroup {
    pub(super) config: UpstreamConfig,
    targets: Vec<Target>,
    next: Arc<AtomicUsize>,
}

fn lock(health: &Mutex<Health>) -> MutexGuard<'_, Health> {
    health.lock().unwrap_or_else(|p| p.into_inner())
}

impl UpstreamGroup {
    /// A group for `config`, keeping the health and connections of targets `previous` already
    /// had, and its rotation when the targets are the same.
    pub(super) fn build(
        config: &UpstreamConfig,
        previous: Option<&UpstreamGroup>,
    ) -> UpstreamGroup {
        let targets = config
            .targets
            .iter()
            .map(|address| {
                let kept = previous.and_then(|p| p.targets.iter().find(|t| &t.address == address));
                Target {
                    address: address.clone(),
                    connections: kept
                        .and_then(|t| t.connections.clone())
                        .filter(|c| c.connect_timeout() == config.connect_timeout)
                        .or_else(|| {
                            let authority = address.parse().ok()?;
                            Some(TargetConnections::new(authority, config.connect_timeout))
                        }),
                    health: kept.map(|t| t.health.clone()).unwrap_or_default(),
                }
            })
            .collect();
        let same_targets = previous.is_some_and(|p| p.config.targets == config.targets);
        let next = match previous {
            Some(p) if same_targets => p.next.clone(),
            _ => Arc::default(),
        };
        UpstreamGroup {
            config: config.clone(),
            targets,
            next,
        }
    }

    /// The target the next request goes to, by index.
    pub(super) fn pick(&self, now: Instant) -> Option<usize> {
        let health: Vec<Health> = self
            .targets
            .iter()
            .map(|t| lock(&t.health).clone())
            .collect();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        choose(&health, start, now)
    }

    /// A connect error or timeout on target `index`.
    pub(super) fn record_failure(&self, index: usize, now: Instant) {
        if let Some(target) = self.targets.get(index) {
            let mut health = lock(&target.health);
            health.record_failure(now, self.config.max_fails, self.config.fail_timeout);
            if !health.is_up(now) {
                tracing::warn!(upstream = %self.config.name, target = %target.address, failures = health.consecutive_failures, "upstream target marked down");
            }
        }
    }

    /// A response from target `index`.
    pub(super) fn record_success(&self, index: usize) {
        if let Some(target) = self.targets.get(index) {
            lock(&target.health).record_success();
        }
    }

    pub(super) fn snapshot(&self, now: Instant) -> UpstreamHealth {
        UpstreamHealth {
            upstream: self.config.name.clone(),
            targets: self
                .targets
                .iter()
                .map(|t| {
                    let health = lock(&t.health);
                    TargetHealth {
                        address: t.address.clone(),
                        available: health.is_up(now),
                        consecutive_failures: health.consecutive_failures,
                        down_for_ms: health
                            .down_until
                            .filter(|until| *until > now)
                            .map(|until| (until - now).as_millis().try_into().unwrap_or(u64::MAX)),
                    }
                })
                .collect(),
        }
    }

    /// Sends `request` (origin-form URI, headers ready) to the group's next target and waits for
    /// the response headers, recording the outcome in the target's health.
    pub(crate) async fn send(
        &self,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let index = self
            .pick(Instant::now())
            .ok_or_else(|| UpstreamError::NoTarget(self.config.name.clone()))?;
        let target = &self.targets[index];
        let connections = target
            .connections
            .as_ref()
            .ok_or_else(|| UpstreamError::BadTarget(target.address.clone()))?;
        client::aim(&mut request)?;

        let timeout = self.config.request_timeout;
        let address = || target.address.clone();
        match tokio::time::timeout(timeout, connections.send(request)).await {
            Ok(Ok(response)) => {
                self.record_success(index);
                Ok(response)
            }
            Ok(Err(SendFailure::Connect(source))) => {
                self.record_failure(index, Instant::now());
                Err(UpstreamError::Connect {
                    target: address(),
                    source,
                })
            }
            Ok(Err(SendFailure::Exchange(source))) => Err(UpstreamError::Failed {
                target: address(),
                source,
            }),
            Err(_elapsed) => {
                self.record_failure(index, Instant::now());
                Err(UpstreamError::Timeout {
                    target: address(),
                    timeout,
                })
            }
        }
    }
}
