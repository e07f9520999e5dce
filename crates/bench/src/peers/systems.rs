//! The three systems side by side, each started from a generated configuration in the run's
//! temporary directory: `sentinel` (routes without agent, with the `auth` agent, with the
//! `waf` agent on the request body), nginx (plain `proxy_pass`, `auth_request` to the bench's
//! auth service) and HAProxy (plain, SPOE to the bench's SPOA on the Authorization header, and
//! on `req.body`). Every proxy gets one worker (thread or process) pinned to the proxy core,
//! keep-alive to the upstream and no access log; its helpers run on the other core. Owns the
//! configurations and processes, not the measuring.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::check::BODY_PATTERN;
use super::tools::Tools;
use sentinel_test_support::config::{
    Admin, Agent, Event, Listener, ProxyConfig, ReverseListener, Route, Upstream,
};
use sentinel_test_support::ports::ANY_LOOPBACK;

use crate::http::{agent_connections, spawn_sentinel, StartedSentinel};
use crate::sys::{self, Cores, Proc};

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// Sentinel with its agents.
    Sentinel,
    /// nginx with `auth_request`.
    Nginx,
    /// HAProxy with SPOE.
    Haproxy,
}

impl System {
    /// Every system, in table order.
    pub const ALL: [System; 3] = [System::Sentinel, System::Nginx, System::Haproxy];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            System::Sentinel => "sentinel",
            System::Nginx => "nginx",
            System::Haproxy => "haproxy",
        }
    }

    /// How it makes the external check of `check`, or why it cannot.
    pub fn mechanism(self, check: Check) -> &'static str {
        match (self, check) {
            (_, Check::Plain) => "no check",
            (System::Sentinel, Check::Header) => "auth agent, Unix socket",
            (System::Sentinel, Check::Body) => "waf agent (request_body), Unix socket",
            (System::Nginx, Check::Header) => "auth_request to bench auth service, Unix socket",
            (System::Nginx, Check::Body) => "n/a: auth_request cannot see the body",
            (System::Haproxy, Check::Header) => "SPOE to bench SPOA, Unix socket",
            (System::Haproxy, Check::Body) => {
                "SPOE req.body to bench SPOA (http-buffer-request), Unix socket"
            }
        }
    }
}

/// What each request goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Plain reverse proxy, GET.
    Plain,
    /// Bearer token checked by an external service, GET.
    Header,
    /// 4 KiB POST body scanned by an external service.
    Body,
}

impl Check {
    /// Every check, in table order.
    pub const ALL: [Check; 3] = [Check::Plain, Check::Header, Check::Body];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Check::Plain => "1 plain proxy",
            Check::Header => "2 header check",
            Check::Body => "3 body check",
        }
    }

    /// Whether requests carry the 4 KiB body.
    pub fn has_body(self) -> bool {
        self == Check::Body
    }
}

/// Where a system serves one check.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Listening address.
    pub address: SocketAddr,
    /// Request path.
    pub path: &'static str,
}

/// What every system shares: the directory, the upstream, the token, the binaries.
pub struct Shared {
    /// Configs, sockets, token files.
    pub dir: PathBuf,
    /// The one upstream.
    pub upstream: SocketAddr,
    /// The bench token (only in files, never on a command line or in output).
    pub token: String,
    /// This binary (for the SPOA and auth service roles).
    pub exe: PathBuf,
    /// Where `sentinel` and the agents are.
    pub bin_dir: PathBuf,
    /// Core layout.
    pub cores: Cores,
}

impl Shared {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The file holding the bearer token (mode 0600).
    pub fn token_file(&self) -> PathBuf {
        self.path("token")
    }
}

/// A started system: the proxy process and its helpers, killed on drop.
pub struct Running {
    /// Which system.
    pub system: System,
    /// The proxy process (its CPU time is what gets normalised by).
    pub proxy: Proc,
    endpoints: [Option<Endpoint>; 3],
    _helpers: Vec<Proc>,
}

