//! The `sentinel` process under test: its configuration (built from a [`ProxySettings`] with
//! the typed builder of `sentinel_test_support::config`), start-up on port 0 with the bound
//! ports read back from its log, until its admin `/health` answers 200, restart on the same
//! addresses and socket after a signal, and what its admin API says (registered agents,
//! metrics) and `/proc` says (resident memory, descriptors). Which faults to inject is the
//! scenarios' business.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::StatusCode;
use sentinel_test_support::config::{
    Admin, Agent, Listener, ProxyConfig, ReverseListener, Route, Upstream,
};
use sentinel_test_support::ports::ANY_LOOPBACK;
use sentinel_test_support::process::{ProcessSpec, Supervised};
use sentinel_test_support::wait::{try_wait_for, wait_for, WaitError};
use sentinel_test_support::{agents_listing, os};
use serde_json::Value;

use crate::admin;
use crate::error::FaultError;

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
    /// The logical agents.
    pub agents: Vec<Agent>,
    /// The routes (to the upstream `backend`).
    pub routes: Vec<Route>,
}

impl ProxySettings {
    /// Defaults for the given agents and routes: 10 s handshake timeout, 1 MiB frames,
    /// 8 connections per agent.
    pub fn new(agents: Vec<Agent>, routes: Vec<Route>) -> ProxySettings {
        ProxySettings {
            handshake_timeout: Duration::from_secs(10),
            max_frame_size: 1024 * 1024,
            max_connections_per_agent: 8,
            agents,
            routes,
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

/// The configuration for `settings` on `addresses` (port 0 lets the proxy pick).
pub fn config(settings: &ProxySettings, addresses: &ProxyAddresses) -> ProxyConfig {
    let mut config = ProxyConfig::new()
        .reverse_listener(
            ReverseListener::unix(&addresses.socket)
                .max_connections_per_agent(settings.max_connections_per_agent)
                .handshake_timeout(settings.handshake_timeout)
                .max_frame_size(settings.max_frame_size),
        )
        .listener(Listener::new("http", addresses.http))
        .upstream(Upstream::new("backend", addresses.upstream))
        .admin(Admin::new(addresses.admin))
        .shutdown_grace(Duration::from_secs(5));
    for agent in &settings.agents {
        config = config.agent(agent.clone());
    }
    for route in &settings.routes {
        config = config.route(route.clone());
    }
    config
}

/// A running `sentinel --config FILE`.
pub struct Proxy {
    process: Supervised,
    addresses: ProxyAddresses,
}

impl Proxy {
    /// Writes the configuration into `dir` (HTTP and admin on port 0, the socket
    /// `dir/agents.sock`), starts `sentinel` pinned to `cpu`, reads the ports it bound from its
    /// log, and waits for `/health`. The configuration is then rewritten with those ports, so
    /// a restart comes back on the same addresses.
    pub async fn start(
        sentinel: &Path,
        dir: &Path,
        settings: &ProxySettings,
        upstream: SocketAddr,
        cpu: Option<usize>,
    ) -> Result<Proxy, FaultError> {
        let config_path = dir.join("sentinel.kdl");
        let mut addresses = ProxyAddresses {
            socket: dir.join("agents.sock"),
            http: ANY_LOOPBACK,
            admin: ANY_LOOPBACK,
            upstream,
        };
        write_config(&config_path, settings, &addresses)?;
        let spec = ProcessSpec::new("sentinel", sentinel)
            .args(["--config".to_string(), config_path.display().to_string()])
            // Info: connection losses and refusals are logged there, warnings alone would not
            // explain a failure; the `sentinel started` line names the bound ports.
            .env("RUST_LOG", "info,sentinel::http::agents=warn")
            .cpu(cpu)
            .log_file(dir.join("sentinel.log"));
        let mut process = Supervised::spawn(spec)?;
        let bound = process.sentinel_addresses(START_PATIENCE).await?;
        let bound = bound
            .http
            .first()
            .copied()
            .zip(bound.admin)
            .ok_or_else(|| {
                FaultError::Protocol(format!(
                    "the `sentinel started` line names no HTTP or admin address (log:\n{})",
                    process.log_tail(20)
                ))
            })?;
        (addresses.http, addresses.admin) = bound;
        write_config(&config_path, settings, &addresses)?;
        let mut proxy = Proxy { process, addresses };
        proxy.wait_healthy().await?;
        Ok(proxy)
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
        Ok(self.process.check_running()?)
    }

    /// Waits until `/health` answers 200; returns how long that took.
    pub async fn wait_healthy(&mut self) -> Result<Duration, FaultError> {
        let address = self.addresses.admin;
        let process = &mut self.process;
        let waited = try_wait_for("sentinel /health to answer 200", START_PATIENCE, || {
            let running = process.check_running();
            async move {
                running?;
                let health = admin::get(address, "/health", ADMIN_PATIENCE).await;
                Ok::<bool, FaultError>(matches!(health, Ok((StatusCode::OK, _))))
            }
        })
        .await;
        waited.map_err(|e| with_log(e, &self.process))
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
        agents_at(self.addresses.admin).await
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
        Ok(agents_listing::connections_of(
            &self.agents().await?,
            agent_id,
            pid,
        ))
    }

    /// Requests in flight over every live connection of `agent_id`, as `/agents` shows.
    pub async fn in_flight_of(&self, agent_id: &str) -> Result<u64, FaultError> {
        Ok(agents_listing::in_flight_of(
            &self.agents().await?,
            agent_id,
        ))
    }

    /// Waits until every `(agent_id, pid, connections)` is listed with exactly that many
    /// connections by process `pid`; returns how long that took. Fails when the proxy exits
    /// or after `limit`.
    pub async fn wait_registered(
        &mut self,
        expected: &[(&str, u32, usize)],
        limit: Duration,
    ) -> Result<Duration, FaultError> {
        let address = self.addresses.admin;
        let process = &mut self.process;
        let what = format!("agents {expected:?} to register");
        let waited = try_wait_for(&what, limit, || {
            let running = process.check_running();
            async move {
                running?;
                let all = agents_at(address).await.is_ok_and(|agents| {
                    expected.iter().all(|(id, pid, n)| {
                        agents_listing::connections_of(&agents, id, Some(*pid)) == *n
                    })
                });
                Ok::<bool, FaultError>(all)
            }
        })
        .await;
        match waited {
            Ok(took) => Ok(took),
            Err(WaitError::TimedOut(e)) => {
                let listed = self
                    .agents()
                    .await
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                Err(FaultError::timeout(
                    format!("{}; /agents: {listed}", e.what),
                    e.within,
                ))
            }
            Err(WaitError::Failed { source, .. }) => Err(source),
        }
    }

    /// Waits until `agent_id` has no live connection; returns how long that took.
    pub async fn wait_unregistered(
        &self,
        agent_id: &str,
        limit: Duration,
    ) -> Result<Duration, FaultError> {
        let what = format!("{agent_id} to leave /agents");
        let waited = wait_for(&what, limit, || async {
            matches!(self.connections_of(agent_id, None).await, Ok(0))
        })
        .await;
        waited.map_err(|e| FaultError::timeout(e.what, e.within))
    }

    /// Resident memory (bytes) and open descriptors of the proxy process now.
    /// The proxy's peak virtual memory size: reservations the resident set does not show,
    /// even short-lived ones.
    pub fn virtual_peak(&self) -> Result<u64, FaultError> {
        Ok(os::vm_peak_bytes(self.process.pid())?)
    }

    pub fn resources(&self) -> Result<(u64, u64), FaultError> {
        let pid = self.process.pid();
        Ok((os::rss_bytes(pid)?, os::fd_count(pid)?))
    }
}

/// `GET /agents` on the admin listener at `address`, parsed.
async fn agents_at(address: SocketAddr) -> Result<Value, FaultError> {
    let (status, body) = admin::get(address, "/agents", ADMIN_PATIENCE).await?;
    if status != StatusCode::OK {
        return Err(FaultError::Http {
            what: "GET /agents".into(),
            detail: format!("status {status}"),
        });
    }
    serde_json::from_slice(&body).map_err(|e| FaultError::Protocol(format!("/agents: {e}")))
}

/// A wait's failure as a [`FaultError`]; a timeout quotes the end of the proxy's log.
fn with_log(error: WaitError<FaultError>, process: &Supervised) -> FaultError {
    match error {
        WaitError::TimedOut(e) => FaultError::timeout(
            format!("{} (log:\n{})", e.what, process.log_tail(20)),
            e.within,
        ),
        WaitError::Failed { source, .. } => source,
    }
}

fn write_config(
    path: &Path,
    settings: &ProxySettings,
    addresses: &ProxyAddresses,
) -> Result<(), FaultError> {
    config(settings, addresses)
        .write_to(path)
        .map_err(|e| FaultError::io("writing the proxy configuration", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_address() {
        let addresses = ProxyAddresses {
            socket: PathBuf::from("/tmp/x/agents.sock"),
            http: "127.0.0.1:1".parse().expect("addr"),
            admin: "127.0.0.1:2".parse().expect("addr"),
            upstream: "127.0.0.1:3".parse().expect("addr"),
        };
        let settings = ProxySettings::new(Vec::new(), vec![Route::new("all", "backend")]);
        let text = config(&settings, &addresses).render();
        for needle in [
            "/tmp/x/agents.sock",
            "127.0.0.1:1",
            "127.0.0.1:2",
            "127.0.0.1:3",
            "route \"all\"",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
    }
}
