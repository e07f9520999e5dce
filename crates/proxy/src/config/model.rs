//! The typed configuration the proxy runs on, as produced by the KDL loader. Durations are
//! `Duration`, addresses are parsed, secrets are already loaded into [`crate::TokenRule`]s, and
//! every cross-reference (route → upstream, route → agent) has been checked.

use std::net::SocketAddr;
use std::time::Duration;

use sentinel_agent_protocol::AgentPattern;
use serde_json::Value;

use crate::pool::PoolSettings;
use crate::reverse::ReverseListenerConfig;

/// The whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where agents dial in; `None` when the file has no `reverse-listener` block.
    pub reverse_listener: Option<ReverseListenerConfig>,
    /// Agent connection behaviour (heartbeat, write timeout, in-flight limits).
    pub pool: PoolSettings,
    /// HTTP listeners for clients.
    pub listeners: Vec<ListenerConfig>,
    /// Upstream groups.
    pub upstreams: Vec<UpstreamConfig>,
    /// Logical agents.
    pub agents: Vec<AgentConfig>,
    /// Routes, matched in order.
    pub routes: Vec<RouteConfig>,
    /// The admin listener (status page, `/status.json`, `/metrics`, `/agents`, `/health`).
    pub admin: Option<AdminConfig>,
    /// How long in-flight requests may take to finish on shutdown (default 30 s).
    pub shutdown_grace: Duration,
    /// At start-up, how long HTTP listeners may stay closed (connections refused) waiting for
    /// every agent a route consults to have a live connection (default zero: open at once).
    pub wait_for_agents: Duration,
}

/// One HTTP listener (`listener "http" { address "127.0.0.1:8080" }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Its name, for logs and metrics.
    pub name: String,
    /// Where to listen.
    pub address: SocketAddr,
}

/// An upstream group with round-robin targets and passive health checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The name routes refer to.
    pub name: String,
    /// `host:port` targets, in round-robin order.
    pub targets: Vec<String>,
    /// Consecutive failures (connect errors, timeouts) after which a target is skipped
    /// (default 1).
    pub max_fails: u32,
    /// How long a failed target is skipped before it is tried again (default 10 s).
    pub fail_timeout: Duration,
    /// Time allowed to connect to a target (default 5 s).
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response headers (default 60 s).
    pub request_timeout: Duration,
}

/// Which events a logical agent receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventSet {
    /// `request_headers`.
    pub request_headers: bool,
    /// `request_body`.
    pub request_body: bool,
    /// `response_headers`.
    pub response_headers: bool,
    /// `response_body`.
    pub response_body: bool,
}

/// What happens to a request when an agent cannot give a verdict (down, timeout, error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailureMode {
    /// Answer 503 (the default: policy must not be skipped silently).
    #[default]
    Closed,
    /// Proceed without this agent's verdict.
    Open,
}

/// A logical agent (`agent "waf" { … }`).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The name routes refer to.
    pub name: String,
    /// Registered agent ids that serve it.
    pub agent_ids: Vec<AgentPattern>,
    /// Events it receives.
    pub events: EventSet,
    /// Per-event timeout (default 100 ms).
    pub timeout: Duration,
    /// What to do without a verdict.
    pub failure_mode: FailureMode,
    /// Configuration pushed to its agents.
    pub config: Option<Value>,
}

/// What to do with a request body larger than the route's inspection limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyOverflow {
    /// Answer 413 Payload Too Large (the default: nothing reaches the upstream uninspected).
    #[default]
    Reject,
    /// Agents see the first `max-body-inspect` bytes; the rest is forwarded uninspected.
    Forward,
}

/// How a route matches requests; every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMatch {
    /// The request path starts with this.
    pub path_prefix: Option<String>,
    /// The `Host` (without port) equals this, case-insensitively; `*.example.com` matches
    /// subdomains.
    pub host: Option<String>,
}

