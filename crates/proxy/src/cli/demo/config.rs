//! The demo's configuration, built as the typed model ([`sentinel::config::Config`]) rather
//! than written in the KDL grammar and parsed: the demo needs no file, and a model built in Rust
//! cannot drift from the grammar the loader owns. It owns only the demo's choices (one Unix
//! socket, one upstream, the `auth` and `waf` agents on one route); it does not validate them,
//! which is the loader's job for configurations a user writes.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sentinel::config::{
    AdminConfig, AgentConfig, BodyOverflow, Config, EventSet, FailureMode, ListenerConfig,
    RouteConfig, RouteMatch, UpstreamConfig,
};
use sentinel::{PoolSettings, ReverseListenerConfig};
use sentinel_agent_protocol::AgentPattern;
use serde_json::json;

/// Any free loopback port: the demo prints the addresses it got.
const LOOPBACK_ANY_PORT: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

/// What the demo runs on: agents dial in on `socket`, requests go to the upstream at `upstream`
/// after the `auth` and then the `waf` agent have seen them. Settings the demo does not choose
/// keep the values the configuration file's grammar gives them when left out
/// (docs/configuration.md).
pub fn demo_config(socket: &Path, upstream: SocketAddr) -> Config {
    Config {
        reverse_listener: Some(ReverseListenerConfig {
            path: Some(socket.to_path_buf()),
            max_connections_per_agent: 4,
            handshake_timeout: Duration::from_secs(10),
            ..ReverseListenerConfig::default()
        }),
        pool: PoolSettings::default(),
        listeners: vec![ListenerConfig {
            name: "http".to_string(),
            address: LOOPBACK_ANY_PORT,
        }],
        upstreams: vec![backend(upstream)],
        agents: vec![auth_agent(), waf_agent()],
        routes: vec![default_route()],
        admin: Some(AdminConfig {
            address: LOOPBACK_ANY_PORT,
            token: None,
        }),
        shutdown_grace: Duration::from_secs(5),
        wait_for_agents: Duration::ZERO,
    }
}

fn backend(upstream: SocketAddr) -> UpstreamConfig {
    UpstreamConfig {
        name: "backend".to_string(),
        targets: vec![upstream.to_string()],
        max_fails: 1,
        fail_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(60),
    }
}

/// Checks the bearer token on request headers (the `sentinel-auth-agent` binary).
fn auth_agent() -> AgentConfig {
    AgentConfig {
        name: "auth".to_string(),
        agent_ids: vec![AgentPattern::new("auth-agent")],
        events: EventSet {
            request_headers: true,
            ..EventSet::default()
        },
        timeout: Duration::from_millis(500),
        failure_mode: FailureMode::Closed,
        config: None,
    }
}

/// Looks for attacks in request headers and bodies (the `sentinel-waf-agent` binary).
fn waf_agent() -> AgentConfig {
    AgentConfig {
        name: "waf".to_string(),
        agent_ids: vec![AgentPattern::new("waf-*")],
        events: EventSet {
            request_headers: true,
            request_body: true,
            ..EventSet::default()
        },
        timeout: Duration::from_millis(500),
        failure_mode: FailureMode::Closed,
        config: Some(json!({ "rules_version": "demo" })),
    }
}

fn default_route() -> RouteConfig {
    RouteConfig {
        name: "default".to_string(),
        matches: RouteMatch {
            path_prefix: Some("/".to_string()),
            host: None,
        },
        upstream: "backend".to_string(),
        agents: vec!["auth".to_string(), "waf".to_string()],
        max_body_inspect: 1024 * 1024,
        body_overflow: BodyOverflow::Reject,
    }
}
