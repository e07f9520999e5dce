//! A typed builder for the proxy's KDL configuration file: the one place in the Rust tests and
//! harnesses that spells the grammar of docs/configuration.md. A [`ProxyConfig`] collects the
//! blocks ([`ReverseListener`], [`Listener`], [`Upstream`], [`Agent`], [`Route`], [`Admin`])
//! and the top-level settings, and renders them through [`kdl`] (escaping, quoting). It does
//! not validate: the proxy's own loader does, and this module's tests load what it renders
//! with that loader so a grammar drift fails here first.
//!
//! ```
//! use std::time::Duration;
//! use sentinel_test_support::config::*;
//!
//! let text = ProxyConfig::new()
//!     .reverse_listener(ReverseListener::unix("/tmp/agents.sock").max_connections_per_agent(4))
//!     .listener(Listener::new("http", "127.0.0.1:0"))
//!     .upstream(Upstream::new("backend", "127.0.0.1:9000"))
//!     .agent(Agent::new("waf").agent_ids(["waf-*"]).timeout(Duration::from_millis(100)))
//!     .route(Route::new("default", "backend").agents(["waf"]))
//!     .admin(Admin::new("127.0.0.1:0"))
//!     .shutdown_grace(Duration::from_secs(5))
//!     .render();
//! assert!(text.contains("path \"/tmp/agents.sock\""));
//! assert!(text.contains("timeout-ms 100"));
//! ```

pub mod kdl;
mod reverse_listener;
mod sections;

use std::path::Path;
use std::time::Duration;

pub use kdl::{Node, Value};
pub use reverse_listener::{FailedRegistrations, ReverseListener, Tls, TokenSource};
pub use sections::{Admin, Agent, BodyOverflow, Event, FailureMode, Listener, Route, Upstream};

/// A whole configuration file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyConfig {
    comment: Option<String>,
    reverse_listener: Option<ReverseListener>,
    listeners: Vec<Listener>,
    upstreams: Vec<Upstream>,
    agents: Vec<Agent>,
    routes: Vec<Route>,
    admin: Option<Admin>,
    shutdown_grace: Option<Duration>,
    wait_for_agents: Option<Duration>,
}

impl ProxyConfig {
    /// An empty configuration (the proxy needs at least a listener and routes).
    pub fn new() -> ProxyConfig {
        ProxyConfig::default()
    }

    /// A `// comment` line at the top (single line; newlines are replaced by spaces).
    pub fn comment(mut self, text: &str) -> Self {
        self.comment = Some(text.replace(['\n', '\r'], " "));
        self
    }
    /// The `reverse-listener` block.
    pub fn reverse_listener(mut self, block: ReverseListener) -> Self {
        self.reverse_listener = Some(block);
        self
    }
    /// Adds a client listener.
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listeners.push(listener);
        self
    }
    /// Adds an upstream.
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstreams.push(upstream);
        self
    }
    /// Adds a logical agent.
    pub fn agent(mut self, agent: Agent) -> Self {
        self.agents.push(agent);
        self
    }
    /// Adds a route (routes are tried in the order added).
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }
    /// The `admin` block.
    pub fn admin(mut self, admin: Admin) -> Self {
        self.admin = Some(admin);
        self
    }
    /// `shutdown-grace "…"`.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = Some(grace);
        self
    }
    /// `wait-for-agents "…"`.
    pub fn wait_for_agents(mut self, limit: Duration) -> Self {
        self.wait_for_agents = Some(limit);
        self
    }

    /// The reverse-listener block, for callers that adjust it (e.g. after learning a port).
    pub fn reverse_listener_mut(&mut self) -> Option<&mut ReverseListener> {
        self.reverse_listener.as_mut()
    }

    /// The document's nodes, in the order the documentation shows the blocks.
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes = Vec::new();
        if let Some(block) = &self.reverse_listener {
            nodes.push(block.node());
        }
        if !self.listeners.is_empty() {
            nodes.push(block(
                "listeners",
                self.listeners.iter().map(Listener::node),
            ));
        }
        if !self.upstreams.is_empty() {
            nodes.push(block(
                "upstreams",
                self.upstreams.iter().map(Upstream::node),
            ));
        }
        if !self.agents.is_empty() {
            nodes.push(block("agents", self.agents.iter().map(Agent::node)));
        }
        if !self.routes.is_empty() {
            nodes.push(block("routes", self.routes.iter().map(Route::node)));
        }
        if let Some(admin) = &self.admin {
            nodes.push(admin.node());
        }
        if let Some(grace) = self.shutdown_grace {
            nodes.push(Node::new("shutdown-grace").arg(duration(grace)));
        }
        if let Some(limit) = self.wait_for_agents {
            nodes.push(Node::new("wait-for-agents").arg(duration(limit)));
        }
        nodes
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let body = kdl::render(&self.nodes());
        match &self.comment {
            Some(comment) => format!("// {comment}\n{body}"),
            None => body,
        }
    }

    /// Writes the file to `path` (through a temporary file and a rename, so a proxy that
    /// re-reads it on SIGHUP never sees half of it).
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        std::fs::write(&temporary, self.render())?;
        std::fs::rename(&temporary, path)
    }
}

