//! The state every part of the running proxy shares: the current configuration (swapped
//! whole on reload), the agent pool, the metrics and the upstream groups' live state (health,
//! keep-alive clients), which outlives reloads.

use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::http::{UpstreamHealth, Upstreams};
use crate::pool::AgentPool;
use crate::telemetry::Metrics;

/// Shared by the HTTP listeners, the admin listener and the reload logic.
pub struct ProxyState {
    config: RwLock<Arc<Config>>,
    pool: AgentPool,
    metrics: Arc<Metrics>,
    upstreams: Upstreams,
}

impl ProxyState {
    /// State for `config`, serving agents from `pool`.
    pub fn new(config: Config, pool: AgentPool, metrics: Arc<Metrics>) -> ProxyState {
        ProxyState {
            config: RwLock::new(Arc::new(config)),
            pool,
            metrics,
            upstreams: Upstreams::new(),
        }
    }

    /// The configuration as it is now. Hold the `Arc` for one request so a reload in the middle
    /// of it does not change its view.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Installs a new configuration (after it was validated).
    pub fn set_config(&self, config: Config) {
        self.upstreams.sync(&config);
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        // Routes may consult other agents now: whoever waits for them looks again.
        self.pool.announce_change();
    }

    /// The agent pool.
    pub fn pool(&self) -> &AgentPool {
        &self.pool
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The upstream groups' live state.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// The health of every configured upstream target, for the admin side.
    pub fn upstream_health(&self) -> Vec<UpstreamHealth> {
        self.upstreams.snapshot(&self.config())
    }
}
