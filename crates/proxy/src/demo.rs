//! `sentinel demo`: the whole system on built-in defaults, in one process tree. It starts a
//! small upstream, the proxy (reverse listener on a temporary Unix socket, HTTP and admin on
//! free loopback ports), the `waf` and `auth` example agents as separate processes dialling in,
//! sends a short series of requests, and prints what each agent decided and what the client got.
//! With `--keep-running` it then stays up, printing the status page URL and replaying the sample
//! requests every 2 s so the page's last-minute figures move, until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::app::RunningProxy;
use crate::state::ProxyState;

const DEMO_TOKEN: &str = "demo-token-alice";
const AGENTS: [&str; 2] = ["auth", "waf"];
/// In the order an agent can give them for one request.
const ACTIONS: [&str; 4] = ["continue", "allow", "block", "redirect"];

struct Sample {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    token: bool,
    body: &'static str,
}

const SAMPLES: [Sample; 5] = [
    Sample {
        what: "clean request",
        method: "GET",
        path: "/products?id=42",
        token: true,
        body: "",
    },
    Sample {
        what: "SQL injection in query",
        method: "GET",
        path: "/products?id=1%27%20OR%20%271%27%3D%271",
        token: true,
        body: "",
    },
    Sample {
        what: "missing token",
        method: "GET",
        path: "/products?id=42",
        token: false,
        body: "",
    },
    Sample {
        what: "XSS in body",
        method: "POST",
        path: "/comments",
        token: true,
        body: "<script>alert(1)</script>",
    },
    Sample {
        what: "path traversal",
        method: "GET",
        path: "/static/..%2f..%2fetc%2fpasswd",
        token: true,
        body: "",
    },
];

/// How often `--keep-running` replays the sample requests.
const TRICKLE_INTERVAL: Duration = Duration::from_secs(2);

/// Runs the demo and prints its table; with `keep_running`, stays up afterwards until Ctrl-C or
/// SIGTERM.
pub async fn run(keep_running: bool) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let socket = dir.join("agents.sock");
    let tokens = dir.join("tokens.json");
    std::fs::write(
        &tokens,
        format!(r#"[{{"user": "alice", "bearer": "{DEMO_TOKEN}"}}]"#),
    )?;

    let upstream = start_upstream().await?;
    let config = crate::config::parse(&demo_config(&socket, upstream), Path::new("<demo>"))
        .context("the built-in demo configuration is invalid")?;
    let proxy = RunningProxy::start(config, None).await?;
    let http_address = *proxy.http_addresses().first().context("no HTTP listener")?;
    println!("sentinel demo");
    println!(
        "  proxy      http://{http_address}   admin http://{}",
        proxy
            .admin_address()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    println!("  upstream   http://{upstream}");
    println!("  agents     dial unix:{}\n", socket.display());

    let mut children = Vec::new();
    let outcome = async {
        children.push(spawn_agent("sentinel-waf-agent", "waf-1", &socket, &[])?);
        children.push(spawn_agent(
            "sentinel-auth-agent",
            "auth-agent",
            &socket,
            &["--tokens", &tokens.display().to_string()],
        )?);
        wait_for_agents(proxy.state(), &["waf-1", "auth-agent"]).await?;
        print_registrations(proxy.state());
        send_samples(proxy.state(), http_address).await?;
        if keep_running {
            let admin = proxy.admin_address().context("no admin listener")?;
            keep_serving(http_address, admin).await?;
        }
        Ok(())
    }
    .await;
    for child in &mut children {
        stop(child).await;
    }
    proxy.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Prints where to look, then replays the samples every [`TRICKLE_INTERVAL`] until Ctrl-C or
/// SIGTERM.
async fn keep_serving(
    http_address: std::net::SocketAddr,
    admin: std::net::SocketAddr,
) -> anyhow::Result<()> {
    println!();
    println!("the demo keeps running (sample requests replayed every 2 s); Ctrl-C stops it.");
    println!("  status page   http://{admin}/");
    println!(
        "  in a terminal sentinel agents --admin {admin}   (or: sentinel status --admin {admin})"
    );
    println!("  send your own curl -H 'Authorization: Bearer {DEMO_TOKEN}' http://{http_address}/products?id=42");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut ticks = tokio::time::interval(TRICKLE_INTERVAL);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = ticks.tick() => {
                for sample in &SAMPLES {
                    // Only to keep the figures moving; an answer or error is not looked at.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        client.request(sample_request(sample, http_address)?),
                    )
                    .await;
                }
            }
        }
    }
    println!("stopping the demo");
    Ok(())
}

