//! The demo's agents: the `sentinel-waf-agent` and `sentinel-auth-agent` binaries, found next
//! to the `sentinel` binary, started as child processes that dial the demo's Unix socket, waited
//! for until they have registered, listed, and stopped. It owns the processes only; what the
//! agents decide is theirs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sentinel::state::ProxyState;
use tokio::process::{Child, Command};

fn agent_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the sentinel binary")?;
    let candidate = exe.parent().map(|dir| dir.join(name));
    match candidate {
        Some(path) if path.exists() => Ok(path),
        _ => bail!("{name} was not found next to {}; build the example agents first: cargo build --workspace", exe.display()),
    }
}

pub fn spawn_agent(
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

pub async fn stop(child: &mut Child) {
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

pub async fn wait_for_agents(state: &ProxyState, ids: &[&str]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ids.iter().all(|id| state.pool().get_health(id).is_some()) {
        if Instant::now() > deadline {
            bail!("the example agents did not register within 20 s (run with RUST_LOG=info to see why)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

pub fn print_registrations(state: &ProxyState) {
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
