//! [`Runner`]: keeps `connections_per_proxy` registered connections to every configured proxy.
//! Each connection slot is a task that dials, registers, serves until the connection ends, and
//! starts over after a backoff delay — full jitter for transient failures, near the maximum for
//! permanent refusals, reset once a connection stayed up. Shutdown drains every connection.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use sentinel_agent_protocol::{Capabilities, RegistrationRequest, PROTOCOL_VERSION};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::address::ProxyAddr;
use crate::agent::{Agent, Events};
use crate::backoff::{Backoff, BackoffConfig};
use crate::config::RunnerConfig;
use crate::connection::{self, Shared};
use crate::error::{ConfigError, RegisterError, RunError};
use crate::events::{Disconnect, EventSink, RunnerEvent};
use crate::register::register;
use crate::tls::TlsDialer;
use crate::{config_push, metadata};

/// Runs an agent: connects, registers, serves, reconnects, drains.
///
/// ```no_run
/// # use sentinel_agent_sdk::prelude::*;
/// # struct MyAgent;
/// # impl Agent for MyAgent {}
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = RunnerConfig::new("my-agent");
/// config.proxies.push("unix:/var/run/sentinel/agents.sock".parse()?);
/// Runner::new(MyAgent, config)?.run_until_signal().await?;
/// # Ok(()) }
/// ```
pub struct Runner<A> {
    agent: Arc<A>,
    config: Arc<RunnerConfig>,
    request: RegistrationRequest,
    events: EventSink,
    tls: Option<TlsDialer>,
}

impl<A: Agent> Runner<A> {
    /// A runner for `agent`; fails if `config` is invalid, including TLS files that cannot
    /// be read or used (they are loaded here, once).
    pub fn new(agent: A, config: RunnerConfig) -> Result<Runner<A>, ConfigError> {
        config.validate()?;
        let tls = match config.proxies.iter().find(|p| p.is_tls()) {
            Some(first) => Some(TlsDialer::new(&config.tls, &first.to_string())?),
            None => None,
        };
        let request = registration_request(&config, agent.events());
        Ok(Runner {
            agent: Arc::new(agent),
            config: Arc::new(config),
            request,
            events: EventSink::new(),
            tls,
        })
    }

    /// The RegistrationRequest every connection sends (its `Debug` masks the token).
    pub fn registration_request(&self) -> &RegistrationRequest {
        &self.request
    }

    /// The agent, shared with the running handlers.
    pub fn agent(&self) -> &Arc<A> {
        &self.agent
    }

    /// Events about the runner's connections, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RunnerEvent> {
        self.events.subscribe()
    }

    /// Runs until `shutdown` is cancelled, then sends GoAway on every connection, lets
    /// in-flight requests finish within `drain_grace`, and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let (config_queue, config_worker) =
            config_push::start(self.agent.clone(), self.events.clone());
        let shared = Arc::new(Shared {
            agent: self.agent,
            config: self.config.clone(),
            request: self.request,
            config_queue,
            events: self.events,
            tls: self.tls,
        });
        let config = &self.config;
        tracing::info!(
            agent_id = %config.agent_id,
            proxies = config.proxies.len(),
            connections_per_proxy = config.connections_per_proxy,
            "agent starting"
        );
        let mut slots = JoinSet::new();
        let mut index = 0u64;
        for proxy in &config.proxies {
            for slot in 0..config.connections_per_proxy {
                let backoff = BackoffConfig {
                    seed: config.backoff.seed.map(|s| s.wrapping_add(index)),
                    ..config.backoff
                };
                index += 1;
                slots.spawn(run_slot(
                    shared.clone(),
                    proxy.clone(),
                    slot,
                    Backoff::new(backoff),
                    shutdown.clone(),
                ));
            }
        }
        while let Some(ended) = slots.join_next().await {
            if let Err(e) = ended {
                tracing::error!("a connection slot failed: {e}");
            }
        }
        drop(shared);
        let _ = config_worker.await;
        tracing::info!(agent_id = %config.agent_id, "agent stopped");
    }

    /// [`Runner::run`] until SIGTERM or ctrl-c.
    pub async fn run_until_signal(self) -> Result<(), RunError> {
        let shutdown = crate::shutdown::shutdown_on_signal()?;
        self.run(shutdown).await;
        Ok(())
    }
}

/// The capabilities follow from the declared events; cancellation is always supported.
fn registration_request(config: &RunnerConfig, events: Events) -> RegistrationRequest {
    let mut metadata = metadata::defaults(&config.version, SystemTime::now());
    metadata.extend(config.metadata.clone());
    let bodies = events.contains(Events::REQUEST_BODY) || events.contains(Events::RESPONSE_BODY);
    RegistrationRequest {
        protocol_version: PROTOCOL_VERSION,
        agent_id: config.agent_id.clone(),
        capabilities: Capabilities {
            handles_request_headers: events.contains(Events::REQUEST_HEADERS),
            handles_request_body: events.contains(Events::REQUEST_BODY),
            handles_response_headers: events.contains(Events::RESPONSE_HEADERS),
            handles_response_body: events.contains(Events::RESPONSE_BODY),
            supports_streaming: bodies,
            supports_cancellation: true,
            max_concurrent_requests: Some(config.max_concurrent_requests),
        },
        auth_token: config.auth_token.clone(),
        metadata,
        encodings: config
            .encodings
            .iter()
            .map(|e| e.as_str().to_string())
            .collect(),
    }
}

