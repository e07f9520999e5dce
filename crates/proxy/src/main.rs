//! The `sentinel` binary: parses the command line, sets up logging, raises the open-files
//! limit, and runs the proxy (or checks a configuration, or runs the demo). Everything else
//! lives in the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sentinel::app::RunningProxy;
use sentinel::config;

#[derive(Parser)]
#[command(
    name = "sentinel",
    version,
    about = "A reverse proxy whose policy agents dial in"
)]
struct Cli {
    /// Configuration file (KDL); same as `sentinel run --config FILE`.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate the configuration file and exit: 0 if valid, 1 with the error otherwise.
    Check,
    /// Run the whole system on built-in defaults: proxy, an upstream, the waf and auth agents,
    /// sample traffic, and a table of what each agent decided.
    Demo,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Some(Command::Demo)));
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Check => check(cli.config),
        Command::Run => runtime().and_then(|rt| rt.block_on(run(cli.config))),
        Command::Demo => runtime().and_then(|rt| rt.block_on(sentinel::demo::run())),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sentinel: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn config_path(path: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    path.context("no configuration file: pass --config FILE (or try `sentinel demo`)")
}

fn check(path: Option<PathBuf>) -> anyhow::Result<()> {
    let path = config_path(path)?;
    config::load(&path)?;
    println!("{}: configuration is valid", path.display());
    Ok(())
}

async fn run(path: Option<PathBuf>) -> anyhow::Result<()> {
    let path = config_path(path)?;
    let config = config::load(&path)?;
    let signals =
        sentinel::signals::Signals::install().context("cannot install signal handlers")?;
    sentinel::limits::raise_open_files_limit();
    let proxy = RunningProxy::start(config, Some(path)).await?;
    signals.serve_until_terminated(proxy).await;
    Ok(())
}
