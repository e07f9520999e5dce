//! `sentinel demo`: the whole system on built-in defaults, in one process tree. It starts a
//! small upstream, the proxy (reverse listener on a temporary Unix socket, HTTP and admin on
//! free loopback ports), the `waf` and `auth` example agents as separate processes dialling in,
//! sends a short series of requests, and prints what each agent decided and what the client got.
//! With `--keep-running` it then stays up, printing the status page URL and replaying the sample
//! requests every 2 s so the page's last-minute figures move, until Ctrl-C or SIGTERM.
//!
//! Part of the binary, not the library: it only drives the library's public API. This module
//! owns the order of things; [`config`] the configuration, [`agents`] the agent processes,
//! [`samples`] the requests and the table, [`upstream`] the upstream.

mod agents;
mod config;
mod samples;
mod upstream;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sentinel::app::RunningProxy;

use samples::{sample_request, send_samples, DEMO_TOKEN, SAMPLES};

/// How often `--keep-running` replays the sample requests.
const TRICKLE_INTERVAL: Duration = Duration::from_secs(2);

/// Runs the demo and prints its table; with `keep_running`, stays up afterwards until Ctrl-C or
/// SIGTERM.
pub async fn run(keep_running: bool) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let socket = dir.join("agents.sock");
    let tokens = dir.join("tokens.json");
    tokio::fs::write(
        &tokens,
        format!(r#"[{{"user": "alice", "bearer": "{DEMO_TOKEN}"}}]"#),
    )
    .await?;

    let upstream = upstream::start_upstream().await?;
    let config = config::demo_config(&socket, upstream);
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
        children.push(agents::spawn_agent(
            "sentinel-waf-agent",
            "waf-1",
            &socket,
            &[],
        )?);
        children.push(agents::spawn_agent(
            "sentinel-auth-agent",
            "auth-agent",
            &socket,
            &["--tokens", &tokens.display().to_string()],
        )?);
        agents::wait_for_agents(proxy.state(), &["waf-1", "auth-agent"]).await?;
        agents::print_registrations(proxy.state());
        send_samples(proxy.state(), http_address).await?;
        if keep_running {
            let admin = proxy.admin_address().context("no admin listener")?;
            keep_serving(http_address, admin).await?;
        }
        Ok(())
    }
    .await;
    for child in &mut children {
        agents::stop(child).await;
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

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("sentinel-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
