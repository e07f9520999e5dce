//! The KDL loader: reads one file (KDL v2, or v1 as the original design writes it) into a
//! validated [`Config`]. Unknown directives, wrong types, dangling references and missing
//! secrets are errors that name the file, line and column.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kdl::{KdlDocument, KdlNode, KdlValue};
use sentinel_agent_protocol::{AgentPattern, DEFAULT_MAX_FRAME_LENGTH};

use super::dialect::{upgrade_v1_keywords, Upgraded};
use super::error::{ConfigError, Source};
use super::values::Reader;
use super::*;
use crate::admin::AdminToken;
use crate::pool::PoolSettings;
use crate::reverse::{
    ReverseListenerConfig, ReverseTls, ThrottleSettings, TlsError, TlsFiles, TokenRule, TokenSource,
};

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read the configuration file: {e}"),
    })?;
    parse(&text, path)
}

/// Parses configuration text; `path` names it in errors and anchors relative file paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let reader = Reader {
        source: Source { file: path, text },
    };
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let v2_error = match KdlDocument::parse_v2(text) {
        Ok(document) => return Loader { r: &reader, base }.document(&document),
        Err(e) => e,
    };
    if let Some(upgraded) = upgrade_v1_keywords(text) {
        if let Ok(document) = KdlDocument::parse_v2(&upgraded.text) {
            let upgraded_reader = Reader {
                source: Source {
                    file: path,
                    text: &upgraded.text,
                },
            };
            return Loader {
                r: &upgraded_reader,
                base,
            }
            .document(&document)
            .map_err(|e| relocate(e, &reader, &upgraded_reader, &upgraded));
        }
    }
    match KdlDocument::parse(text) {
        Ok(document) => Loader { r: &reader, base }.document(&document),
        Err(_) => Err(syntax_error(&reader, &v2_error)),
    }
}

fn syntax_error(reader: &Reader<'_>, error: &kdl::KdlError) -> ConfigError {
    let first = error.diagnostics.first();
    let offset = first.map_or(0, |d| d.span.offset());
    let message = first
        .and_then(|d| d.message.clone().or_else(|| d.help.clone()))
        .unwrap_or_else(|| "this is not valid KDL".into());
    reader
        .source
        .error_at(offset, format!("invalid KDL: {message}"))
}

/// Moves an error found in the upgraded text back to its place in the text as written.
fn relocate(
    error: ConfigError,
    original: &Reader<'_>,
    upgraded_reader: &Reader<'_>,
    upgraded: &Upgraded,
) -> ConfigError {
    if error.line == 0 {
        return error;
    }
    match upgraded_reader.source.offset_of(error.line, error.column) {
        Some(offset) => original
            .source
            .error_at(upgraded.original_offset(offset), error.message),
        None => error,
    }
}

struct Loader<'a> {
    r: &'a Reader<'a>,
    base: PathBuf,
}

fn children(node: &KdlNode) -> &[KdlNode] {
    node.children().map(|c| c.nodes()).unwrap_or_default()
}

fn name(node: &KdlNode) -> &str {
    node.name().value()
}

