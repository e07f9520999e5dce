//! The `sentinel` process under test: its configuration file (written from a
//! [`ProxySettings`]), start-up until its admin `/health` answers 200, restart on the same
//! addresses and socket after a signal, and what its admin API says (registered agents,
//! metrics) and `/proc` says (resident memory, descriptors). Which faults to inject is the
//! scenarios' business.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use crate::admin;
use crate::error::FaultError;
use crate::process::{ProcessSpec, Supervised};
use crate::sys;

/// How long an admin call may take: the proxy shares two loaded cores with everything else.
pub const ADMIN_PATIENCE: Duration = Duration::from_secs(5);

/// How long start-up (until `/health` is 200) may take.
pub const START_PATIENCE: Duration = Duration::from_secs(30);

/// What goes into the proxy's configuration besides the addresses the harness picks.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `handshake-timeout` of the reverse listener.
    pub handshake_timeout: Duration,
    /// `max-frame-size` of registered agents' frames, in bytes.
    pub max_frame_size: u64,
    /// `max-connections-per-agent`.
    pub max_connections_per_agent: usize,
    /// Extra lines inside `reverse-listener { … }` (e.g. a throttle setting).
    pub extra_reverse_listener: String,
    /// The `agents { … }` and `routes { … }` blocks.
    pub agents_and_routes: String,
}

impl ProxySettings {
    /// Defaults for the given agents and routes: 10 s handshake timeout, 1 MiB frames,
    /// 8 connections per agent.
    pub fn new(agents_and_routes: &str) -> ProxySettings {
        ProxySettings {
            handshake_timeout: Duration::from_secs(10),
            max_frame_size: 1024 * 1024,
            max_connections_per_agent: 8,
            extra_reverse_listener: String::new(),
            agents_and_routes: agents_and_routes.to_string(),
        }
    }
}

/// The addresses of one proxy; they stay the same across restarts.
#[derive(Debug, Clone)]
pub struct ProxyAddresses {
    /// The reverse listener's Unix socket.
    pub socket: PathBuf,
    /// The HTTP listener.
    pub http: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The upstream `backend`.
    pub upstream: SocketAddr,
}

/// The configuration file text for `settings` on `addresses`.
pub fn config_text(settings: &ProxySettings, addresses: &ProxyAddresses) -> String {
    format!(
        r#"reverse-listener {{
    path "{socket}"
    max-connections-per-agent {per_agent}
    handshake-timeout "{handshake}ms"
    max-frame-size {frame}
    {extra}
}}
listeners {{
    listener "http" {{ address "{http}"; }}
}}
upstreams {{
    upstream "backend" {{ target "{upstream}"; }}
}}
admin {{ address "{admin}"; }}
shutdown-grace "5s"
{body}
"#,
        socket = addresses.socket.display(),
        per_agent = settings.max_connections_per_agent,
        handshake = settings.handshake_timeout.as_millis(),
        frame = settings.max_frame_size,
        extra = settings.extra_reverse_listener,
        http = addresses.http,
        upstream = addresses.upstream,
        admin = addresses.admin,
        body = settings.agents_and_routes,
    )
}

/// A running `sentinel --config FILE`.
pub struct Proxy {
    process: Supervised,
    addresses: ProxyAddresses,
}

impl Proxy {
    /// Writes the configuration into `dir` (free loopback ports for HTTP and admin, the socket
    /// `dir/agents.sock`), starts `sentinel` pinned to `cpu`, and waits for `/health`.
    pub async fn start(
        sentinel: &Path,
        dir: &Path,
        settings: &ProxySettings,
        upstream: SocketAddr,
        cpu: Option<usize>,
    ) -> Result<Proxy, FaultError> {
        let config_path = dir.join("sentinel.kdl");
        // The ports are picked free and released; should another process take one in between,
        // start again with new ones.
        let mut last_error = None;
        for _attempt in 0..3 {
            let addresses = ProxyAddresses {
                socket: dir.join("agents.sock"),
                http: free_port()?,
                admin: free_port()?,
                upstream,
            };
            std::fs::write(&config_path, config_text(settings, &addresses))
                .map_err(|e| FaultError::io("writing the proxy configuration", e))?;
            let process = Supervised::spawn(ProcessSpec {
                name: "sentinel".into(),
                program: sentinel.to_path_buf(),
                args: vec!["--config".into(), config_path.display().to_string()],
                // Info: connection losses and refusals are logged there, warnings alone
                // would not explain a failure.
                envs: vec![("RUST_LOG".into(), "info,sentinel::http::agents=warn".into())],
                cpu,
                log: dir.join("sentinel.log"),
            })?;
            let mut proxy = Proxy { process, addresses };
            match proxy.wait_healthy().await {
                Ok(_) => return Ok(proxy),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| FaultError::Protocol("proxy did not start".into())))
    }

    /// Its addresses.
    pub fn addresses(&self) -> &ProxyAddresses {
        &self.addresses
    }

    /// The pid of the current incarnation.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The supervised process (for signals).
    pub fn process(&mut self) -> &mut Supervised {
        &mut self.process
    }

    /// `Err` with the end of its log if it has exited.
    pub fn check_running(&mut self) -> Result<(), FaultError> {
        self.process.check_running()
    }

