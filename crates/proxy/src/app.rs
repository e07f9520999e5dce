//! Wiring the proxy together from a [`Config`]: bind every socket (reverse listener, HTTP
//! listeners, admin), start their tasks, reload a new configuration in place, and shut down in
//! order. Binaries only parse arguments, set up logging and signals, and call this.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::status::ListenerAddresses;
use crate::admin::{serve_admin, AdminContext};
use crate::config::{self, Config, ConfigError};
use crate::pool::AgentPool;
use crate::readiness;
use crate::reverse::{
    ListenerError, RegistrationStats, RegistrationValidator, Reloadable, ReverseConnectionListener,
    TlsSlot,
};
use crate::state::ProxyState;
use crate::telemetry::Metrics;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The reverse listener could not bind.
    #[error(transparent)]
    ReverseListener(#[from] ListenerError),
    /// An HTTP or admin address could not be bound.
    /// The cause is in the message and not chained as a `source`, so it is said once.
    #[error("cannot listen on {address} ({what}): {reason}")]
    Bind {
        /// Which listener.
        what: String,
        /// The address.
        address: SocketAddr,
        /// Why.
        reason: std::io::Error,
    },
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// ConfigUpdate frames sent to agent connections whose config changed.
    pub config_updates_sent: usize,
    /// Settings that changed but take effect only after a restart (socket addresses).
    pub needs_restart: Vec<String>,
    /// Whether the reverse listener's TLS certificates (and client CA) were re-read and are
    /// used by new TLS handshakes from now on.
    pub tls_reloaded: bool,
}

/// Why a reload was refused; the running configuration keeps serving either way.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The proxy was started from a configuration built in code: there is no file to re-read.
    #[error("<built-in>: this proxy was started without a configuration file")]
    NoConfigFile,
    /// The file cannot be used (unreadable, invalid, or naming unusable certificates); the
    /// error says where, as file:line:column.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A running proxy.
pub struct RunningProxy {
    state: Arc<ProxyState>,
    config_path: Option<PathBuf>,
    registrations: Option<Arc<RegistrationStats>>,
    /// Stops accepting (HTTP, admin, agents).
    accepting: CancellationToken,
    /// Cancelled at the start of shutdown (for `/health`).
    shutting_down: CancellationToken,
    /// Stops the admin listener, last.
    admin_stop: CancellationToken,
    http_tasks: JoinSet<()>,
    other_tasks: JoinSet<()>,
    http_addresses: Vec<SocketAddr>,
    admin_address: Option<SocketAddr>,
    agent_socket: Option<PathBuf>,
    agent_tcp_address: Option<SocketAddr>,
    agent_tls: Option<Arc<TlsSlot>>,
    agent_validator: Option<Arc<Reloadable<RegistrationValidator>>>,
}

impl RunningProxy {
    /// Binds everything `config` names and starts serving. `config_path` is re-read on reload.
    pub async fn start(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<RunningProxy, StartError> {
        let pool = AgentPool::new(config.logical_agents(), config.pool);
        let accepting = CancellationToken::new();
        let shutting_down = CancellationToken::new();
        let admin_stop = CancellationToken::new();
        let mut other_tasks = JoinSet::new();

        let mut registrations = None;
        let (mut agent_socket, mut agent_tcp_address, mut agent_tls) = (None, None, None);
        let mut agent_validator = None;
        if let Some(reverse) = config.reverse_listener.clone() {
            let listener = ReverseConnectionListener::bind(reverse, pool.clone()).await?;
            registrations = Some(listener.stats());
            agent_socket = listener.uds_path().map(Path::to_path_buf);
            agent_tcp_address = listener.tcp_address();
            agent_tls = listener.tls_slot();
            agent_validator = Some(listener.validator_slot());
            other_tasks.spawn(listener.run(accepting.clone()));
        }

        let mut http = Vec::new();
        for listener in &config.listeners {
            let what = format!("listener \"{}\"", listener.name);
            let socket = readiness::bind(listener.address).map_err(|source| StartError::Bind {
                what: what.clone(),
                address: listener.address,
                reason: source,
            })?;
            http.push((what, listener.address, socket));
        }
        let admin = match &config.admin {
            Some(admin) => {
                if !admin.address.ip().is_loopback() && admin.token.is_none() {
                    tracing::warn!(address = %admin.address, "the admin listener is reachable beyond this machine without a token; set admin {{ token-file \"…\" }}");
                }
                Some(bind("admin", admin.address).await?)
            }
            None => None,
        };

        let wait_for_agents = config.wait_for_agents;
        let state = Arc::new(ProxyState::new(config, pool, Arc::new(Metrics::default())));
        let mut http_tasks = JoinSet::new();
        let mut http_addresses = Vec::new();
        for (what, address, socket) in http {
            let bind_error = |source| StartError::Bind {
                what: what.clone(),
                address,
                reason: source,
            };
            http_addresses.push(socket.local_addr().map_err(bind_error)?);
            if wait_for_agents.is_zero() || readiness::agents_connected(&state) {
                let listener = readiness::listen(socket).map_err(bind_error)?;
                http_tasks.spawn(crate::http::serve(
                    listener,
                    state.clone(),
                    accepting.clone(),
                ));
            } else {
                http_tasks.spawn(listen_when_ready(
                    socket,
                    state.clone(),
                    wait_for_agents,
                    accepting.clone(),
                ));
            }
        }
        let mut admin_address = None;
        if let Some(listener) = admin {
            admin_address = listener.local_addr().ok();
            let context = AdminContext {
                state: state.clone(),
                registrations: registrations.clone(),
                listener: ListenerAddresses {
                    socket_path: agent_socket.clone(),
                    tcp_address: agent_tcp_address,
                    tls: agent_tls.is_some(),
                },
                shutdown: shutting_down.clone(),
            };
            // The admin listener outlives the others, so `/health` can answer 503 while draining.
            other_tasks.spawn(serve_admin(listener, context, admin_stop.clone()));
        }
        tracing::info!(http = ?http_addresses, admin = ?admin_address, agents_socket = ?agent_socket, agents_tcp = ?agent_tcp_address, "sentinel started");
        Ok(RunningProxy {
            state,
            config_path,
            registrations,
            accepting,
            shutting_down,
            admin_stop,
            http_tasks,
            other_tasks,
            http_addresses,
            admin_address,
            agent_socket,
            agent_tcp_address,
            agent_tls,
            agent_validator,
        })
    }

    /// The bound HTTP addresses (real ports when configured with port 0).
    pub fn http_addresses(&self) -> &[SocketAddr] {
        &self.http_addresses
    }

    /// The bound admin address.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin_address
    }

