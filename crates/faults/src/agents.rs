//! The real agent processes of a scenario: `sentinel-waf-agent` started with an agent id and a
//! number of connections, dialling the proxy's Unix socket. The WAF's built-in rules block the
//! SQL injection the load generator sends as its must-block request; everything else is
//! allowed. Supervision (signals, restarts) is `sentinel_test_support::process`.

use std::path::Path;

use crate::error::FaultError;
use sentinel_test_support::process::{ProcessSpec, Supervised};

/// How to start one WAF agent process.
#[derive(Debug, Clone)]
pub struct WafAgent<'a> {
    /// The `sentinel-waf-agent` binary.
    pub binary: &'a Path,
    /// The proxy's reverse-listener socket.
    pub socket: &'a Path,
    /// `--agent-id`.
    pub agent_id: &'a str,
    /// `--connections`.
    pub connections: usize,
    /// The CPU it is pinned to.
    pub cpu: Option<usize>,
    /// The directory its log goes to (`<agent_id>.log`).
    pub log_dir: &'a Path,
}

impl WafAgent<'_> {
    /// The process spec (headers only: the load's must-block requests carry the attack in
    /// the query string).
    pub fn spec(&self) -> ProcessSpec {
        ProcessSpec::new(self.agent_id, self.binary)
            .args([
                "--connect".to_string(),
                format!("unix:{}", self.socket.display()),
                "--agent-id".into(),
                self.agent_id.to_string(),
                "--connections".into(),
                self.connections.to_string(),
                "--no-body".into(),
            ])
            .cpu(self.cpu)
            .log_file(self.log_dir.join(format!("{}.log", self.agent_id)))
    }

    /// Starts it.
    pub fn spawn(&self) -> Result<Supervised, FaultError> {
        Ok(Supervised::spawn(self.spec())?)
    }
}
