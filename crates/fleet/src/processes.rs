//! The real processes of the fleet, each started inside its host's namespace with
//! `ip netns exec`: `sentinel` proxies (with their KDL file written here) and
//! `sentinel-waf-agent` agents. A handle keeps the process's log lines with the moment each
//! arrived, stops it with SIGTERM (measuring the drain) and kills it on drop, so nothing
//! outlives a failed or panicking run.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Log lines kept per process (the oldest are dropped beyond this).
const MAX_LOG_LINES: usize = 50_000;

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

/// A running process with its log.
pub struct Process {
    pub name: String,
    child: Child,
    log: Arc<Mutex<VecDeque<(Instant, String)>>>,
}

impl Process {
    fn spawn(name: &str, ns: &str, program: &Path, args: &[String]) -> anyhow::Result<Process> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut log) = log.lock() {
                        if log.len() >= MAX_LOG_LINES {
                            log.pop_front();
                        }
                        log.push_back((Instant::now(), line));
                    }
                }
            });
        }
        Ok(Process {
            name: name.to_string(),
            child,
            log,
        })
    }

    /// Log lines that arrived after `since` and contain every one of `words`, with their time.
    pub fn lines_since(&self, since: Instant, words: &[&str]) -> Vec<(Instant, String)> {
        self.log
            .lock()
            .map(|log| {
                log.iter()
                    .filter(|(at, line)| *at >= since && words.iter().all(|w| line.contains(w)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last `n` log lines (for a failure report).
    pub fn tail(&self, n: usize) -> Vec<String> {
        self.log
            .lock()
            .map(|log| {
                let start = log.len().saturating_sub(n);
                log.iter().skip(start).map(|(_, l)| l.clone()).collect()
            })
            .unwrap_or_default()
    }

    /// SIGTERM, then waits up to `limit` for the exit; returns how long it took and whether it
    /// exited successfully.
    pub async fn terminate(&mut self, limit: Duration) -> anyhow::Result<(Duration, bool)> {
        let started = Instant::now();
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child's pid (`ip netns exec` execs the program in place).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                return Ok((started.elapsed(), status.success()));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("{} did not exit within {limit:?} of SIGTERM", self.name)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the binaries and files are.
pub struct Files {
    pub bin_dir: PathBuf,
    pub dir: PathBuf,
}

impl Files {
    fn binary(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.bin_dir.join(name);
        if !path.is_file() {
            bail!(
                "{} not found: build the workspace binaries first (cargo build --workspace --bins)",
                path.display()
            );
        }
        Ok(path)
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
    std::fs::write(&config, proxy_config(files, index, addr, upstream, timing))?;
    let args = vec![
        "--config".to_string(),
        config.to_string_lossy().into_owned(),
    ];
    Process::spawn(
        &format!("proxy{index}"),
        ns,
        &files.binary("sentinel")?,
        &args,
    )
}

fn proxy_config(
    files: &Files,
    index: usize,
    addr: Ipv4Addr,
    upstream: Ipv4Addr,
    timing: &Timing,
) -> String {
    let file = |name: &str| files.dir.join(name).to_string_lossy().into_owned();
    format!(
        r#"// proxy{index} of the fleet harness
reverse-listener {{
    tcp-address "{addr}:{AGENT_PORT}"
    max-connections-per-agent 4
    heartbeat-interval "{hb}ms"
    allowed-agents "waf-*"
    tls {{
        cert-file "{cert}"
        key-file "{key}"
        client-ca-file "{ca}"
    }}
}}
listeners {{
    listener "http" {{ address "{addr}:{HTTP_PORT}" }}
}}
upstreams {{
    upstream "backend" {{ target "{upstream}:{UPSTREAM_PORT}" }}
}}
agents {{
    agent "waf" {{
        agent-ids "waf-*"
        events "request_headers"
        timeout-ms {timeout}
        failure-mode "closed"
    }}
}}
routes {{
    route "default" {{
        matches {{ path-prefix "/" }}
        upstream "backend"
        agents "waf"
    }}
}}
admin {{ address "{addr}:{ADMIN_PORT}" }}
shutdown-grace "{grace}ms"
wait-for-agents "10s"
"#,
        hb = timing.heartbeat.as_millis(),
        timeout = timing.agent_timeout.as_millis(),
        grace = timing.shutdown_grace.as_millis(),
        cert = file(&format!("proxy{index}.crt")),
        key = file(&format!("proxy{index}.key")),
        ca = file("ca.crt"),
    )
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
    Process::spawn(agent_id, ns, &files.binary("sentinel-waf-agent")?, &args)
}
