//! Shutdown wiring for agent binaries: a [`CancellationToken`] cancelled by SIGTERM or ctrl-c,
//! and a one-call tracing set-up honouring `RUST_LOG`.

use tokio_util::sync::CancellationToken;

use crate::error::RunError;

/// A token cancelled on the first SIGTERM or ctrl-c (SIGINT). Must be called inside a tokio
/// runtime; the signal handlers are installed before it returns.
pub fn shutdown_on_signal() -> Result<CancellationToken, RunError> {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let mut terminate = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let which = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
            _ = cancel.cancelled() => return,
        };
        tracing::info!("{which} received; draining connections");
        cancel.cancel();
    });
    Ok(token)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), in colour only when stderr is a
/// terminal. Does nothing if a global subscriber is already set.
pub fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