impl std::fmt::Display for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

fn block(name: &str, children: impl Iterator<Item = Node>) -> Node {
    Node::new(name).with_block().children(children)
}

/// A duration as the proxy's grammar spells it: whole milliseconds as `"Nms"`, anything finer
/// as `"Nus"`.
pub(crate) fn duration(value: Duration) -> Value {
    if value.subsec_nanos() % 1_000_000 == 0 {
        Value::String(format!("{}ms", value.as_millis()))
    } else {
        Value::String(format!("{}us", value.as_micros()))
    }
}

pub(crate) fn path_value(path: &Path) -> Value {
    Value::String(path.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests;

// Added for the proxy tests' fixtures (kept apart from the block above so that branches
// extending the builder merge cleanly).
impl ProxyConfig {
    /// This configuration with everything `more` sets added: its listeners, upstreams, agents
    /// and routes after these, and its single blocks and settings (reverse listener, admin,
    /// comment, durations) where it sets them. How a fixture's base takes a test's part (its
    /// agents and routes) without knowing it.
    pub fn extend(mut self, more: ProxyConfig) -> Self {
        self.listeners.extend(more.listeners);
        self.upstreams.extend(more.upstreams);
        self.agents.extend(more.agents);
        self.routes.extend(more.routes);
        self.comment = more.comment.or(self.comment);
        self.reverse_listener = more.reverse_listener.or(self.reverse_listener);
        self.admin = more.admin.or(self.admin);
        self.shutdown_grace = more.shutdown_grace.or(self.shutdown_grace);
        self.wait_for_agents = more.wait_for_agents.or(self.wait_for_agents);
        self
    }
}

#[cfg(test)]
mod extend_tests {
    use super::*;

    #[test]
    fn extending_appends_lists_and_takes_the_blocks_set() {
        let base = ProxyConfig::new()
            .reverse_listener(ReverseListener::unix("/tmp/a.sock"))
            .listener(Listener::new("http", "127.0.0.1:0"))
            .upstream(Upstream::new("backend", "127.0.0.1:9"))
            .route(Route::new("first", "backend"))
            .shutdown_grace(Duration::from_secs(30));
        let more = ProxyConfig::new()
            .agent(Agent::new("waf"))
            .route(Route::new("second", "backend"))
            .shutdown_grace(Duration::from_secs(5));
        let expected = ProxyConfig::new()
            .reverse_listener(ReverseListener::unix("/tmp/a.sock"))
            .listener(Listener::new("http", "127.0.0.1:0"))
            .upstream(Upstream::new("backend", "127.0.0.1:9"))
            .agent(Agent::new("waf"))
            .route(Route::new("first", "backend"))
            .route(Route::new("second", "backend"))
            .shutdown_grace(Duration::from_secs(5));
        assert_eq!(base.extend(more), expected);
    }

    #[test]
    fn extending_a_reverse_listener_appends_its_directives() {
        let extended =
            ReverseListener::unix("/tmp/a.sock").extend(ReverseListener::new().require_auth(true));
        assert_eq!(
            extended,
            ReverseListener::unix("/tmp/a.sock").require_auth(true)
        );
    }
}
