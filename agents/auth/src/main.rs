//! `sentinel-auth-agent`: flags, tracing, and the runner around
//! [`sentinel_agent_auth::AuthAgent`].

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sentinel_agent_auth::{AuthAgent, AuthSettings};
use sentinel_agent_sdk::prelude::*;

/// Checks bearer tokens and API keys for Sentinel: 401 without a known one, otherwise the
/// caller's identity goes upstream in a header.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
    /// JSON tokens file: [{"user": "alice", "bearer": "…"}, {"user": "ci", "api_key_sha256": "…"}].
    /// Without it (and without pushed credentials) every request is refused.
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// Header that carries the identity upstream.
    #[arg(long, value_name = "NAME", default_value = "x-auth-user")]
    identity_header: String,
    /// Header that carries an API key.
    #[arg(long, value_name = "NAME", default_value = "x-api-key")]
    api_key_header: String,
    /// Path prefix served without credentials (repeatable), e.g. /health.
    #[arg(long, value_name = "PREFIX")]
    public_path: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sentinel_agent_sdk::init_tracing();
    let cli = Cli::parse();
    let config = cli.connect.to_config()?;
    let agent = AuthAgent::new(AuthSettings {
        tokens_file: cli.tokens,
        identity_header: cli.identity_header.to_ascii_lowercase(),
        api_key_header: cli.api_key_header.to_ascii_lowercase(),
        public_paths: cli.public_path,
        ..AuthSettings::default()
    })
    .context("cannot load the credentials")?;
    if agent.credential_count() == 0 {
        tracing::warn!(
            "no credentials loaded: every request is refused until the proxy pushes some"
        );
    } else {
        tracing::info!(credentials = agent.credential_count(), "credentials loaded");
    }
    Runner::new(agent, config)?.run_until_signal().await?;
    Ok(())
}