impl Loader<'_> {
    fn unknown(&self, node: &KdlNode, section: &str, expected: &[&str]) -> ConfigError {
        self.r.fail(
            node,
            format!(
                "unknown directive `{}` in {section}; expected one of: {}",
                name(node),
                expected.join(", ")
            ),
        )
    }

    fn document(&self, document: &KdlDocument) -> Result<Config, ConfigError> {
        let mut config = Config {
            reverse_listener: None,
            pool: PoolSettings::default(),
            listeners: Vec::new(),
            upstreams: Vec::new(),
            agents: Vec::new(),
            routes: Vec::new(),
            admin: None,
            shutdown_grace: Duration::from_secs(30),
            wait_for_agents: Duration::ZERO,
        };
        const TOP: [&str; 8] = [
            "reverse-listener",
            "listeners",
            "upstreams",
            "agents",
            "routes",
            "admin",
            "shutdown-grace",
            "wait-for-agents",
        ];
        for node in document.nodes() {
            match name(node) {
                "reverse-listener" => {
                    let (listener, pool) = self.reverse_listener(node)?;
                    config.reverse_listener = Some(listener);
                    config.pool = pool;
                }
                "listeners" => config.listeners = self.listeners(node)?,
                "upstreams" => config.upstreams = self.upstreams(node)?,
                "agents" => config.agents = self.agents(node)?,
                "routes" => config.routes = self.routes(node)?,
                "admin" => config.admin = Some(self.admin(node)?),
                "shutdown-grace" => {
                    config.shutdown_grace = self.r.duration(node, Duration::from_secs(1))?
                }
                "wait-for-agents" => {
                    config.wait_for_agents = self.r.duration(node, Duration::from_secs(1))?
                }
                _ => return Err(self.unknown(node, "the top level", &TOP)),
            }
        }
        self.check_references(document, &config)?;
        Ok(config)
    }

    fn reverse_listener(
        &self,
        node: &KdlNode,
    ) -> Result<(ReverseListenerConfig, PoolSettings), ConfigError> {
        const KNOWN: [&str; 19] = [
            "path",
            "tcp-address",
            "max-connections-per-agent",
            "max-agent-connections",
            "failed-registrations",
            "handshake-timeout",
            "require-auth",
            "allowed-agents",
            "auth-token",
            "max-pending-handshakes",
            "heartbeat-interval",
            "write-timeout",
            "max-frame-size",
            "socket-mode",
            "max-concurrent-requests",
            "max-concurrent-requests-limit",
            "tls",
            "allowed-uids",
            "allowed-gids",
        ];
        let mut config = ReverseListenerConfig::default();
        let mut pool = PoolSettings::default();
        let mut allowed: Vec<AgentPattern> = Vec::new();
        let mut tls = None;
        for child in children(node) {
            let r = self.r;
            match name(child) {
                "path" => config.path = Some(self.path(&r.string(child)?)),
                "tcp-address" => config.tcp_address = Some(self.address(child)?),
                "max-connections-per-agent" => {
                    config.max_connections_per_agent = r.usize(child, 1)?
                }
                "max-agent-connections" => config.max_agent_connections = r.usize(child, 1)?,
                "failed-registrations" => {
                    config.failed_registrations = self.failed_registrations(child)?
                }
                "handshake-timeout" => {
                    config.handshake_timeout = r.duration(child, Duration::from_secs(1))?
                }
                "require-auth" => config.require_auth = r.boolean(child)?,
                "allowed-agents" => allowed.extend(
                    r.strings(child)?
                        .iter()
                        .map(|p| AgentPattern::new(p.as_str())),
                ),
                "auth-token" => config.tokens.push(self.token(child)?),
                "max-pending-handshakes" => config.max_pending_handshakes = r.usize(child, 1)?,
                "heartbeat-interval" => pool.heartbeat_interval = self.positive(child)?,
                "write-timeout" => pool.write_timeout = self.positive(child)?,
                "max-frame-size" => {
                    config.max_frame_length = r.size(child)?;
                    if !(1024..=DEFAULT_MAX_FRAME_LENGTH * 4).contains(&config.max_frame_length) {
                        return Err(
                            r.fail(child, "`max-frame-size` must be between 1KiB and 64MiB")
                        );
                    }
                }
                "socket-mode" => config.socket_mode = self.socket_mode(child)?,
                "max-concurrent-requests" => pool.default_max_in_flight = r.usize(child, 1)?,
                "max-concurrent-requests-limit" => pool.max_in_flight_limit = r.usize(child, 1)?,
                "tls" => tls = Some((self.tls(child)?, child)),
                "allowed-uids" => config.peer_filter.allowed_uids = Some(self.ids(child)?),
                "allowed-gids" => config.peer_filter.allowed_gids = Some(self.ids(child)?),
                _ => return Err(self.unknown(child, "reverse-listener", &KNOWN)),
            }
        }
        if !allowed.is_empty() {
            config.allowed_agents = Some(allowed);
        }
        if config.path.is_none() && config.tcp_address.is_none() {
            return Err(self
                .r
                .fail(node, "reverse-listener needs a `path` or a `tcp-address`"));
        }
        if let Some((tls, tls_node)) = tls {
            if config.tcp_address.is_none() {
                return Err(self.r.fail(
                    tls_node,
                    "`tls` applies to the TCP listener: add a `tcp-address`",
                ));
            }
            config.tls = Some(tls);
        }
        if config.peer_filter.is_active() && config.path.is_none() {
            return Err(self.r.fail(
                node,
                "`allowed-uids` and `allowed-gids` apply to the Unix socket: add a `path`",
            ));
        }
        if config.require_auth && config.tokens.is_empty() {
            return Err(self
                .r
                .fail(node, "`require-auth true` needs at least one `auth-token`"));
        }
        Ok((config, pool))
    }

    /// `failed-registrations { limit 10 window "1m" block "1m" delay "100ms" max-delay "5s" }`;
    /// settings left out keep their defaults.
    fn failed_registrations(&self, node: &KdlNode) -> Result<ThrottleSettings, ConfigError> {
        const KNOWN: [&str; 5] = ["limit", "window", "block", "delay", "max-delay"];
        let r = self.r;
        let mut settings = ThrottleSettings::default();
        for child in children(node) {
            match name(child) {
                "limit" => settings.limit = r.usize(child, 0)? as u32,
                "window" => settings.window = self.positive(child)?,
                "block" => settings.block = self.positive(child)?,
                "delay" => settings.delay = r.duration(child, Duration::from_millis(1))?,
                "max-delay" => settings.max_delay = r.duration(child, Duration::from_millis(1))?,
                _ => return Err(self.unknown(child, "failed-registrations", &KNOWN)),
            }
        }
        Ok(settings)
    }

    /// `tls { cert-file "…" key-file "…" client-ca-file "…" }`, loaded and checked now so that
    /// `sentinel check` and a reload refuse unusable certificates.
    fn tls(&self, node: &KdlNode) -> Result<ReverseTls, ConfigError> {
        const KNOWN: [&str; 3] = ["cert-file", "key-file", "client-ca-file"];
        let r = self.r;
        if !node.entries().is_empty() {
            return Err(r.fail(
                node,
                "`tls` takes a block: tls { cert-file \"…\" key-file \"…\" }",
            ));
        }
        let (mut cert_file, mut key_file, mut client_ca_file) = (None, None, None);
        for child in children(node) {
            let path = Some((self.path(&r.string(child)?), child));
            match name(child) {
                "cert-file" => cert_file = path,
                "key-file" => key_file = path,
                "client-ca-file" => client_ca_file = path,
                _ => return Err(self.unknown(child, "tls", &KNOWN)),
            }
        }
        let (Some((cert_file, cert_node)), Some((key_file, key_node))) = (cert_file, key_file)
        else {
            return Err(r.fail(node, "`tls` needs both `cert-file` and `key-file`"));
        };
        let files = TlsFiles {
            cert_file,
            key_file,
            client_ca_file: client_ca_file.as_ref().map(|(path, _)| path.clone()),
        };
        ReverseTls::load(files).map_err(|e| {
            // Point at the setting the problem is about.
            let at = match &e {
                TlsError::Pem(pem) => match pem.setting() {
                    "key-file" => key_node,
                    "client-ca-file" => client_ca_file.as_ref().map_or(node, |(_, n)| n),
                    _ => cert_node,
                },
                TlsError::ClientCa { .. } => client_ca_file.as_ref().map_or(node, |(_, n)| n),
                TlsError::Certificate { .. } => node,
            };
            r.fail(at, e.to_string())
        })
    }

    /// `allowed-uids 0 1000 …`: one or more numeric ids.
    fn ids(&self, node: &KdlNode) -> Result<Vec<u32>, ConfigError> {
        let r = self.r;
        let values: Vec<&KdlValue> = node
            .entries()
            .iter()
            .filter(|e| e.name().is_none())
            .map(|e| e.value())
            .collect();
        if values.is_empty() || values.len() != node.entries().len() {
            return Err(r.fail(
                node,
                format!(
                    "`{}` takes one or more numeric ids, e.g. {} 0 1000",
                    name(node),
                    name(node)
                ),
            ));
        }
        values
            .into_iter()
            .map(|value| match value {
                KdlValue::Integer(n) if (0..=u32::MAX as i128).contains(n) => Ok(*n as u32),
                other => Err(r.fail(
                    node,
                    format!(
                        "`{}` takes numeric ids (0 to 4294967295), found {other}",
                        name(node)
                    ),
                )),
            })
            .collect()
    }

    fn token(&self, node: &KdlNode) -> Result<TokenRule, ConfigError> {
        let r = self.r;
        let pattern = r.strings(node)?;
        let [pattern] = pattern.as_slice() else {
            return Err(r.fail(node, "`auth-token` takes one agent-id pattern, e.g. auth-token \"waf-*\" env=\"SENTINEL_WAF_TOKEN\""));
        };
        let text = |key: &str| match r.property(node, key) {
            Some(KdlValue::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(r.fail(node, format!("`{key}=` must be a string"))),
            None => Ok(None),
        };
        let sources = [
            text("value")?.map(TokenSource::Value),
            text("env")?.map(TokenSource::Env),
            text("file")?.map(|f| TokenSource::File(self.path(&f))),
            text("sha256")?.map(TokenSource::Sha256),
        ];
        let mut sources = sources.into_iter().flatten();
        let (Some(source), None) = (sources.next(), sources.next()) else {
            return Err(r.fail(
                node,
                "`auth-token` needs exactly one of value=, env=, file= or sha256=",
            ));
        };
        TokenRule::load(pattern, &source).map_err(|e| r.fail(node, e.to_string()))
    }

    fn socket_mode(&self, node: &KdlNode) -> Result<u32, ConfigError> {
        let mode = match self.r.string(node) {
            Ok(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8).ok(),
            Err(_) => None,
        };
        mode.filter(|m| *m <= 0o777).ok_or_else(|| {
            self.r.fail(
                node,
                "`socket-mode` must be an octal string such as \"0660\"",
            )
        })
    }

    fn positive(&self, node: &KdlNode) -> Result<Duration, ConfigError> {
        let duration = self.r.duration(node, Duration::from_secs(1))?;
        if duration.is_zero() {
            return Err(self
                .r
                .fail(node, format!("`{}` must be greater than zero", name(node))));
        }
        Ok(duration)
    }

    fn path(&self, text: &str) -> PathBuf {
        let path = PathBuf::from(text);
        if path.is_absolute() {
            path
        } else {
            self.base.join(path)
        }
    }

    fn address(&self, node: &KdlNode) -> Result<SocketAddr, ConfigError> {
        let text = self.r.string(node)?;
        text.parse().map_err(|_| {
            self.r.fail(
                node,
                format!("`{text}` is not an address such as \"127.0.0.1:8080\""),
            )
        })
    }

    /// The name of a `listener "x" { … }`-style node, checked for duplicates.
    fn named(
        &self,
        node: &KdlNode,
        kind: &str,
        seen: &mut HashSet<String>,
    ) -> Result<String, ConfigError> {
        if name(node) != kind {
            return Err(self.r.fail(
                node,
                format!("expected `{kind} \"name\" {{ … }}`, found `{}`", name(node)),
            ));
        }
        let label = self.r.string(node).map_err(|_| {
            self.r.fail(
                node,
                format!("`{kind}` needs a name, e.g. {kind} \"default\""),
            )
        })?;
        if !seen.insert(label.clone()) {
            return Err(self
                .r
                .fail(node, format!("{kind} \"{label}\" is defined twice")));
        }
        Ok(label)
    }

    fn listeners(&self, node: &KdlNode) -> Result<Vec<ListenerConfig>, ConfigError> {
        let mut seen = HashSet::new();
        children(node)
            .iter()
            .map(|listener| {
                let name = self.named(listener, "listener", &mut seen)?;
                let mut address = None;
                for child in children(listener) {
                    match super::load::name(child) {
                        "address" => address = Some(self.address(child)?),
                        _ => return Err(self.unknown(child, "listener", &["address"])),
                    }
                }
                let address = address.ok_or_else(|| {
                    self.r
                        .fail(listener, format!("listener \"{name}\" needs an `address`"))
                })?;
                Ok(ListenerConfig { name, address })
            })
            .collect()
    }

    fn upstreams(&self, node: &KdlNode) -> Result<Vec<UpstreamConfig>, ConfigError> {
        const KNOWN: [&str; 5] = [
            "target",
            "max-fails",
            "fail-timeout",
            "connect-timeout",
            "request-timeout",
        ];
        let mut seen = HashSet::new();
        children(node)
            .iter()
            .map(|upstream| {
                let name = self.named(upstream, "upstream", &mut seen)?;
                let mut config = UpstreamConfig {
                    name,
                    targets: Vec::new(),
                    max_fails: 1,
                    fail_timeout: Duration::from_secs(10),
                    connect_timeout: Duration::from_secs(5),
                    request_timeout: Duration::from_secs(60),
                };
                for child in children(upstream) {
                    let r = self.r;
                    match super::load::name(child) {
                        "target" => {
                            for target in r.strings(child)? {
                                if !looks_like_host_port(&target) {
                                    return Err(r.fail(
                                        child,
                                        format!("target `{target}` must be host:port"),
                                    ));
                                }
                                config.targets.push(target);
                            }
                        }
                        "max-fails" => config.max_fails = r.integer(child, 1, 1000)? as u32,
                        "fail-timeout" => config.fail_timeout = self.positive(child)?,
                        "connect-timeout" => config.connect_timeout = self.positive(child)?,
                        "request-timeout" => config.request_timeout = self.positive(child)?,
                        _ => return Err(self.unknown(child, "upstream", &KNOWN)),
                    }
                }
                if config.targets.is_empty() {
                    return Err(self.r.fail(
                        upstream,
                        format!("upstream \"{}\" needs at least one `target`", config.name),
                    ));
                }
                Ok(config)
            })
            .collect()
    }

    fn agents(&self, node: &KdlNode) -> Result<Vec<AgentConfig>, ConfigError> {
        const KNOWN: [&str; 6] = [
            "agent-ids",
            "events",
            "timeout-ms",
            "timeout",
            "failure-mode",
            "config",
        ];
        let mut seen = HashSet::new();
        children(node)
            .iter()
            .map(|agent| {
                let name = self.named(agent, "agent", &mut seen)?;
                let mut config = AgentConfig {
                    agent_ids: Vec::new(),
                    events: EventSet { request_headers: true, ..EventSet::default() },
                    timeout: Duration::from_millis(100),
                    failure_mode: FailureMode::Closed,
                    config: None,
                    name,
                };
                for child in children(agent) {
                    let r = self.r;
                    match super::load::name(child) {
                        "agent-ids" => config.agent_ids = r.strings(child)?.iter().map(|p| AgentPattern::new(p.as_str())).collect(),
                        "events" => config.events = self.events(child)?,
                        "timeout-ms" => config.timeout = Duration::from_millis(r.integer(child, 1, 3_600_000)? as u64),
                        "timeout" => config.timeout = self.positive(child)?,
                        "failure-mode" => {
                            config.failure_mode = match r.string(child)?.as_str() {
                                "closed" => FailureMode::Closed,
                                "open" => FailureMode::Open,
                                other => return Err(r.fail(child, format!("failure-mode must be \"closed\" or \"open\", found \"{other}\""))),
                            }
                        }
                        "config" => config.config = Some(r.json_object(child)?),
                        _ => return Err(self.unknown(child, "agent", &KNOWN)),
                    }
                }
                if config.agent_ids.is_empty() {
                    config.agent_ids = vec![AgentPattern::new(config.name.as_str())];
                }
                Ok(config)
            })
            .collect()
    }

    fn events(&self, node: &KdlNode) -> Result<EventSet, ConfigError> {
        let mut events = EventSet::default();
        for event in self.r.strings(node)? {
            match event.as_str() {
                "request_headers" => events.request_headers = true,
                "request_body" => events.request_body = true,
                "response_headers" => events.response_headers = true,
                "response_body" => events.response_body = true,
                other => return Err(self.r.fail(node, format!("unknown event \"{other}\"; expected request_headers, request_body, response_headers or response_body"))),
            }
        }
        Ok(events)
    }

    fn routes(&self, node: &KdlNode) -> Result<Vec<RouteConfig>, ConfigError> {
        const KNOWN: [&str; 5] = [
            "matches",
            "upstream",
            "agents",
            "max-body-inspect",
            "body-overflow",
        ];
        let mut seen = HashSet::new();
        children(node)
            .iter()
            .map(|route| {
                let name = self.named(route, "route", &mut seen)?;
                let mut upstream = None;
                let mut config = RouteConfig {
                    name,
                    matches: RouteMatch::default(),
                    upstream: String::new(),
                    agents: Vec::new(),
                    max_body_inspect: 1024 * 1024,
                    body_overflow: BodyOverflow::Reject,
                };
                for child in children(route) {
                    let r = self.r;
                    match super::load::name(child) {
                        "matches" => config.matches = self.matches(child)?,
                        "upstream" => upstream = Some(r.string(child)?),
                        "agents" => config.agents = r.strings(child)?,
                        "max-body-inspect" => config.max_body_inspect = r.size(child)?,
                        "body-overflow" => {
                            config.body_overflow = match r.string(child)?.as_str() {
                                "reject" => BodyOverflow::Reject,
                                "forward" => BodyOverflow::Forward,
                                other => return Err(r.fail(child, format!("body-overflow must be \"reject\" or \"forward\", found \"{other}\""))),
                            }
                        }
                        _ => return Err(self.unknown(child, "route", &KNOWN)),
                    }
                }
                config.upstream = upstream.ok_or_else(|| self.r.fail(route, format!("route \"{}\" needs an `upstream`", config.name)))?;
                Ok(config)
            })
            .collect()
    }

    fn matches(&self, node: &KdlNode) -> Result<RouteMatch, ConfigError> {
        let mut matches = RouteMatch::default();
        for child in children(node) {
            match name(child) {
                "path-prefix" => {
                    let prefix = self.r.string(child)?;
                    if !prefix.starts_with('/') {
                        return Err(self.r.fail(child, "path-prefix must start with `/`"));
                    }
                    matches.path_prefix = Some(prefix);
                }
                "host" => matches.host = Some(self.r.string(child)?.to_ascii_lowercase()),
                _ => return Err(self.unknown(child, "matches", &["path-prefix", "host"])),
            }
        }
        Ok(matches)
    }

    fn admin(&self, node: &KdlNode) -> Result<AdminConfig, ConfigError> {
        let mut admin = AdminConfig {
            address: AdminConfig::DEFAULT_ADDRESS,
            token: None,
        };
        for child in children(node) {
            match name(child) {
                "address" => admin.address = self.address(child)?,
                "token-file" => {
                    let path = self.path(&self.r.string(child)?);
                    let token = AdminToken::from_file(&path)
                        .map_err(|e| self.r.fail(child, e.to_string()))?;
                    admin.token = Some(token);
                }
                _ => return Err(self.unknown(child, "admin", &["address", "token-file"])),
            }
        }
        Ok(admin)
    }

    /// Routes must name configured upstreams and agents; there must be a listener.
    fn check_references(&self, document: &KdlDocument, config: &Config) -> Result<(), ConfigError> {
        let route_nodes: Vec<&KdlNode> = document
            .nodes()
            .iter()
            .filter(|n| name(n) == "routes")
            .flat_map(|n| children(n).iter())
            .collect();
        for (route, node) in config.routes.iter().zip(route_nodes) {
            if config.upstream(&route.upstream).is_none() {
                return Err(self.r.fail(
                    node,
                    format!(
                        "route \"{}\" names upstream \"{}\", which is not defined in `upstreams`",
                        route.name, route.upstream
                    ),
                ));
            }
            for agent in &route.agents {
                if config.agent(agent).is_none() {
                    return Err(self.r.fail(node, format!("route \"{}\" names agent \"{agent}\", which is not defined in `agents`", route.name)));
                }
            }
        }
        if config.listeners.is_empty() {
            return Err(self
                .r
                .source
                .error("no `listeners` block: the proxy needs at least one listener for clients"));
        }
        Ok(())
    }
}

fn looks_like_host_port(target: &str) -> bool {
    target
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}
