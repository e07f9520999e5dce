//! The `sentinel` binary under test: its configuration, built with test-support's typed
//! builder around the test's [`Policy`] (agents and routes), the process started on it with
//! every port bound to 0 and read back from its `sentinel started` line, and the admin
//! endpoints (`/agents`, `/metrics`) the tests look at. The upstream and the HTTP client are
//! the parent module's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use sentinel_test_support::config::{
    Admin, Listener, ProxyConfig, ReverseListener, Upstream as UpstreamBlock,
};
use sentinel_test_support::ports::{SentinelAddresses, ANY_LOOPBACK};
use sentinel_test_support::prometheus::metric_sum;
use sentinel_test_support::wait::{eventually, try_wait_for, WaitError};
use serde_json::Value;

use super::{agent_binary, sentinel_binary, Http, Process, Upstream, PATIENCE};

/// The test's part of the configuration: its logical agents and routes (routes go to the
/// fixture's upstream `backend`), added to the fixture's base by [`config`].
pub type Policy = ProxyConfig;

/// Settings added to the fixture's `reverse-listener` and `admin` blocks.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Directives after the base ones (a `tcp-address`, `require-auth`, tokens).
    pub reverse_listener: ReverseListener,
    /// The admin block's `token-file`.
    pub admin_token_file: Option<PathBuf>,
}

/// A whole configuration: the reverse listener on `socket` (4 connections per agent, a 10 s
/// handshake timeout, then `extras`), one HTTP listener on `http`, the upstream `backend` at
/// `upstream`, the admin listener on `admin`, a 30 s shutdown grace, and the test's `policy`.
pub fn config(
    socket: &Path,
    http: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    extras: &Extras,
    policy: &Policy,
) -> ProxyConfig {
    let reverse = ReverseListener::unix(socket)
        .max_connections_per_agent(4)
        .handshake_timeout(Duration::from_secs(10))
        .extend(extras.reverse_listener.clone());
    let admin = match &extras.admin_token_file {
        Some(file) => Admin::new(admin).token_file(file),
        None => Admin::new(admin),
    };
    ProxyConfig::new()
        .reverse_listener(reverse)
        .listener(Listener::new("http", http))
        .upstream(UpstreamBlock::new("backend", upstream))
        .admin(admin)
        .shutdown_grace(Duration::from_secs(30))
        .extend(policy.clone())
}

/// The `sentinel` binary running on a configuration written by the test.
pub struct Sentinel {
    /// The process.
    pub process: Process,
    /// Client for its HTTP listener.
    pub http: Http,
    /// Client for its admin listener.
    pub admin: Http,
    /// The agents' Unix socket.
    pub socket: PathBuf,
    /// The reverse listener's TCP address, when the extras asked for one.
    pub agents_tcp: Option<SocketAddr>,
    /// The configuration file (re-read on SIGHUP).
    pub config_path: PathBuf,
    upstream: SocketAddr,
    extras: Extras,
}

impl Sentinel {
    /// Writes the configuration into `dir`, starts `sentinel --config FILE`, and waits until its
    /// admin `/health` answers 200.
    pub async fn start(dir: &Path, upstream: &Upstream, policy: &Policy) -> Sentinel {
        Sentinel::start_with(dir, upstream, Extras::default(), policy).await
    }

    /// [`Sentinel::start`] with `extras` in the `reverse-listener` and `admin` blocks. When the
    /// admin block names a token, `/health` still answers without it. Every listener is given
    /// port 0; the bound ports are read from the proxy's `sentinel started` line.
    pub async fn start_with(
        dir: &Path,
        upstream: &Upstream,
        extras: Extras,
        policy: &Policy,
    ) -> Sentinel {
        let socket = dir.join("agents.sock");
        let config_path = dir.join("sentinel.kdl");
        config(
            &socket,
            ANY_LOOPBACK,
            ANY_LOOPBACK,
            upstream.address,
            &extras,
            policy,
        )
        .write_to(&config_path)
        .expect("write the configuration");
        let mut process = Process::spawn(
            "sentinel",
            &sentinel_binary(),
            &["--config".to_string(), config_path.display().to_string()],
            &[],
        );
        process.wait_for_log("sentinel started").await;
        let addresses = SentinelAddresses::from_log(&process.stderr())
            .unwrap_or_else(|| panic!("no addresses in the start line\n{}", process.output()));
        let (Some(&http), Some(admin)) = (addresses.http.first(), addresses.admin) else {
            panic!("no HTTP or admin listener started\n{}", process.output());
        };
        let sentinel = Sentinel {
            process,
            http: Http::new(http),
            admin: Http::new(admin),
            socket,
            agents_tcp: addresses.agents_tcp,
            config_path,
            upstream: upstream.address,
            extras,
        };
        sentinel.wait_healthy().await;
        sentinel
    }

    async fn wait_healthy(&self) {
        eventually("/health to answer 200", PATIENCE, || async {
            self.admin
                .try_send(Method::GET, "/health", &[], Bytes::new())
                .await
                .is_ok_and(|reply| reply.status == StatusCode::OK)
        })
        .await;
    }

