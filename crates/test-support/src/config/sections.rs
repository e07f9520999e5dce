//! The blocks around the reverse listener: `listeners`, `upstreams`, `agents`, `routes` and
//! `admin` (docs/configuration.md). Each builder writes only the directives it was given, so
//! the proxy's defaults apply to the rest; the proxy's loader judges the result.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::kdl::Node;
use super::{duration, path_value};

/// One `listener "NAME" { address "…" }` of the `listeners` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    name: String,
    address: String,
}

impl Listener {
    /// A listener called `name` on `address` (`"127.0.0.1:0"` for any free port).
    pub fn new(name: &str, address: impl ToString) -> Listener {
        Listener {
            name: name.to_string(),
            address: address.to_string(),
        }
    }

    pub(super) fn node(&self) -> Node {
        Node::new("listener")
            .arg(self.name.as_str())
            .child(Node::new("address").arg(self.address.as_str()))
    }
}

/// One `upstream "NAME" { target … }` of the `upstreams` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    name: String,
    targets: Vec<String>,
    settings: Vec<Node>,
}

impl Upstream {
    /// An upstream called `name` with one target.
    pub fn new(name: &str, target: impl ToString) -> Upstream {
        Upstream {
            name: name.to_string(),
            targets: vec![target.to_string()],
            settings: Vec::new(),
        }
    }
    /// Another target (round robin).
    pub fn target(mut self, target: impl ToString) -> Self {
        self.targets.push(target.to_string());
        self
    }
    /// `max-fails N`.
    pub fn max_fails(mut self, n: u32) -> Self {
        self.settings.push(Node::new("max-fails").arg(n));
        self
    }
    /// `fail-timeout "…"`.
    pub fn fail_timeout(mut self, timeout: Duration) -> Self {
        self.settings
            .push(Node::new("fail-timeout").arg(duration(timeout)));
        self
    }
    /// `connect-timeout "…"`.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings
            .push(Node::new("connect-timeout").arg(duration(timeout)));
        self
    }
    /// `request-timeout "…"`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings
            .push(Node::new("request-timeout").arg(duration(timeout)));
        self
    }

    pub(super) fn node(&self) -> Node {
        Node::new("upstream")
            .arg(self.name.as_str())
            .child(Node::new("target").args(self.targets.iter().map(String::as_str)))
            .children(self.settings.iter().cloned())
    }
}

/// An event a logical agent is consulted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `request_headers`.
    RequestHeaders,
    /// `request_body`.
    RequestBody,
    /// `response_headers`.
    ResponseHeaders,
    /// `response_body`.
    ResponseBody,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::RequestHeaders => "request_headers",
            Event::RequestBody => "request_body",
            Event::ResponseHeaders => "response_headers",
            Event::ResponseBody => "response_body",
        }
    }
}

/// What the proxy does without a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// `"closed"`: answer 503.
    Closed,
    /// `"open"`: proceed.
    Open,
}

/// One `agent "NAME" { … }` of the `agents` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    name: String,
    settings: Vec<Node>,
    config: Option<Vec<Node>>,
}

impl Agent {
    /// A logical agent called `name` (served by agent ids equal to its name until
    /// [`Agent::agent_ids`] says otherwise).
    pub fn new(name: &str) -> Agent {
        Agent {
            name: name.to_string(),
            settings: Vec::new(),
            config: None,
        }
    }
    /// `agent-ids "PATTERN"…`.
    pub fn agent_ids<S: AsRef<str>>(mut self, patterns: impl IntoIterator<Item = S>) -> Self {
        let patterns: Vec<String> = patterns.into_iter().map(|p| p.as_ref().into()).collect();
        self.settings.push(Node::new("agent-ids").args(patterns));
        self
    }
    /// `events …`.
    pub fn events(mut self, events: impl IntoIterator<Item = Event>) -> Self {
        let names: Vec<&str> = events.into_iter().map(Event::as_str).collect();
        self.settings.push(Node::new("events").args(names));
        self
    }
    /// `timeout-ms N` (whole milliseconds) or `timeout "…"` otherwise.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        let node = if timeout.subsec_nanos() % 1_000_000 == 0 {
            Node::new("timeout-ms").arg(timeout.as_millis() as u64)
        } else {
            Node::new("timeout").arg(duration(timeout))
        };
        self.settings.push(node);
        self
    }
    /// `failure-mode "closed"|"open"`.
    pub fn failure_mode(mut self, mode: FailureMode) -> Self {
        let mode = match mode {
            FailureMode::Closed => "closed",
            FailureMode::Open => "open",
        };
        self.settings.push(Node::new("failure-mode").arg(mode));
        self
    }
    /// One entry of the pushed `config { … }` block (e.g. `Node::new("rules_version")
    /// .arg("3.4.0")`); free-form, as the proxy turns it into JSON for the agent.
    pub fn config_entry(mut self, entry: Node) -> Self {
        self.config.get_or_insert_with(Vec::new).push(entry);
        self
    }

    pub(super) fn node(&self) -> Node {
        let node = Node::new("agent")
            .arg(self.name.as_str())
            .with_block()
            .children(self.settings.iter().cloned());
        match &self.config {
            Some(entries) => node.child(Node::new("config").with_block().children(entries.clone())),
            None => node,
        }
    }
}

