//! `sentinel-waf-agent`: flags, tracing, and the runner around [`sentinel_agent_waf::Waf`].

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sentinel_agent_sdk::prelude::*;
use sentinel_agent_waf::{RuleSource, Waf, WafSettings, DEFAULT_MAX_BODY_BYTES};

/// A regex WAF for Sentinel: blocks requests whose path, query, headers or body match a rule.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,
    /// JSON rules file (a list of {"id", "pattern", "targets", "tags", "message"}), checked
    /// after the built-in rules.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Leave out the built-in SQL injection, XSS and path traversal rules.
    #[arg(long)]
    no_default_rules: bool,
    /// Request body bytes inspected per request; the rest passes unchecked.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Do not ask for request bodies.
    #[arg(long)]
    no_body: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sentinel_agent_sdk::init_tracing();
    let cli = Cli::parse();
    let config = cli.connect.to_config()?;
    let settings = WafSettings {
        source: RuleSource {
            default_rules: !cli.no_default_rules,
            file: cli.rules,
            inline: Vec::new(),
        },
        max_body_bytes: cli.max_body_bytes,
        inspect_body: !cli.no_body,
    };
    let waf = Waf::new(settings).context("cannot load the WAF rules")?;
    tracing::info!(rules = waf.rules().rules().len(), "rules loaded");
    Runner::new(waf, config)?.run_until_signal().await?;
    Ok(())
}