/// A route (`route "default" { … }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Its name, sent to agents as `route`.
    pub name: String,
    /// When it applies.
    pub matches: RouteMatch,
    /// The upstream group it forwards to.
    pub upstream: String,
    /// Logical agents consulted, in order.
    pub agents: Vec<String>,
    /// Bytes of request/response body inspected by agents (default 1 MiB).
    pub max_body_inspect: usize,
    /// Beyond that limit.
    pub body_overflow: BodyOverflow,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where to listen (default [`AdminConfig::DEFAULT_ADDRESS`], loopback only).
    pub address: SocketAddr,
    /// When set, every admin request but `/health` must carry it (`admin { token-file … }`).
    pub token: Option<crate::admin::AdminToken>,
}

impl Default for Config {
    /// What a file with no top-level settings means: no reverse listener, nothing routed, the
    /// default agent connection behaviour, 30 s to drain, and HTTP listeners open at once.
    fn default() -> Config {
        Config {
            reverse_listener: None,
            pool: PoolSettings::default(),
            listeners: Vec::new(),
            upstreams: Vec::new(),
            agents: Vec::new(),
            routes: Vec::new(),
            admin: None,
            shutdown_grace: Duration::from_secs(30),
            wait_for_agents: Duration::ZERO,
        }
    }
}

impl Default for UpstreamConfig {
    /// An unnamed group without targets and with the documented health and timeout defaults;
    /// the loader names it and requires at least one target.
    fn default() -> UpstreamConfig {
        UpstreamConfig {
            name: String::new(),
            targets: Vec::new(),
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl EventSet {
    /// Every kind of event.
    pub const ALL: EventSet = EventSet {
        request_headers: true,
        request_body: true,
        response_headers: true,
        response_body: true,
    };

    /// What an agent receives when its block names no `events`: request headers only.
    pub const REQUEST_HEADERS_ONLY: EventSet = EventSet {
        request_headers: true,
        request_body: false,
        response_headers: false,
        response_body: false,
    };
}

impl Default for AgentConfig {
    /// An unnamed agent; when no `agent-ids` are given the loader serves it by its own name.
    fn default() -> AgentConfig {
        AgentConfig {
            name: String::new(),
            agent_ids: Vec::new(),
            events: EventSet::REQUEST_HEADERS_ONLY,
            timeout: Duration::from_millis(100),
            failure_mode: FailureMode::default(),
            config: None,
        }
    }
}

impl RouteConfig {
    /// Body bytes agents inspect when the route does not say (1 MiB).
    pub const DEFAULT_MAX_BODY_INSPECT: usize = 1024 * 1024;
}

impl Default for RouteConfig {
    /// An unnamed route matching everything; the loader names it and requires an upstream.
    fn default() -> RouteConfig {
        RouteConfig {
            name: String::new(),
            matches: RouteMatch::default(),
            upstream: String::new(),
            agents: Vec::new(),
            max_body_inspect: RouteConfig::DEFAULT_MAX_BODY_INSPECT,
            body_overflow: BodyOverflow::default(),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            address: AdminConfig::DEFAULT_ADDRESS,
            token: None,
        }
    }
}

impl AdminConfig {
    /// Where the admin listener binds when the `admin` block names no address: loopback, so
    /// that only this machine sees it unless the operator decides otherwise.
    pub const DEFAULT_ADDRESS: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        9901,
    ));
}

impl Config {
    /// The logical agents for the pool.
    pub fn logical_agents(&self) -> Vec<crate::LogicalAgent> {
        self.agents
            .iter()
            .map(|a| crate::LogicalAgent {
                name: a.name.clone(),
                agent_ids: a.agent_ids.clone(),
                config: a.config.clone(),
                events: a.events,
            })
            .collect()
    }

    /// The named agent.
    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// Logical agents consulted by at least one route, each named once.
    pub fn routed_agents(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for name in self.routes.iter().flat_map(|r| &r.agents) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// The named upstream.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}
