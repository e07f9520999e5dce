//! The real processes of the fleet, each started inside its host's namespace (the supervisor
//! of `sentinel_test_support::process`, which runs `ip netns exec`): `sentinel` proxies (with
//! their configuration written here by the typed builder) and `sentinel-waf-agent` agents. The
//! supervisor keeps each process's log lines with the moment each arrived, stops it with
//! SIGTERM (measuring the drain) and kills it on drop, so nothing outlives a failed or
//! panicking run.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sentinel_test_support::build::find_binary;
use sentinel_test_support::config::{
    Admin, Agent, Event, FailureMode, Listener, ProxyConfig, ReverseListener, Route, Tls, Upstream,
};
use sentinel_test_support::process::{ProcessSpec, Supervised};

/// A running fleet process with its log.
pub type Process = Supervised;

/// Path prefix of the route without agents, for the positive control of the upstream's count
/// of marked requests.
pub const CONTROL_PREFIX: &str = "/control/";

/// Ports every proxy host uses.
pub const AGENT_PORT: u16 = 9443;
pub const HTTP_PORT: u16 = 8080;
pub const ADMIN_PORT: u16 = 9901;
/// The upstream on the client host.
pub const UPSTREAM_PORT: u16 = 9000;

/// Timing shared by the proxies and agents.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    pub agent_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub silent_heartbeats: u32,
    pub shutdown_grace: Duration,
}

/// Where the binaries and files are.
pub struct Files {
    pub bin_dir: PathBuf,
    pub dir: PathBuf,
}

impl Files {
    fn binary(&self, name: &str) -> anyhow::Result<PathBuf> {
        Ok(find_binary(&self.bin_dir, name)?)
    }
}

/// Starts proxy number `index` (1-based) in `ns`, listening on `addr`.
pub fn start_proxy(
    files: &Files,
    index: usize,
    ns: &str,
    addr: Ipv4Addr,
    upstream: Ipv4Addr,
    timing: &Timing,
) -> anyhow::Result<Process> {
    let config = files.dir.join(format!("proxy{index}.kdl"));
    proxy_config(files, index, addr, upstream, timing).write_to(&config)?;
    spawn(
        &format!("proxy{index}"),
        ns,
        &files.binary("sentinel")?,
        vec![
            "--config".to_string(),
            config.to_string_lossy().into_owned(),
        ],
    )
}

fn spawn(name: &str, ns: &str, program: &Path, args: Vec<String>) -> anyhow::Result<Process> {
    let spec = ProcessSpec::new(name, program)
        .netns(ns)
        .args(args)
        .env("RUST_LOG", "info");
    Ok(Supervised::spawn(spec)?)
}

fn proxy_config(
    files: &Files,
    index: usize,
    addr: Ipv4Addr,
    upstream: Ipv4Addr,
    timing: &Timing,
) -> ProxyConfig {
    let file = |name: &str| files.dir.join(name);
    let at = |port: u16| SocketAddrV4::new(addr, port);
    ProxyConfig::new()
        .comment(&format!("proxy{index} of the fleet harness"))
        .reverse_listener(
            ReverseListener::new()
                .tcp_address(at(AGENT_PORT))
                .max_connections_per_agent(4)
                .heartbeat_interval(timing.heartbeat)
                .allowed_agents(["waf-*"])
                .tls(
                    Tls::new(
                        file(&format!("proxy{index}.crt")),
                        file(&format!("proxy{index}.key")),
                    )
                    .client_ca_file(file("ca.crt")),
                ),
        )
        .listener(Listener::new("http", at(HTTP_PORT)))
        .upstream(Upstream::new(
            "backend",
            SocketAddrV4::new(upstream, UPSTREAM_PORT),
        ))
        .agent(
            Agent::new("waf")
                .agent_ids(["waf-*"])
                .events([Event::RequestHeaders])
                .timeout(timing.agent_timeout)
                .failure_mode(FailureMode::Closed),
        )
        // Before the catch-all: routes are tried in order.
        .route(Route::new("control", "backend").path_prefix(CONTROL_PREFIX))
        .route(
            Route::new("default", "backend")
                .path_prefix("/")
                .agents(["waf"]),
        )
        .admin(Admin::new(at(ADMIN_PORT)))
        .shutdown_grace(timing.shutdown_grace)
        .wait_for_agents(Duration::from_secs(10))
}

/// Starts agent `agent_id` in `ns`, dialling every proxy with `connections` each.
pub fn start_agent(
    files: &Files,
    agent_id: &str,
    ns: &str,
    proxies: &[Ipv4Addr],
    connections: usize,
    timing: &Timing,
) -> anyhow::Result<Process> {
    let file = |name: &str| files.dir.join(name).to_string_lossy().into_owned();
    let mut args = Vec::new();
    for proxy in proxies {
        args.push("--connect".to_string());
        args.push(format!("tls:{proxy}:{AGENT_PORT}"));
    }
    for (flag, value) in [
        ("--agent-id", agent_id.to_string()),
        ("--connections", connections.to_string()),
        ("--tls-ca", file("ca.crt")),
        ("--tls-cert", file(&format!("{agent_id}.crt"))),
        ("--tls-key", file(&format!("{agent_id}.key"))),
        (
            "--reconnect-initial-ms",
            timing.backoff_initial.as_millis().to_string(),
        ),
        (
            "--reconnect-max-ms",
            timing.backoff_max.as_millis().to_string(),
        ),
        ("--silent-heartbeats", timing.silent_heartbeats.to_string()),
    ] {
        args.push(flag.to_string());
        args.push(value);
    }
    args.push("--no-body".to_string());
    spawn(agent_id, ns, &files.binary("sentinel-waf-agent")?, args)
}
