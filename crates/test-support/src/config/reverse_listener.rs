//! The `reverse-listener { … }` block: where agents dial in, with its limits, authentication,
//! TLS and throttling (docs/configuration.md, PROTOCOL.md §7). Only the spelling of these
//! directives lives here; their meaning and validation are the proxy's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::kdl::Node;
use super::{duration, path_value};

/// Where an `auth-token` directive takes its secret from (exactly one source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `value="…"`: the token itself (tests only).
    Value(String),
    /// `env="VAR"`: an environment variable of the proxy.
    Env(String),
    /// `file="PATH"`: a file holding the token.
    File(PathBuf),
    /// `sha256="64 hex digits"`: the token's digest.
    Sha256(String),
}

impl TokenSource {
    fn apply(&self, node: Node) -> Node {
        match self {
            TokenSource::Value(v) => node.prop("value", v.as_str()),
            TokenSource::Env(v) => node.prop("env", v.as_str()),
            TokenSource::File(p) => node.prop("file", path_value(p)),
            TokenSource::Sha256(v) => node.prop("sha256", v.as_str()),
        }
    }
}

/// `tls { cert-file key-file client-ca-file }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
}

impl Tls {
    /// Server TLS with the proxy's certificate chain and key.
    pub fn new(cert_file: impl AsRef<Path>, key_file: impl AsRef<Path>) -> Tls {
        Tls {
            cert_file: cert_file.as_ref().to_path_buf(),
            key_file: key_file.as_ref().to_path_buf(),
            client_ca_file: None,
        }
    }

    /// Mutual TLS: agents must present a certificate signed by a CA in this file.
    pub fn client_ca_file(mut self, path: impl AsRef<Path>) -> Tls {
        self.client_ca_file = Some(path.as_ref().to_path_buf());
        self
    }

    fn node(&self) -> Node {
        let node = Node::new("tls")
            .child(Node::new("cert-file").arg(path_value(&self.cert_file)))
            .child(Node::new("key-file").arg(path_value(&self.key_file)));
        match &self.client_ca_file {
            Some(ca) => node.child(Node::new("client-ca-file").arg(path_value(ca))),
            None => node,
        }
    }
}

/// `failed-registrations { limit window block delay max-delay }`; unset fields keep the
/// proxy's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedRegistrations {
    limit: Option<u64>,
    window: Option<Duration>,
    block: Option<Duration>,
    delay: Option<Duration>,
    max_delay: Option<Duration>,
}

impl FailedRegistrations {
    /// Every setting at the proxy's default.
    pub fn new() -> FailedRegistrations {
        FailedRegistrations::default()
    }
    /// `limit N`: failures per address within `window` before it is blocked (0: never).
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }
    /// `window "…"`.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }
    /// `block "…"`.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = Some(block);
        self
    }
    /// `delay "…"` (zero: no delay).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    /// `max-delay "…"`.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = Some(max_delay);
        self
    }

    fn node(&self) -> Node {
        let mut node = Node::new("failed-registrations").with_block();
        if let Some(limit) = self.limit {
            node = node.child(Node::new("limit").arg(limit));
        }
        for (name, value) in [
            ("window", self.window),
            ("block", self.block),
            ("delay", self.delay),
            ("max-delay", self.max_delay),
        ] {
            if let Some(value) = value {
                node = node.child(Node::new(name).arg(duration(value)));
            }
        }
        node
    }
}

/// The `reverse-listener` block. Directives are written in the order they were set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReverseListener {
    directives: Vec<Node>,
}

impl ReverseListener {
    /// A block with no directive yet (the proxy needs `path` or `tcp-address`).
    pub fn new() -> ReverseListener {
        ReverseListener::default()
    }

    /// A listener on the Unix socket `path`.
    pub fn unix(path: impl AsRef<Path>) -> ReverseListener {
        ReverseListener::new().path(path)
    }

    fn push(mut self, node: Node) -> Self {
        self.directives.push(node);
        self
    }