impl Drop for Running {
    /// Kills the proxy's children first: nginx's worker outlives a SIGKILLed master (and would
    /// keep the port); the proxy itself and the helpers are killed by their own drops.
    fn drop(&mut self) {
        for pid in super::measure::descendants(self.proxy.pid()) {
            // SAFETY: kill has no memory preconditions; the pid is a child of our own child.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

impl Running {
    /// Where this system serves `check`, if it can make that check.
    pub fn endpoint(&self, check: Check) -> Option<&Endpoint> {
        self.endpoints[check as usize].as_ref()
    }
}

const PLAIN_PATH: &str = "/plain/catalog";
const HEADER_PATH: &str = "/auth/catalog";
const BODY_PATH: &str = "/body/form";
const READY_LIMIT: Duration = Duration::from_secs(20);

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Waits until `address` accepts TCP connections.
fn wait_listening(what: &str, proxy: &mut Proc, address: SocketAddr) -> anyhow::Result<()> {
    sys::wait_until(what, READY_LIMIT, || {
        proxy.check_alive()?;
        Ok(std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok())
    })?;
    Ok(())
}

/// Starts `sentinel` with the auth and waf agents (4 connections each).
pub fn start_sentinel(shared: &Shared) -> anyhow::Result<Running> {
    let socket = shared.path("agents.sock");
    let agent = |name: &str, ids: &str, event: Event| {
        Agent::new(name)
            .agent_ids([ids])
            .events([event])
            .timeout(Duration::from_secs(2))
    };
    let route = |name: &str, agents: &[&str]| {
        Route::new(name, "backend")
            .path_prefix(&format!("/{name}"))
            .agents(agents.iter().copied())
    };
    let config = ProxyConfig::new()
        .reverse_listener(ReverseListener::unix(&socket).max_connections_per_agent(16))
        .listener(Listener::new("http", ANY_LOOPBACK))
        .upstream(Upstream::new("backend", shared.upstream))
        .agent(agent("auth", "auth-*", Event::RequestHeaders))
        .agent(agent("waf", "waf-*", Event::RequestBody))
        .route(route("plain", &[]))
        .route(route("auth", &["auth"]))
        .route(route("body", &["waf"]))
        .admin(Admin::new(ANY_LOOPBACK));
    let tokens = shared.path("auth-tokens.json");
    let entry = serde_json::json!([{ "user": "bench", "bearer": shared.token }]);
    write_private(&tokens, &entry.to_string())?;
    let rules = shared.path("waf-rules.json");
    let rule = serde_json::json!([{
        "id": "bench-body-pattern", "pattern": BODY_PATTERN, "targets": "body",
        "message": "bench body pattern",
    }]);
    std::fs::write(&rules, rule.to_string())?;

    let StartedSentinel {
        proxy,
        http,
        admin: admin_addr,
    } = spawn_sentinel(
        shared.cores.proxy,
        &shared.bin_dir,
        &shared.dir,
        &config,
        READY_LIMIT,
        || true,
    )?;
    let connect = format!("unix:{}", socket.display());
    let agent = |binary: &str, id: &str, extra: &[&str]| {
        let mut list = args(&[
            "--connect",
            &connect,
            "--agent-id",
            id,
            "--connections",
            "4",
        ]);
        list.extend(args(extra));
        Proc::spawn(
            binary,
            shared.cores.others,
            &shared.bin_dir.join(binary),
            &list,
            &[],
        )
    };
    let tokens_arg = tokens.display().to_string();
    let rules_arg = rules.display().to_string();
    let helpers = vec![
        agent("sentinel-auth-agent", "auth-1", &["--tokens", &tokens_arg])?,
        agent(
            "sentinel-waf-agent",
            "waf-1",
            &["--no-default-rules", "--rules", &rules_arg],
        )?,
    ];
    sys::wait_until("4 auth and 4 waf connections", READY_LIMIT, || {
        Ok(agent_connections(admin_addr, "auth-")? == 4
            && agent_connections(admin_addr, "waf-")? == 4)
    })?;
    let at = |path| {
        Some(Endpoint {
            address: http,
            path,
        })
    };
    Ok(Running {
        system: System::Sentinel,
        proxy,
        endpoints: [at(PLAIN_PATH), at(HEADER_PATH), at(BODY_PATH)],
        _helpers: helpers,
    })
}

/// Starts nginx (master plus one worker) and the bench auth service.
pub fn start_nginx(shared: &Shared, tools: &Tools) -> anyhow::Result<Running> {
    let http = sys::free_port()?;
    let auth_socket = shared.path("auth-service.sock");
    let auth_service = Proc::spawn(
        "auth service",
        shared.cores.others,
        &shared.exe,
        &[
            "peers".into(),
            "auth-service".into(),
            "--socket".into(),
            auth_socket.display().to_string(),
            "--token-file".into(),
            shared.token_file().display().to_string(),
        ],
        &[],
    )?;
    let nginx_dir = shared.path("nginx");
    std::fs::create_dir_all(&nginx_dir)?;
    let config_path = nginx_dir.join("nginx.conf");
    std::fs::write(
        &config_path,
        nginx_config(&nginx_dir, http, shared.upstream, &auth_socket),
    )?;
    let mut proxy = Proc::spawn(
        "nginx",
        shared.cores.proxy,
        &tools.nginx,
        &[
            "-p".into(),
            nginx_dir.display().to_string(),
            "-c".into(),
            config_path.display().to_string(),
            "-e".into(),
            nginx_dir.join("error.log").display().to_string(),
        ],
        &[],
    )?;
    wait_listening("nginx", &mut proxy, local(http))?;
    let at = |path| {
        Some(Endpoint {
            address: local(http),
            path,
        })
    };
    Ok(Running {
        system: System::Nginx,
        proxy,
        endpoints: [at(PLAIN_PATH), at(HEADER_PATH), None],
        _helpers: vec![auth_service],
    })
}

fn nginx_config(dir: &Path, http: u16, upstream: SocketAddr, auth_socket: &Path) -> String {
    // Workers drop to `nobody` when the master runs as root; they must reach the auth
    // service's socket in our private directory, so they stay root here (bench only).
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    let proxy_to_upstream = "proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";";
    format!(
        r#"
{user}
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    upstream backend {{
        server {upstream};
        keepalive 64;
        keepalive_requests 10000000;
    }}
    upstream auth_service {{
        server unix:{auth};
        keepalive 64;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{http};
        location /plain/ {{
            {proxy_to_upstream}
        }}
        location /auth/ {{
            auth_request /_check;
            {proxy_to_upstream}
        }}
        location = /_check {{
            internal;
            proxy_pass http://auth_service;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#,
        dir = dir.display(),
        auth = auth_socket.display(),
    )
}

/// Starts HAProxy (one thread) and the bench SPOA.
pub fn start_haproxy(shared: &Shared, tools: &Tools) -> anyhow::Result<Running> {
    let ports = [sys::free_port()?, sys::free_port()?, sys::free_port()?];
    let spoa_socket = shared.path("spoa.sock");
    let spoa = Proc::spawn(
        "spoa",
        shared.cores.others,
        &shared.exe,
        &[
            "peers".into(),
            "spoa".into(),
            "--socket".into(),
            spoa_socket.display().to_string(),
            "--token-file".into(),
            shared.token_file().display().to_string(),
        ],
        &[],
    )?;
    sys::wait_until("SPOA socket", READY_LIMIT, || Ok(spoa_socket.exists()))?;
    for (engine, message, arg) in [
        ("auth", "check-auth", "token=req.hdr(authorization)"),
        ("body", "check-body", "body=req.body"),
    ] {
        let spoe = format!(
            "[{engine}]
spoe-agent {engine}-agent
    messages {message}
    option var-prefix {engine}
    timeout hello 2s
    timeout idle 2m
    timeout processing 2s
    use-backend spoa
spoe-message {message}
    args {arg}
    event on-frontend-http-request
"
        );
        std::fs::write(shared.path(&format!("spoe-{engine}.conf")), spoe)?;
    }
    let config_path = shared.path("haproxy.cfg");
    std::fs::write(
        &config_path,
        haproxy_config(&shared.dir, ports, shared.upstream, &spoa_socket),
    )?;
    let mut proxy = Proc::spawn(
        "haproxy",
        shared.cores.proxy,
        &tools.haproxy,
        &["-f".into(), config_path.display().to_string(), "-db".into()],
        &[],
    )?;
    for port in ports {
        wait_listening("haproxy", &mut proxy, local(port))?;
    }
    let at = |i: usize, path| {
        Some(Endpoint {
            address: local(ports[i]),
            path,
        })
    };
    Ok(Running {
        system: System::Haproxy,
        proxy,
        endpoints: [at(0, PLAIN_PATH), at(1, HEADER_PATH), at(2, BODY_PATH)],
        _helpers: vec![spoa],
    })
}

fn haproxy_config(dir: &Path, ports: [u16; 3], upstream: SocketAddr, spoa: &Path) -> String {
    format!(
        r#"
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend plain
    bind 127.0.0.1:{plain}
    default_backend upstream

frontend header_check
    bind 127.0.0.1:{header}
    filter spoe engine auth config {dir}/spoe-auth.conf
    http-request deny deny_status 401 unless {{ var(txn.auth.ok) -m bool }}
    default_backend upstream

frontend body_check
    bind 127.0.0.1:{body}
    option http-buffer-request
    filter spoe engine body config {dir}/spoe-body.conf
    http-request deny deny_status 403 unless {{ var(txn.body.ok) -m bool }}
    default_backend upstream

backend upstream
    http-reuse always
    server up {upstream}

backend spoa
    mode tcp
    timeout server 3m
    server spoa unix@{spoa}
"#,
        plain = ports[0],
        header = ports[1],
        body = ports[2],
        dir = dir.display(),
        spoa = spoa.display(),
    )
}

/// Writes `contents` to a new file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