fn sample_request(
    sample: &Sample,
    address: std::net::SocketAddr,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut request = Request::builder()
        .method(sample.method)
        .uri(format!("http://{address}{}", sample.path))
        .header("host", "demo.local");
    if sample.token {
        request = request.header("authorization", format!("Bearer {DEMO_TOKEN}"));
    }
    Ok(request.body(Full::new(Bytes::from_static(sample.body.as_bytes())))?)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("sentinel-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn demo_config(socket: &Path, upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
reverse-listener {{
    path "{socket}"
    max-connections-per-agent 4
    handshake-timeout "10s"
}}
listeners {{
    listener "http" {{ address "127.0.0.1:0" }}
}}
upstreams {{
    upstream "backend" {{ target "{upstream}" }}
}}
agents {{
    agent "auth" {{
        agent-ids "auth-agent"
        events "request_headers"
        timeout-ms 500
        failure-mode "closed"
    }}
    agent "waf" {{
        agent-ids "waf-*"
        events "request_headers" "request_body"
        timeout-ms 500
        failure-mode "closed"
        config {{ rules_version "demo" }}
    }}
}}
routes {{
    route "default" {{
        matches {{ path-prefix "/" }}
        upstream "backend"
        agents "auth" "waf"
    }}
}}
admin {{ address "127.0.0.1:0"; }}
shutdown-grace "5s"
"#,
        socket = socket.display()
    )
}

/// A tiny upstream that says which user the proxy told it about.
async fn start_upstream() -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: Request<Incoming>| async move {
                    let user = request
                        .headers()
                        .get("x-auth-user")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string();
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                        format!("hello {user}, from the upstream"),
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

fn agent_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the sentinel binary")?;
    let candidate = exe.parent().map(|dir| dir.join(name));
    match candidate {
        Some(path) if path.exists() => Ok(path),
        _ => bail!("{name} was not found next to {}; build the example agents first: cargo build --workspace", exe.display()),
    }
}

fn spawn_agent(
    binary: &str,
    agent_id: &str,
    socket: &Path,
    extra: &[&str],
) -> anyhow::Result<Child> {
    Command::new(agent_binary(binary)?)
        .arg("--connect")
        .arg(format!("unix:{}", socket.display()))
        .args(["--agent-id", agent_id, "--connections", "2"])
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {binary}"))
}

async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

async fn wait_for_agents(state: &ProxyState, ids: &[&str]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ids.iter().all(|id| state.pool().get_health(id).is_some()) {
        if Instant::now() > deadline {
            bail!("the example agents did not register within 20 s (run with RUST_LOG=info to see why)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn print_registrations(state: &ProxyState) {
    println!("registered agents (as GET /agents shows them):");
    for agent in state.pool().snapshot() {
        let connections: Vec<String> = agent
            .connections
            .iter()
            .map(|c| format!("{} ({}, {})", c.assigned_id, c.transport, c.encoding))
            .collect();
        println!(
            "  {:<11} serves {:<6} via {}",
            agent.agent_id,
            agent.logical_agents.join(","),
            connections.join(", ")
        );
    }
    println!();
}

async fn send_samples(
    state: &Arc<ProxyState>,
    address: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    println!("{:<24} {:<7} {:<15} client got", "request", "auth", "waf");
    println!("{}", "-".repeat(86));
    let mut unexpected = Vec::new();
    for sample in &SAMPLES {
        let before = decision_counts(state);
        let request = sample_request(sample, address)?;
        let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
            .await
            .context("the proxy did not answer within 10 s")??;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let after = decision_counts(state);
        let decided = |agent: &str| {
            ACTIONS
                .iter()
                .filter(|action| after[&(agent, **action)] > before[&(agent, **action)])
                .copied()
                .collect::<Vec<_>>()
                .join("→")
        };
        let (auth, waf) = (decided("auth"), decided("waf"));
        let got = format!("{} {}", status.as_u16(), one_line(&body));
        println!(
            "{:<24} {:<7} {:<15} {}",
            sample.what,
            or_dash(&auth),
            or_dash(&waf),
            got
        );
        let expected_status = match sample.what {
            "clean request" => StatusCode::OK,
            "missing token" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        };
        if status != expected_status {
            unexpected.push(format!(
                "{}: expected {expected_status}, got {status}",
                sample.what
            ));
        }
    }
    println!();
    if unexpected.is_empty() {
        println!("every request got the expected answer.");
        Ok(())
    } else {
        bail!("unexpected answers: {}", unexpected.join("; "))
    }
}

fn decision_counts(
    state: &ProxyState,
) -> std::collections::HashMap<(&'static str, &'static str), u64> {
    let mut counts = std::collections::HashMap::new();
    for agent in AGENTS {
        for action in ACTIONS {
            counts.insert((agent, action), state.metrics().decisions(agent, action));
        }
    }
    counts
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() {
        "-"
    } else {
        text
    }
}

fn one_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(48).collect()
}
