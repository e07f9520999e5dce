//! Process signals for a running proxy: SIGHUP reloads the configuration (a bad file is
//! refused and the old one keeps serving), SIGTERM and ctrl-c shut down gracefully. Handlers
//! are installed before start-up so an early SIGHUP cannot kill the process.

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::app::RunningProxy;

/// The signals the proxy reacts to, installed.
pub struct Signals {
    hangup: Signal,
    terminate: Signal,
}

impl Signals {
    /// Installs the handlers; from now on SIGHUP and SIGTERM no longer kill the process.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Serves until SIGTERM or ctrl-c, reloading on SIGHUP; then shuts down gracefully.
    pub async fn serve_until_terminated(mut self, proxy: RunningProxy) {
        loop {
            tokio::select! {
                _ = self.hangup.recv() => match proxy.reload() {
                    Ok(report) => tracing::info!(?report, "reload complete"),
                    Err(e) => tracing::error!("reload refused, the previous configuration keeps serving: {e}"),
                },
                _ = self.terminate.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        proxy.shutdown().await;
    }
}