/// One connection slot: connect, serve, back off, again, until shutdown.
async fn run_slot<A: Agent>(
    shared: Arc<Shared<A>>,
    proxy: ProxyAddr,
    slot: usize,
    mut backoff: Backoff,
    shutdown: CancellationToken,
) {
    let config = &shared.config;
    let events = &shared.events;
    while !shutdown.is_cancelled() {
        events.emit(RunnerEvent::Connecting {
            proxy: proxy.clone(),
            slot,
        });
        let attempt = tokio::select! {
            attempt = register(&proxy, shared.tls.as_ref(), &shared.request, config.registration_timeout, config.max_frame_length) => attempt,
            _ = shutdown.cancelled() => break,
        };
        let permanent = match attempt {
            Ok(registered) => {
                let assigned_id = registered.assigned_id.clone();
                tracing::info!(%proxy, slot, %assigned_id, encoding = %registered.encoding, "registered");
                events.emit(RunnerEvent::Registered {
                    proxy: proxy.clone(),
                    slot,
                    assigned_id: assigned_id.clone(),
                    encoding: registered.encoding,
                });
                let since = Instant::now();
                let reason = connection::serve(registered, &shared, &shutdown).await;
                let uptime = since.elapsed();
                log_disconnect(&proxy, &assigned_id, &reason);
                events.emit(RunnerEvent::Disconnected {
                    proxy: proxy.clone(),
                    slot,
                    assigned_id,
                    reason: reason.clone(),
                    uptime,
                });
                if reason == Disconnect::Shutdown || shutdown.is_cancelled() {
                    break;
                }
                backoff.connection_ended(uptime);
                false
            }
            Err(error) => {
                log_failure(&proxy, slot, &error);
                events.emit(RunnerEvent::RegistrationFailed {
                    proxy: proxy.clone(),
                    slot,
                    code: match &error {
                        RegisterError::Rejected { code, .. } => Some(*code),
                        _ => None,
                    },
                    permanent: error.is_permanent(),
                    error: error.to_string(),
                });
                error.is_permanent()
            }
        };
        let (delay, ceiling) = if permanent {
            (backoff.permanent_delay(), config.backoff.max)
        } else {
            let ceiling = backoff.ceiling();
            (backoff.next_delay(), ceiling)
        };
        tracing::debug!(%proxy, slot, ?delay, "next connection attempt after backoff");
        events.emit(RunnerEvent::Backoff {
            proxy: proxy.clone(),
            slot,
            delay,
            ceiling,
            permanent,
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    events.emit(RunnerEvent::Stopped { proxy, slot });
}

fn log_failure(proxy: &ProxyAddr, slot: usize, error: &RegisterError) {
    if error.is_permanent() {
        tracing::error!(%proxy, slot, "registration refused for good: {error}. Retrying cannot fix this: check the agent id, its token and the proxy's allowed agents. Trying again only after the maximum backoff delay");
    } else if error.is_unreachable() {
        tracing::info!(%proxy, slot, "proxy unreachable: {error}");
    } else {
        tracing::warn!(%proxy, slot, "registration failed, will retry: {error}");
    }
}

fn log_disconnect(proxy: &ProxyAddr, assigned_id: &str, reason: &Disconnect) {
    match reason {
        Disconnect::Shutdown => {
            tracing::info!(%proxy, %assigned_id, "connection closed for shutdown")
        }
        Disconnect::Drained => {
            tracing::info!(%proxy, %assigned_id, "connection drained at the proxy's request; reconnecting")
        }
        other => {
            tracing::warn!(%proxy, %assigned_id, reason = ?other, "connection lost; reconnecting")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct BodyAgent;

    impl Agent for BodyAgent {
        fn events(&self) -> Events {
            Events::REQUEST_HEADERS | Events::REQUEST_BODY
        }
    }

    #[test]
    fn capabilities_and_metadata_follow_the_declaration() {
        let mut config = RunnerConfig::new("waf-1");
        config.proxies.push("tcp:127.0.0.1:9".parse().unwrap());
        config.max_concurrent_requests = 7;
        config.version = "9.9.9".into();
        config.metadata.insert("rules".into(), "crs-4".into());
        config.metadata.insert("pid".into(), 1.into());
        let runner = Runner::new(BodyAgent, config).unwrap();
        let request = runner.registration_request();
        let caps = &request.capabilities;
        assert!(caps.handles_request_headers && caps.handles_request_body);
        assert!(!caps.handles_response_headers && !caps.handles_response_body);
        assert!(caps.supports_streaming && caps.supports_cancellation);
        assert_eq!(caps.max_concurrent_requests, Some(7));
        assert_eq!(request.encodings, ["msgpack", "json"]);
        assert_eq!(request.metadata["version"], "9.9.9");
        assert_eq!(request.metadata["rules"], "crs-4");
        assert_eq!(request.metadata["pid"], 1, "the author's entries win");
        assert!(request.metadata.contains_key("hostname"));
        assert!(request.metadata.contains_key("started_at"));
    }
}