    /// The agents' Unix socket.
    pub fn agent_socket(&self) -> Option<&Path> {
        self.agent_socket.as_deref()
    }

    /// The agents' TCP address.
    pub fn agent_tcp_address(&self) -> Option<SocketAddr> {
        self.agent_tcp_address
    }

    /// The shared state (config, pool, metrics).
    pub fn state(&self) -> &Arc<ProxyState> {
        &self.state
    }

    /// Registration counters of the reverse listener.
    pub fn registrations(&self) -> Option<&Arc<RegistrationStats>> {
        self.registrations.as_ref()
    }

    /// Re-reads the configuration file, and with it the reverse listener's TLS certificate, key
    /// and client CA. A file with an error — including an unreadable or unusable certificate —
    /// is refused and the running configuration (and certificate) keeps serving; a valid one
    /// replaces it, new TLS handshakes use the new certificates, and agents whose pushed config
    /// changed get a ConfigUpdate. Connections already up are not touched.
    pub fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let Some(path) = &self.config_path else {
            return Err(ReloadError::NoConfigFile);
        };
        let new = config::load(path)?;
        Ok(self.apply(new))
    }

    /// Installs an already validated configuration.
    pub fn apply(&self, new: Config) -> ReloadReport {
        let old = self.state.config();
        let needs_restart = old.restart_only_changes(&new);
        for setting in &needs_restart {
            tracing::warn!(
                setting,
                "changed in the configuration; takes effect after a restart"
            );
        }
        let tls_reloaded = match (
            &self.agent_tls,
            new.reverse_listener.as_ref().and_then(|r| r.tls.clone()),
        ) {
            (Some(slot), Some(tls)) => {
                tracing::info!(
                    files = ?tls.files(),
                    "reverse listener TLS certificates reloaded; new handshakes use them"
                );
                slot.replace(tls);
                true
            }
            _ => false,
        };
        // Tokens, require-auth and the allowlist apply to the next registration; connections
        // already registered stay.
        if let (Some(slot), Some(reverse)) = (&self.agent_validator, &new.reverse_listener) {
            slot.replace(RegistrationValidator::new(reverse));
        }
        // The pool first: a route naming a new logical agent must find it the moment the new
        // configuration is visible.
        let config_updates_sent = self.state.pool().set_logical_agents(new.logical_agents());
        self.state.set_config(new);
        tracing::info!(config_updates_sent, "configuration reloaded");
        ReloadReport {
            config_updates_sent,
            needs_restart,
            tls_reloaded,
        }
    }

    /// Graceful shutdown: stop accepting, let HTTP requests in flight finish, send GoAway to
    /// every agent connection and let their requests finish, all within the configured grace
    /// period; then close everything.
    pub async fn shutdown(mut self) {
        let grace = self.state.config().shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        tracing::info!(?grace, "shutting down");
        self.shutting_down.cancel();
        self.accepting.cancel();
        let http_drained = tokio::time::timeout_at(deadline, async {
            while self.http_tasks.join_next().await.is_some() {}
        })
        .await;
        if http_drained.is_err() {
            tracing::warn!("HTTP requests still in flight after the grace period; closing them");
            self.http_tasks.abort_all();
        }
        let left = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_secs(1));
        self.state.pool().shutdown(left).await;
        self.admin_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.other_tasks.join_next().await.is_some() {}
        })
        .await;
        tracing::info!("sentinel stopped");
    }
}

/// Opens a listener once the agents are connected (or the wait is over), then serves it.
async fn listen_when_ready(
    socket: tokio::net::TcpSocket,
    state: Arc<ProxyState>,
    wait: Duration,
    accepting: CancellationToken,
) {
    let ready = readiness::agents_ready(&state, wait, &accepting).await;
    if accepting.is_cancelled() {
        return;
    }
    match readiness::listen(socket) {
        Ok(listener) => {
            tracing::info!(address = ?listener.local_addr().ok(), agents_ready = ready, "HTTP listener open");
            crate::http::serve(listener, state, accepting).await
        }
        Err(e) => tracing::error!("cannot listen on an HTTP address: {e}"),
    }
}

async fn bind(what: &str, address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind {
            what: what.to_string(),
            address,
            reason: source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_without_a_file_says_so_as_before() {
        assert_eq!(
            ReloadError::NoConfigFile.to_string(),
            "<built-in>: this proxy was started without a configuration file"
        );
    }
}
