//! The `sentinel` binary: parses the command line, sets up logging, raises the open-files
//! limit, and runs the proxy (or checks a configuration, runs the demo, or shows a running
//! proxy's agents and status as tables). The demo lives beside it in [`cli`]; the proxy itself
//! lives in the library.

/// mimalloc: glibc's malloc and free were 5–6% of the proxy's CPU per request (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use sentinel::admin::client::fetch_status;
use sentinel::admin::view::{render_text, View};
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
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// The configuration file of `run` and `check`. Only the commands that read it take it, so
/// `sentinel demo --config FILE` is refused rather than silently ignored.
#[derive(clap::Args)]
struct ConfigArg {
    /// Configuration file (KDL).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run(ConfigArg),
    /// Validate the configuration file and exit: 0 if valid, 1 with the error otherwise.
    Check(ConfigArg),
    /// Run the whole system on built-in defaults: proxy, an upstream, the waf and auth agents,
    /// sample traffic, and a table of what each agent decided.
    Demo {
        /// Keep the demo system up after the table (with a trickle of sample traffic) and print
        /// the status page URL; Ctrl-C stops it.
        #[arg(long)]
        keep_running: bool,
    },
    /// Show a running proxy's agents and their connections, as tables (or JSON).
    Agents(AdminArgs),
    /// Show a running proxy's whole status (agents, reverse listener, routes, upstreams), as
    /// tables (or JSON).
    Status(AdminArgs),
}

#[derive(clap::Args)]
struct AdminArgs {
    /// The proxy's admin address (host:port).
    #[arg(long, default_value_t = config::AdminConfig::DEFAULT_ADDRESS.to_string())]
    admin: String,
    /// Print JSON (the admin listener's /status.json, or its `agents` part) instead of tables.
    #[arg(long)]
    json: bool,
    /// File holding the admin token, when the admin listener requires one.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(!matches!(
        cli.command,
        None | Some(Command::Run(_) | Command::Check(_))
    ));
    let command = cli
        .command
        .unwrap_or(Command::Run(ConfigArg { config: None }));
    let result = match command {
        Command::Check(arg) => check(arg.config.or(cli.config)),
        Command::Run(arg) => runtime().and_then(|rt| rt.block_on(run(arg.config.or(cli.config)))),
        Command::Demo { keep_running } => {
            runtime().and_then(|rt| rt.block_on(cli::demo::run(keep_running)))
        }
        Command::Agents(args) => runtime().and_then(|rt| rt.block_on(show(args, true))),
        Command::Status(args) => runtime().and_then(|rt| rt.block_on(show(args, false))),
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
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
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
        // Colour codes only for a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn config_path(path: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    path.context("no configuration file: pass --config FILE (or try `sentinel demo`)")
}

fn check(path: Option<PathBuf>) -> anyhow::Result<()> {
    let path = config_path(path)?;
    let config = config::load(&path)?;
    // A warning, not an error: the directory may be created at start (systemd's
    // RuntimeDirectory=), but a reader trying the file now wants to know.
    let socket = config
        .reverse_listener
        .as_ref()
        .and_then(|r| r.path.as_deref());
    if let Some(socket) = socket {
        if let Some(problem) = sentinel::reverse::socket_directory_problem(socket) {
            eprintln!(
                "sentinel: warning: the agent socket {} cannot be created now: {problem}",
                socket.display()
            );
        }
    }
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

/// `sentinel agents` (`agents_only`) and `sentinel status`.
async fn show(args: AdminArgs, agents_only: bool) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    let report = fetch_status(&args.admin, token.as_deref()).await?;
    let output = match (args.json, agents_only) {
        (true, true) => serde_json::to_string_pretty(
            &serde_json::json!({ "agents": report.agents, "unassigned": report.unassigned }),
        )?,
        (true, false) => serde_json::to_string_pretty(&report)?,
        (false, true) => render_text(&View::agents_only(&report)),
        (false, false) => render_text(&View::of(&report)),
    };
    println!("{}", output.trim_end());
    Ok(())
}

#[allow(
    clippy::disallowed_methods,
    reason = "the CLI reads its token before any runtime work"
)]
fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
    let token = text.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "the admin token file {} is empty",
        path.display()
    );
    Ok(token.to_string())
}
