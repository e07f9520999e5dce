//! Process signals for a running proxy: SIGHUP reloads the configuration (a bad file is
//! refused and the old one keeps serving), SIGTERM and ctrl-c shut down gracefully.

use tokio::signal::unix::{signal, SignalKind};

use crate::app::RunningProxy;

/// Serves until SIGTERM or ctrl-c, reloading on SIGHUP; then shuts down gracefully.
pub async fn serve_until_terminated(proxy: RunningProxy) -> std::io::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match proxy.reload() {
                Ok(report) => tracing::info!(?report, "reload complete"),
                Err(e) => tracing::error!("reload refused, the previous configuration keeps serving: {e}"),
            },
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    proxy.shutdown().await;
    Ok(())
}
