//! `sentinel-bench peers`: Sentinel side by side with what operators would run instead —
//! nginx (with `auth_request`) and HAProxy (with SPOE) — on the same machine, upstream and
//! clients, in one run (issue 9). `peers` alone runs the suite ([`suite`]); `peers spoa` and
//! `peers auth-service` are the bench-only external check services the peers call (the
//! minimal SPOA and nginx's auth service), started by the suite as separate processes. None
//! of this is shipped: it lives in the bench crate only. See docs/benchmarks.md.

mod auth_service;
mod check;
mod measure;
mod spoa;
pub mod spop;
mod suite;
mod systems;
mod tools;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

/// `peers` and its hidden roles.
#[derive(Args)]
pub struct PeersArgs {
    /// Do not install missing tools (nginx, haproxy, wrk with apt-get; oha with cargo).
    #[arg(long)]
    no_install: bool,
    /// Client connections of wrk and oha.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[command(subcommand)]
    role: Option<Role>,
}

#[derive(Subcommand)]
enum Role {
    /// The bench's minimal SPOA for HAProxy SPOE.
    #[command(hide = true)]
    Spoa {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        token_file: PathBuf,
    },
    /// The bench's auth service for nginx auth_request.
    #[command(hide = true)]
    AuthService {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        token_file: PathBuf,
    },
}

/// Runs the suite, or one of its roles.
pub fn main(args: PeersArgs, runs: usize, quick: bool, no_build: bool) -> anyhow::Result<()> {
    match args.role {
        Some(Role::Spoa { socket, token_file }) => spoa::run(
            &socket,
            spoa::Checks {
                bearer: check::BearerCheck::new(&read_token(&token_file)?),
                body: check::BodyCheck::default(),
            },
        ),
        Some(Role::AuthService { socket, token_file }) => {
            auth_service::run(&socket, check::BearerCheck::new(&read_token(&token_file)?))
        }
        None => {
            if runs == 0 {
                anyhow::bail!("--runs must be at least 1");
            }
            suite::run(&suite::Settings {
                runs,
                quick,
                no_build,
                no_install: args.no_install,
                connections: args.connections,
            })
        }
    }
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    Ok(token.trim().to_string())
}
