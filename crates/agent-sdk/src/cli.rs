//! [`ConnectArgs`]: the command-line flags every agent binary shares (`--connect`, `--agent-id`,
//! `--auth-token-env`, `--connections`, `--max-concurrent`, `--tls-ca`, `--tls-cert`,
//! `--tls-key`, `--tls-server-name` for `tls:` proxies, and the reconnection and liveness
//! timing `--reconnect-initial-ms`, `--reconnect-max-ms`, `--silent-heartbeats`), ready to
//! `#[command(flatten)]` into an agent's own clap parser, and their translation into a
//! [`RunnerConfig`].

use std::path::PathBuf;
use std::time::Duration;

use crate::address::ProxyAddr;
use crate::config::RunnerConfig;
use crate::error::ConfigError;
use crate::tls::TlsClientConfig;

/// The standard agent flags (PROTOCOL.md §8).
#[derive(Debug, Clone, clap::Parser)]
pub struct ConnectArgs {
    /// Proxy to dial: unix:/path/to/agents.sock, tcp:host:port or tls:host:port.
    /// Repeat to serve several proxies.
    #[arg(long = "connect", value_name = "ADDR", required = true)]
    pub connect: Vec<ProxyAddr>,
    /// The id this agent registers with, e.g. waf-1.
    #[arg(long, value_name = "ID")]
    pub agent_id: String,
    /// Environment variable holding the registration token.
    #[arg(long, value_name = "VAR")]
    pub auth_token_env: Option<String>,
    /// Connections kept open to each proxy.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub connections: usize,
    /// Events processed at once on one connection.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_concurrent: u32,
    /// PEM bundle of the CAs that may sign the proxy's certificate (needed for tls: proxies).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for proxies that require mutual TLS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (with --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name the proxy's certificate must carry; default: the host of the tls: address.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Ceiling of the first reconnection delay in milliseconds; it doubles with each failure.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub reconnect_initial_ms: u64,
    /// Largest reconnection delay in milliseconds (also the wait after a permanent refusal).
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub reconnect_max_ms: u64,
    /// Heartbeat intervals without any frame from a proxy before its connection is deemed
    /// dead (a silent link) and replaced.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub silent_heartbeats: u32,
}

impl ConnectArgs {
    /// The runner configuration these flags describe (reads the token variable now).
    pub fn to_config(&self) -> Result<RunnerConfig, ConfigError> {
        let mut config = RunnerConfig::new(self.agent_id.clone());
        config.proxies = self.connect.clone();
        config.connections_per_proxy = self.connections;
        config.max_concurrent_requests = self.max_concurrent;
        config.backoff.initial = Duration::from_millis(self.reconnect_initial_ms);
        config.backoff.max = Duration::from_millis(self.reconnect_max_ms);
        config.silent_heartbeats = self.silent_heartbeats;
        config.tls = TlsClientConfig {
            ca_file: self.tls_ca.clone(),
            cert_file: self.tls_cert.clone(),
            key_file: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
        };
        if let Some(name) = &self.auth_token_env {
            config.auth_token = Some(RunnerConfig::token_from_env(name)?);
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        connect: ConnectArgs,
        #[arg(long)]
        rules: Option<String>,
    }

    #[test]
    fn flags_parse_and_repeat() {
        std::env::set_var("SENTINEL_SDK_TEST_TOKEN_CLI", "t0ken");
        let cli = Cli::try_parse_from([
            "agent",
            "--connect",
            "unix:/run/a.sock",
            "--connect",
            "tcp:127.0.0.1:9090",
            "--agent-id",
            "waf-1",
            "--auth-token-env",
            "SENTINEL_SDK_TEST_TOKEN_CLI",
            "--connections",
            "2",
            "--rules",
            "r.json",
        ])
        .unwrap();
        let config = cli.connect.to_config().unwrap();
        assert_eq!(config.proxies.len(), 2);
        assert_eq!(config.connections_per_proxy, 2);
        assert_eq!(config.auth_token.unwrap().expose(), "t0ken");
        assert_eq!(cli.rules.as_deref(), Some("r.json"));
        assert_eq!(config.backoff.initial, Duration::from_secs(1), "default");
        assert_eq!(config.silent_heartbeats, 3, "default");
    }

    #[test]
    fn timing_flags_set_backoff_and_silence() {
        let cli = Cli::try_parse_from([
            "agent",
            "--connect",
            "tcp:127.0.0.1:9090",
            "--agent-id",
            "waf-1",
            "--reconnect-initial-ms",
            "200",
            "--reconnect-max-ms",
            "1000",
            "--silent-heartbeats",
            "2",
        ])
        .unwrap();
        let config = cli.connect.to_config().unwrap();
        assert_eq!(config.backoff.initial, Duration::from_millis(200));
        assert_eq!(config.backoff.max, Duration::from_secs(1));
        assert_eq!(config.silent_heartbeats, 2);
        // An initial delay above the maximum is refused, not silently clamped.
        let bad = Cli::try_parse_from([
            "agent",
            "--connect",
            "tcp:127.0.0.1:9090",
            "--agent-id",
            "waf-1",
            "--reconnect-initial-ms",
            "5000",
            "--reconnect-max-ms",
            "1000",
        ])
        .unwrap()
        .connect
        .to_config();
        assert!(bad.is_err());
    }

    #[test]
    fn tls_flags_fill_the_tls_settings() {
        let cli = Cli::try_parse_from([
            "agent",
            "--connect",
            "tls:proxy.internal:9443",
            "--agent-id",
            "waf-1",
            "--tls-ca",
            "/etc/sentinel/ca.pem",
            "--tls-cert",
            "/etc/agent.crt",
            "--tls-key",
            "/etc/agent.key",
            "--tls-server-name",
            "sentinel.internal",
        ])
        .unwrap();
        let config = cli.connect.to_config().unwrap();
        assert_eq!(
            config.tls.ca_file.as_deref(),
            Some("/etc/sentinel/ca.pem".as_ref())
        );
        assert_eq!(
            config.tls.cert_file.as_deref(),
            Some("/etc/agent.crt".as_ref())
        );
        assert_eq!(
            config.tls.key_file.as_deref(),
            Some("/etc/agent.key".as_ref())
        );
        assert_eq!(config.tls.server_name.as_deref(), Some("sentinel.internal"));
        // A certificate without its key is a usage error.
        let half = Cli::try_parse_from([
            "agent",
            "--connect",
            "tls:p:1",
            "--agent-id",
            "a",
            "--tls-ca",
            "ca",
            "--tls-cert",
            "c",
        ]);
        assert!(half.is_err());
        // tls: without a CA bundle says which flag is missing.
        let no_ca = Cli::try_parse_from(["agent", "--connect", "tls:p:1", "--agent-id", "a"])
            .unwrap()
            .connect
            .to_config()
            .unwrap_err();
        assert!(no_ca.to_string().contains("--tls-ca"), "{no_ca}");
    }

    #[test]
    fn bad_flags_fail_with_a_message() {
        let missing = Cli::try_parse_from(["agent", "--agent-id", "x"]);
        assert!(missing.is_err());
        let bad = Cli::try_parse_from(["agent", "--connect", "http:x", "--agent-id", "x"]);
        let err = bad.err().unwrap().to_string();
        assert!(err.contains("unknown scheme"), "{err}");
    }
}