    /// `path "FILE"`: the Unix socket.
    pub fn path(self, path: impl AsRef<Path>) -> Self {
        self.push(Node::new("path").arg(path_value(path.as_ref())))
    }
    /// `tcp-address "IP:PORT"`.
    pub fn tcp_address(self, address: impl ToString) -> Self {
        self.push(Node::new("tcp-address").arg(address.to_string()))
    }
    /// `max-connections-per-agent N`.
    pub fn max_connections_per_agent(self, n: usize) -> Self {
        self.push(Node::new("max-connections-per-agent").arg(n))
    }
    /// `handshake-timeout "…"`.
    pub fn handshake_timeout(self, timeout: Duration) -> Self {
        self.push(Node::new("handshake-timeout").arg(duration(timeout)))
    }
    /// `require-auth BOOL`.
    pub fn require_auth(self, required: bool) -> Self {
        self.push(Node::new("require-auth").arg(required))
    }
    /// `allowed-agents "PATTERN"…`.
    pub fn allowed_agents<S: AsRef<str>>(self, patterns: impl IntoIterator<Item = S>) -> Self {
        let patterns: Vec<String> = patterns.into_iter().map(|p| p.as_ref().into()).collect();
        self.push(Node::new("allowed-agents").args(patterns))
    }
    /// `auth-token "PATTERN" SOURCE` (repeatable).
    pub fn auth_token(self, pattern: &str, source: TokenSource) -> Self {
        self.push(source.apply(Node::new("auth-token").arg(pattern)))
    }
    /// `max-agent-connections N`.
    pub fn max_agent_connections(self, n: usize) -> Self {
        self.push(Node::new("max-agent-connections").arg(n))
    }
    /// `failed-registrations { … }`.
    pub fn failed_registrations(self, settings: FailedRegistrations) -> Self {
        self.push(settings.node())
    }
    /// `max-pending-handshakes N`.
    pub fn max_pending_handshakes(self, n: usize) -> Self {
        self.push(Node::new("max-pending-handshakes").arg(n))
    }
    /// `heartbeat-interval "…"`.
    pub fn heartbeat_interval(self, interval: Duration) -> Self {
        self.push(Node::new("heartbeat-interval").arg(duration(interval)))
    }
    /// `write-timeout "…"`.
    pub fn write_timeout(self, timeout: Duration) -> Self {
        self.push(Node::new("write-timeout").arg(duration(timeout)))
    }
    /// `max-frame-size BYTES`.
    pub fn max_frame_size(self, bytes: u64) -> Self {
        self.push(Node::new("max-frame-size").arg(bytes))
    }
    /// `socket-mode "0660"` (octal string).
    pub fn socket_mode(self, mode: &str) -> Self {
        self.push(Node::new("socket-mode").arg(mode))
    }
    /// `max-concurrent-requests N`.
    pub fn max_concurrent_requests(self, n: usize) -> Self {
        self.push(Node::new("max-concurrent-requests").arg(n))
    }
    /// `max-concurrent-requests-limit N`.
    pub fn max_concurrent_requests_limit(self, n: usize) -> Self {
        self.push(Node::new("max-concurrent-requests-limit").arg(n))
    }
    /// `tls { … }`.
    pub fn tls(self, tls: Tls) -> Self {
        self.push(tls.node())
    }
    /// `allowed-uids N…`.
    pub fn allowed_uids(self, uids: impl IntoIterator<Item = u32>) -> Self {
        self.push(Node::new("allowed-uids").args(uids))
    }
    /// `allowed-gids N…`.
    pub fn allowed_gids(self, gids: impl IntoIterator<Item = u32>) -> Self {
        self.push(Node::new("allowed-gids").args(gids))
    }
    /// Any other node, verbatim: for tests of the loader's error messages (a misspelt
    /// directive), never for settings the builder has a method for.
    pub fn raw(self, node: Node) -> Self {
        self.push(node)
    }

    pub(super) fn node(&self) -> Node {
        Node::new("reverse-listener")
            .with_block()
            .children(self.directives.iter().cloned())
    }
}

// Added for the proxy tests' fixtures (kept apart from the block above so that branches
// extending the builder merge cleanly).
impl ReverseListener {
    /// Appends the directives of `more` after this block's own: how a fixture's base block
    /// takes a test's extra settings (a `tcp-address`, tokens) without knowing them.
    pub fn extend(mut self, more: ReverseListener) -> Self {
        self.directives.extend(more.directives);
        self
    }
}