    /// The configuration this proxy would have with `policy` as its agents and routes (same
    /// file contents otherwise, port 0 included), for rewriting the file before a reload.
    pub fn config_with(&self, policy: &Policy) -> ProxyConfig {
        config(
            &self.socket,
            ANY_LOOPBACK,
            ANY_LOOPBACK,
            self.upstream,
            &self.extras,
            policy,
        )
    }

    /// Replaces the configuration file (atomically, so a reload never reads half a file).
    pub fn rewrite_config(&self, text: &str) {
        let temporary = self.config_path.with_extension("kdl.tmp");
        std::fs::write(&temporary, text).expect("write the configuration");
        std::fs::rename(&temporary, &self.config_path).expect("move the configuration into place");
    }

    /// Starts an example agent (`sentinel-waf-agent`, …) dialling this proxy with
    /// `--agent-id agent_id --connections connections`, plus `extra` flags.
    pub fn agent(
        &self,
        binary: &str,
        agent_id: &str,
        connections: usize,
        extra: &[&str],
    ) -> Process {
        let mut args = vec![
            "--connect".to_string(),
            format!("unix:{}", self.socket.display()),
            "--agent-id".to_string(),
            agent_id.to_string(),
            "--connections".to_string(),
            connections.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Process::spawn(agent_id, &agent_binary(binary), &args, &[])
    }

    /// `GET /agents`, parsed.
    pub async fn agents(&self) -> Value {
        let reply = self.admin.get("/agents", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "/agents: {}", reply.text());
        serde_json::from_slice(&reply.body).expect("/agents is JSON")
    }

    /// The live connections of `agent_id`, as `GET /agents` lists them.
    async fn live_connections(&self, agent_id: &str) -> Vec<Value> {
        let agents = self.agents().await;
        agents["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["agent_id"] == agent_id)
            .flat_map(|a| a["connections"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The `assigned_id`s of the live connections of `agent_id`, sorted.
    pub async fn connections_of(&self, agent_id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .live_connections(agent_id)
            .await
            .iter()
            .filter_map(|c| c["assigned_id"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids
    }

    /// Requests in flight over all live connections of `agent_id`, as `GET /agents` shows.
    pub async fn in_flight_of(&self, agent_id: &str) -> u64 {
        let connections = self.live_connections(agent_id).await;
        connections
            .iter()
            .filter_map(|c| c["in_flight"].as_u64())
            .sum()
    }

    /// Waits until `GET /agents` lists each `(process, agent_id, connections)` with exactly that
    /// many connections and the process's pid in its metadata. Panics with the agents' output
    /// if one exits or they do not register within [`PATIENCE`].
    pub async fn wait_for_agents(&self, agents: &mut [(&mut Process, &str, usize)]) {
        let expected: Vec<(i32, String, usize)> = agents
            .iter()
            .map(|(process, id, connections)| (process.pid(), id.to_string(), *connections))
            .collect();
        let expected = &expected;
        let registered = try_wait_for("the agents to register", PATIENCE, || {
            // An agent that exited and is not listed will never register: fail at once, with
            // its output.
            let exited = agents.iter_mut().find_map(|(process, id, _)| {
                let gone = process.has_exited();
                gone.then(|| format!("agent {id} exited before registering\n{}", process.output()))
            });
            async move {
                if all_listed(&self.agents().await, expected) {
                    return Ok(true);
                }
                exited.map_or(Ok(false), Err)
            }
        });
        match registered.await {
            Ok(_) => {}
            Err(WaitError::Failed { source, .. }) => panic!("{source}"),
            Err(WaitError::TimedOut(timed_out)) => {
                let outputs: Vec<String> = agents.iter().map(|(p, _, _)| p.output()).collect();
                panic!(
                    "{timed_out}; /agents: {}\n{}\n{}",
                    self.agents().await,
                    outputs.join("\n"),
                    self.process.output()
                );
            }
        }
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let reply = self.admin.get("/metrics", &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "/metrics: {}", reply.text());
        reply.text()
    }

    /// How many decisions the logical agent `agent` has given, all actions together.
    pub async fn decisions(&self, agent: &str) -> f64 {
        metric_sum(
            &self.metrics().await,
            "sentinel_agent_decisions_total",
            &[("agent", agent)],
        )
    }
}

/// Whether `GET /agents` (`listed`) shows every `(pid, agent_id, connections)` of `expected`:
/// that agent id, that process's pid in its metadata, exactly that many connections.
fn all_listed(listed: &Value, expected: &[(i32, String, usize)]) -> bool {
    expected.iter().all(|(pid, id, connections)| {
        listed["agents"].as_array().into_iter().flatten().any(|a| {
            a["agent_id"] == id.as_str()
                && a["metadata"]["pid"] == *pid
                && a["connections"].as_array().map(Vec::len) == Some(*connections)
        })
    })
}
