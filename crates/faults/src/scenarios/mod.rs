//! The fault scenarios, each an async function from a [`Harness`] to a [`Report`]: `kill`,
//! `stop`, `restart`, `silent_flood`, `frames` and `soak`. A scenario builds its own world
//! (temp dir, upstream, `sentinel` process, agent processes), injects its fault under load,
//! and checks its expectation; it returns `Err` only when the harness itself could not do its
//! job (a binary missing, a port taken). The shared pieces of a world live here.

pub mod frames;
pub mod kill;
pub mod restart;
pub mod silent_flood;
pub mod soak;
pub mod stop;

use std::time::Duration;

use sentinel_test_support::config::{Agent, Event, FailureMode, Route};
use tempfile::TempDir;

use crate::agents::WafAgent;
use crate::binaries::Binaries;
use crate::error::FaultError;
use crate::load;
use crate::proxy::{Proxy, ProxySettings};
use crate::report::{Outcome, Report};
use crate::upstream::Upstream;
use sentinel_test_support::os::Cores;
use sentinel_test_support::process::Supervised;

/// How long an agent process may take to register: generous, the machine has two shared cores.
pub const REGISTER_PATIENCE: Duration = Duration::from_secs(30);

/// The logical agent `waf`: ids `waf-*`, request headers, 2 s timeout, fail-closed.
pub fn waf_agent() -> Agent {
    Agent::new("waf")
        .agent_ids(["waf-*"])
        .events([Event::RequestHeaders])
        .timeout(Duration::from_secs(2))
        .failure_mode(FailureMode::Closed)
}

/// The route `/waf/` through the agent `waf`: the route every scenario's load goes through.
pub fn waf_route() -> Route {
    Route::new("waf", "backend")
        .path_prefix("/waf/")
        .agents(["waf"])
}

/// Settings with [`waf_agent`] and [`waf_route`].
pub fn waf_settings() -> ProxySettings {
    ProxySettings::new(vec![waf_agent()], vec![waf_route()])
}

/// Path prefix of the route without agents that every world adds for the positive control of
/// the "wrongly allowed" counter.
pub const CONTROL_PREFIX: &str = "/control";

fn control_route() -> Route {
    Route::new("control", "backend").path_prefix("/control/")
}

/// Path prefix of the WAF route.
pub const WAF_PREFIX: &str = "/waf";

/// What every scenario runs with.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The binaries under test.
    pub binaries: Binaries,
    /// Where the proxy and the rest run.
    pub cores: Cores,
    /// The short (CI) form: shorter holds, same checks.
    pub short: bool,
}

impl Harness {
    /// `full` in the full form, `short` in the short one.
    pub fn hold(&self, full: Duration, short: Duration) -> Duration {
        if self.short {
            short
        } else {
            full
        }
    }

    /// A temp dir, the upstream and a started proxy with `settings`.
    pub async fn world(&self, settings: &ProxySettings) -> Result<World, FaultError> {
        let dir = tempfile::Builder::new()
            .prefix("sentinel-faults-")
            .tempdir()
            .map_err(|e| FaultError::io("creating a temp dir", e))?;
        let upstream = Upstream::start().await?;
        let mut settings = settings.clone();
        settings.routes.push(control_route());
        let proxy = Proxy::start(
            &self.binaries.sentinel,
            dir.path(),
            &settings,
            upstream.address(),
            Some(self.cores.proxy),
        )
        .await?;
        Ok(World {
            dir,
            upstream,
            proxy,
        })
    }

    /// Starts a WAF agent process `agent_id` with `connections` connections to `world`'s proxy.
    pub fn waf(
        &self,
        world: &World,
        agent_id: &str,
        connections: usize,
    ) -> Result<Supervised, FaultError> {
        WafAgent {
            binary: &self.binaries.waf_agent,
            socket: &world.proxy.addresses().socket,
            agent_id,
            connections,
            cpu: Some(self.cores.others),
            log_dir: world.dir.path(),
        }
        .spawn()
    }
}

/// One scenario's processes and files. Dropping it kills the proxy (agents are dropped by
/// the scenario) and removes the temp dir.
pub struct World {
    /// Logs, configuration, the agents' socket.
    pub dir: TempDir,
    /// The upstream (and witness of wrongly allowed requests).
    pub upstream: Upstream,
    /// The proxy.
    pub proxy: Proxy,
}

impl World {
    /// Starts the steady load on the WAF route (bounded by 300 s), counting in a first phase
    /// named `first_phase`.
    pub fn steady_load(&self, first_phase: &str) -> load::Load {
        let spec = load::LoadSpec::steady(WAF_PREFIX, Duration::from_secs(300));
        load::Load::start(spec, self.proxy.addresses().http, first_phase)
    }

    /// Adds the final checks ([`World::final_checks`]) and returns the report; when it failed,
    /// the temp dir with every process's log is kept and named in the report.
    pub async fn finish(mut self, mut report: Report) -> Report {
        self.final_checks(&mut report).await;
        if !report.passed() {
            let World { dir, proxy, .. } = self;
            drop(proxy);
            report.fact("logs kept in", dir.keep().display().to_string());
        }
        report
    }

    /// Adds the checks every scenario ends with: no must-block request was wrongly allowed,
    /// the upstream's counter of such requests works (positive control), and the proxy is
    /// still running.
    pub async fn final_checks(&mut self, report: &mut Report) {
        report.upstream_wrongly_allowed = self.upstream.wrongly_allowed();
        report.check_nothing_wrongly_allowed();
        self.check_positive_control(report).await;
        let running = self.proxy.check_running();
        report.check(
            "the proxy process is still running",
            running.is_ok(),
            running
                .err()
                .map_or("running".to_string(), |e| e.to_string()),
        );
    }

    /// One must-block request on the route without agents must reach the upstream and be
    /// counted exactly once: a counter that cannot count would otherwise report 0 forever.
    async fn check_positive_control(&self, report: &mut Report) {
        let before = self.upstream.wrongly_allowed();
        let outcome = load::send_one(self.proxy.addresses().http, CONTROL_PREFIX, true).await;
        let counted = self.upstream.wrongly_allowed() - before;
        report.check(
            "positive control: one must-block request on the route without agents is answered \
             by the upstream and counted exactly once",
            outcome == Outcome::Allowed && counted == 1,
            format!("answer {outcome:?}, counted {counted}"),
        );
    }
}

/// Sleeps `d`.
pub async fn hold(d: Duration) {
    tokio::time::sleep(d).await;
}