    /// Waits until `/health` answers 200; returns how long that took.
    pub async fn wait_healthy(&mut self) -> Result<Duration, FaultError> {
        let started = Instant::now();
        loop {
            self.process.check_running()?;
            let health = admin::get(self.addresses.admin, "/health", ADMIN_PATIENCE).await;
            if matches!(health, Ok((StatusCode::OK, _))) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > START_PATIENCE {
                return Err(FaultError::timeout(
                    format!("sentinel /health (log:\n{})", self.process.log_tail(20)),
                    START_PATIENCE,
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends `signal` (SIGTERM for a graceful stop, SIGKILL for a crash), waits for the exit,
    /// starts it again on the same configuration and waits for `/health`. Returns the time
    /// from the signal until `/health` answered again.
    pub async fn restart(&mut self, signal: i32) -> Result<Duration, FaultError> {
        let started = Instant::now();
        self.process.signal(signal)?;
        self.process.wait_exit(Duration::from_secs(20)).await?;
        self.process.respawn()?;
        self.wait_healthy().await?;
        Ok(started.elapsed())
    }

    /// `GET /agents`, parsed.
    pub async fn agents(&self) -> Result<Value, FaultError> {
        let (status, body) = admin::get(self.addresses.admin, "/agents", ADMIN_PATIENCE).await?;
        if status != StatusCode::OK {
            return Err(FaultError::Http {
                what: "GET /agents".into(),
                detail: format!("status {status}"),
            });
        }
        serde_json::from_slice(&body).map_err(|e| FaultError::Protocol(format!("/agents: {e}")))
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> Result<String, FaultError> {
        let (status, body) = admin::get(self.addresses.admin, "/metrics", ADMIN_PATIENCE).await?;
        if status != StatusCode::OK {
            return Err(FaultError::Http {
                what: "GET /metrics".into(),
                detail: format!("status {status}"),
            });
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Live connections of `agent_id` as `/agents` lists them, counting only those of the
    /// process `pid` (from its registration metadata) when given.
    pub async fn connections_of(
        &self,
        agent_id: &str,
        pid: Option<u32>,
    ) -> Result<usize, FaultError> {
        Ok(count_connections(&self.agents().await?, agent_id, pid))
    }

    /// Requests in flight over every live connection of `agent_id`, as `/agents` shows.
    pub async fn in_flight_of(&self, agent_id: &str) -> Result<u64, FaultError> {
        let agents = self.agents().await?;
        Ok(agents["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["agent_id"] == agent_id)
            .flat_map(|a| a["connections"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["in_flight"].as_u64())
            .sum())
    }

    /// Waits until every `(agent_id, pid, connections)` is listed with exactly that many
    /// connections by process `pid`; returns how long that took. Fails when the proxy exits
    /// or after `limit`.
    pub async fn wait_registered(
        &mut self,
        expected: &[(&str, u32, usize)],
        limit: Duration,
    ) -> Result<Duration, FaultError> {
        let started = Instant::now();
        loop {
            self.process.check_running()?;
            if let Ok(agents) = self.agents().await {
                let all = expected
                    .iter()
                    .all(|(id, pid, n)| count_connections(&agents, id, Some(*pid)) == *n);
                if all {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > limit {
                let listed = self
                    .agents()
                    .await
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                return Err(FaultError::timeout(
                    format!("agents {expected:?} to register; /agents: {listed}"),
                    limit,
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `agent_id` has no live connection; returns how long that took.
    pub async fn wait_unregistered(
        &self,
        agent_id: &str,
        limit: Duration,
    ) -> Result<Duration, FaultError> {
        let started = Instant::now();
        loop {
            if matches!(self.connections_of(agent_id, None).await, Ok(0)) {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(FaultError::timeout(
                    format!("{agent_id} to leave /agents"),
                    limit,
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Resident memory (bytes) and open descriptors of the proxy process now.
    pub fn resources(&self) -> Result<(u64, u64), FaultError> {
        let pid = self.process.pid();
        Ok((sys::rss_bytes(pid)?, sys::fd_count(pid)?))
    }
}

fn count_connections(agents: &Value, agent_id: &str, pid: Option<u32>) -> usize {
    agents["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["agent_id"] == agent_id)
        .filter(|a| pid.is_none_or(|pid| a["metadata"]["pid"] == pid))
        .map(|a| a["connections"].as_array().map_or(0, Vec::len))
        .sum()
}

/// A free loopback port: bound, then released for the proxy to take.
pub fn free_port() -> Result<SocketAddr, FaultError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| FaultError::io("finding a free port", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_connections_per_agent_and_process() {
        let agents = serde_json::json!({"agents": [
            {"agent_id": "waf-a", "metadata": {"pid": 7}, "connections": [{}, {}]},
            {"agent_id": "waf-a", "metadata": {"pid": 8}, "connections": [{}]},
            {"agent_id": "waf-b", "metadata": {"pid": 9}, "connections": [{}]},
        ]});
        assert_eq!(count_connections(&agents, "waf-a", None), 3);
        assert_eq!(count_connections(&agents, "waf-a", Some(7)), 2);
        assert_eq!(count_connections(&agents, "waf-a", Some(9)), 0);
        assert_eq!(count_connections(&agents, "nobody", None), 0);
    }

    #[test]
    fn config_names_every_address() {
        let addresses = ProxyAddresses {
            socket: PathBuf::from("/tmp/x/agents.sock"),
            http: "127.0.0.1:1".parse().expect("addr"),
            admin: "127.0.0.1:2".parse().expect("addr"),
            upstream: "127.0.0.1:3".parse().expect("addr"),
        };
        let text = config_text(&ProxySettings::new("routes {}"), &addresses);
        for needle in [
            "/tmp/x/agents.sock",
            "127.0.0.1:1",
            "127.0.0.1:2",
            "127.0.0.1:3",
            "routes {}",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
    }
}
