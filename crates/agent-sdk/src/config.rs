//! [`RunnerConfig`]: everything the runner needs besides the agent — who the agent is (id,
//! token, metadata), where the proxies are, how many connections to keep, and the timing of
//! reconnects, heartbeats and draining — plus its validation. Durations are `Duration`s.

use std::time::Duration;

use sentinel_agent_protocol::{is_valid_agent_id, AuthToken, Encoding, DEFAULT_MAX_FRAME_LENGTH};
use serde_json::{Map, Value};

use crate::address::ProxyAddr;
use crate::backoff::BackoffConfig;
use crate::error::ConfigError;
use crate::tls::TlsClientConfig;

/// How the runner connects and behaves. `Debug` masks the token.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The id the agent registers with, e.g. `waf-1`.
    pub agent_id: String,
    /// Proxies to serve; each gets `connections_per_proxy` connections.
    pub proxies: Vec<ProxyAddr>,
    /// Token sent at registration, when the proxy requires auth.
    pub auth_token: Option<AuthToken>,
    /// Connections kept open to each proxy (default 4).
    pub connections_per_proxy: usize,
    /// Events processed at once on one connection, announced to the proxy (default 100).
    pub max_concurrent_requests: u32,
    /// Reconnection timing.
    pub backoff: BackoffConfig,
    /// Time for dialing plus the registration exchange (default 10 s).
    pub registration_timeout: Duration,
    /// After our own GoAway, how long in-flight requests may take (default 10 s).
    pub drain_grace: Duration,
    /// Heartbeat intervals without any frame from the proxy before the connection is deemed
    /// dead and replaced (default 3).
    pub silent_heartbeats: u32,
    /// Longest a write may block before the connection is deemed dead (default 10 s).
    pub write_timeout: Duration,
    /// Consecutive undecodable frames tolerated before reconnecting (default 3).
    pub max_consecutive_errors: u32,
    /// Largest frame accepted from the proxy (default 16 MiB).
    pub max_frame_length: usize,
    /// Requests whose context is kept between events on one connection; beyond it the least
    /// recently used is dropped (default 4096).
    pub max_tracked_requests: usize,
    /// The agent's version, sent as metadata `version` (default: the SDK's version).
    pub version: String,
    /// Extra metadata; entries here override the defaults (`hostname`, `pid`, …).
    pub metadata: Map<String, Value>,
    /// Payload encodings offered, preferred first (default MessagePack, then JSON).
    pub encodings: Vec<Encoding>,
    /// How `tls:` proxies are dialled (CA bundle, client certificate, server name).
    pub tls: TlsClientConfig,
}

impl RunnerConfig {
    /// Defaults for `agent_id`, with no proxy yet.
    pub fn new(agent_id: impl Into<String>) -> RunnerConfig {
        RunnerConfig {
            agent_id: agent_id.into(),
            proxies: Vec::new(),
            auth_token: None,
            connections_per_proxy: 4,
            max_concurrent_requests: 100,
            backoff: BackoffConfig::default(),
            registration_timeout: Duration::from_secs(10),
            drain_grace: Duration::from_secs(10),
            silent_heartbeats: 3,
            write_timeout: Duration::from_secs(10),
            max_consecutive_errors: 3,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            max_tracked_requests: 4096,
            version: env!("CARGO_PKG_VERSION").to_string(),
            metadata: Map::new(),
            encodings: Encoding::SUPPORTED.to_vec(),
            tls: TlsClientConfig::default(),
        }
    }

    /// Reads the auth token from environment variable `name`.
    pub fn token_from_env(name: &str) -> Result<AuthToken, ConfigError> {
        match std::env::var(name) {
            Ok(token) if !token.trim().is_empty() => Ok(AuthToken::new(token.trim())),
            _ => Err(ConfigError::MissingTokenEnv(name.to_string())),
        }
    }

    /// Checks the configuration; the runner refuses to start with an invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_valid_agent_id(&self.agent_id) {
            return Err(ConfigError::InvalidAgentId(self.agent_id.clone()));
        }
        if self.proxies.is_empty() {
            return Err(ConfigError::NoProxy);
        }
        let first_tls = self
            .proxies
            .iter()
            .find(|p| p.is_tls())
            .map(|p| p.to_string());
        self.tls.check(first_tls.as_deref())?;
        let counts = [
            (self.connections_per_proxy, "connections per proxy"),
            (
                self.max_concurrent_requests as usize,
                "max concurrent requests",
            ),
            (self.silent_heartbeats as usize, "silent heartbeats"),
            (
                self.max_consecutive_errors as usize,
                "max consecutive errors",
            ),
            (self.max_tracked_requests, "max tracked requests"),
        ];
        if let Some((_, what)) = counts.iter().find(|(n, _)| *n == 0) {
            return Err(ConfigError::Zero(what));
        }
        let backoff = &self.backoff;
        if backoff.initial.is_zero() || backoff.initial > backoff.max {
            return Err(ConfigError::Backoff(format!(
                "the initial delay ({:?}) must be above zero and at most the maximum ({:?})",
                backoff.initial, backoff.max
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> RunnerConfig {
        let mut config = RunnerConfig::new("waf-1");
        config.proxies.push("unix:/tmp/x.sock".parse().unwrap());
        config
    }

    #[test]
    fn defaults_follow_the_issue() {
        let config = valid();
        assert!(config.validate().is_ok());
        assert_eq!(config.connections_per_proxy, 4);
        assert_eq!(config.backoff.initial, Duration::from_secs(1));
        assert_eq!(config.backoff.max, Duration::from_secs(30));
        assert_eq!(config.encodings, [Encoding::MessagePack, Encoding::Json]);
    }

    #[test]
    fn invalid_configurations_are_refused_with_a_reason() {
        let mut c = valid();
        c.agent_id = "bad id".into();
        assert!(matches!(c.validate(), Err(ConfigError::InvalidAgentId(_))));
        let mut c = valid();
        c.proxies.clear();
        assert!(matches!(c.validate(), Err(ConfigError::NoProxy)));
        let mut c = valid();
        c.proxies.push("tls:proxy:9443".parse().unwrap());
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("--tls-ca"), "{err}");
        c.tls.ca_file = Some("/etc/sentinel/ca.pem".into());
        assert!(c.validate().is_ok());
        c.tls.cert_file = Some("/etc/agent.crt".into());
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("--tls-key"), "{err}");
        let mut c = valid();
        c.connections_per_proxy = 0;
        assert!(matches!(c.validate(), Err(ConfigError::Zero(_))));
        let mut c = valid();
        c.backoff.initial = Duration::from_secs(60);
        assert!(matches!(c.validate(), Err(ConfigError::Backoff(_))));
    }

    #[test]
    fn token_from_env_and_never_in_debug() {
        std::env::set_var("SENTINEL_SDK_TEST_TOKEN_CONFIG", "hunter2-secret");
        let mut c = valid();
        c.auth_token =
            Some(RunnerConfig::token_from_env("SENTINEL_SDK_TEST_TOKEN_CONFIG").unwrap());
        assert!(!format!("{c:?}").contains("hunter2"));
        let err = RunnerConfig::token_from_env("SENTINEL_SDK_SURELY_UNSET").unwrap_err();
        assert!(
            err.to_string().contains("SENTINEL_SDK_SURELY_UNSET"),
            "{err}"
        );
    }
}