/// What happens to a body longer than `max-body-inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOverflow {
    /// `"reject"`: 413.
    Reject,
    /// `"forward"`: the rest goes uninspected.
    Forward,
}

/// One `route "NAME" { … }` of the `routes` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    name: String,
    matches: Vec<Node>,
    upstream: String,
    agents: Vec<String>,
    settings: Vec<Node>,
}

impl Route {
    /// A route called `name` to `upstream`, matching every request until a condition is added
    /// (written as `matches { path-prefix "/" }`, which is what tests mean by "everything").
    pub fn new(name: &str, upstream: &str) -> Route {
        Route {
            name: name.to_string(),
            matches: Vec::new(),
            upstream: upstream.to_string(),
            agents: Vec::new(),
            settings: Vec::new(),
        }
    }
    /// `matches { path-prefix "…" }`.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.matches.push(Node::new("path-prefix").arg(prefix));
        self
    }
    /// `matches { host "…" }`.
    pub fn host(mut self, host: &str) -> Self {
        self.matches.push(Node::new("host").arg(host));
        self
    }
    /// `agents "NAME"…`, consulted in this order.
    pub fn agents<S: AsRef<str>>(mut self, agents: impl IntoIterator<Item = S>) -> Self {
        self.agents
            .extend(agents.into_iter().map(|a| a.as_ref().to_string()));
        self
    }
    /// `max-body-inspect BYTES`.
    pub fn max_body_inspect(mut self, bytes: u64) -> Self {
        self.settings.push(Node::new("max-body-inspect").arg(bytes));
        self
    }
    /// `body-overflow "reject"|"forward"`.
    pub fn body_overflow(mut self, overflow: BodyOverflow) -> Self {
        let value = match overflow {
            BodyOverflow::Reject => "reject",
            BodyOverflow::Forward => "forward",
        };
        self.settings.push(Node::new("body-overflow").arg(value));
        self
    }

    pub(super) fn node(&self) -> Node {
        let matches = if self.matches.is_empty() {
            vec![Node::new("path-prefix").arg("/")]
        } else {
            self.matches.clone()
        };
        let mut node = Node::new("route")
            .arg(self.name.as_str())
            .child(Node::new("matches").children(matches))
            .child(Node::new("upstream").arg(self.upstream.as_str()));
        if !self.agents.is_empty() {
            node = node.child(Node::new("agents").args(self.agents.iter().map(String::as_str)));
        }
        node.children(self.settings.iter().cloned())
    }
}

/// The `admin { address token-file }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    address: String,
    token_file: Option<PathBuf>,
}

impl Admin {
    /// The admin listener on `address` (`"127.0.0.1:0"` for any free port).
    pub fn new(address: impl ToString) -> Admin {
        Admin {
            address: address.to_string(),
            token_file: None,
        }
    }
    /// `token-file "PATH"`.
    pub fn token_file(mut self, path: impl AsRef<Path>) -> Self {
        self.token_file = Some(path.as_ref().to_path_buf());
        self
    }

    pub(super) fn node(&self) -> Node {
        let node = Node::new("admin").child(Node::new("address").arg(self.address.as_str()));
        match &self.token_file {
            Some(path) => node.child(Node::new("token-file").arg(path_value(path))),
            None => node,
        }
    }
}
