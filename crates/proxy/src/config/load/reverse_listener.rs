//! The `reverse-listener` block: where agents dial in and how they are admitted (defaults:
//! [`ReverseListenerConfig::default`] and [`PoolSettings::default`]), with its
//! `failed-registrations` and `auth-token` settings. The `tls` block is [`super::tls`]'s; the
//! rules between settings are the model's ([`ReverseListenerConfig::check`]).

use kdl::{KdlNode, KdlValue};
use sentinel_agent_protocol::{AgentPattern, DEFAULT_MAX_FRAME_LENGTH};

use super::nodes::{children, name, Directive, MILLISECONDS, SECONDS};
use super::Loader;
use crate::config::ConfigError;
use crate::pool::PoolSettings;
use crate::reverse::{
    InvalidReverseListener, ReverseListenerConfig, ThrottleSettings, TokenRule, TokenSource,
};

/// What the block builds: the listener, and the behaviour of the connections it admits.
#[derive(Default)]
struct ReverseBlock {
    listener: ReverseListenerConfig,
    pool: PoolSettings,
}

/// The frame sizes `max-frame-size` accepts: 1 KiB to 64 MiB.
const FRAME_SIZES: std::ops::RangeInclusive<usize> = 1024..=DEFAULT_MAX_FRAME_LENGTH * 4;

const ONE_PATTERN: &str = concat!(
    "`auth-token` takes one agent-id pattern, ",
    "e.g. auth-token \"waf-*\" env=\"SENTINEL_WAF_TOKEN\""
);

/// What the `reverse-listener` block accepts.
const REVERSE_LISTENER: &[Directive<ReverseBlock>] = &[
    Directive {
        name: "path",
        apply: |loader, node, block| {
            block.listener.path = Some(loader.path(node)?);
            Ok(())
        },
    },
    Directive {
        name: "tcp-address",
        apply: |loader, node, block| {
            block.listener.tcp_address = Some(loader.address(node)?);
            Ok(())
        },
    },
    Directive {
        name: "max-connections-per-agent",
        apply: |loader, node, block| {
            block.listener.max_connections_per_agent = loader.reader.usize(node, 1)?;
            Ok(())
        },
    },
    Directive {
        name: "max-agent-connections",
        apply: |loader, node, block| {
            block.listener.max_agent_connections = loader.reader.usize(node, 1)?;
            Ok(())
        },
    },
    Directive {
        name: "failed-registrations",
        apply: |loader, node, block| {
            loader.block(
                node,
                "failed-registrations",
                FAILED_REGISTRATIONS,
                &mut block.listener.failed_registrations,
            )
        },
    },
    Directive {
        name: "handshake-timeout",
        apply: |loader, node, block| {
            block.listener.handshake_timeout = loader.reader.duration(node, SECONDS)?;
            Ok(())
        },
    },
    Directive {
        name: "require-auth",
        apply: |loader, node, block| {
            block.listener.require_auth = loader.reader.boolean(node)?;
            Ok(())
        },
    },
    Directive {
        name: "allowed-agents",
        apply: |loader, node, block| {
            let patterns = loader.reader.strings(node)?;
            let allowed = block.listener.allowed_agents.get_or_insert_with(Vec::new);
            allowed.extend(patterns.iter().map(|p| AgentPattern::new(p.as_str())));
            Ok(())
        },
    },
    Directive {
        name: "auth-token",
        apply: |loader, node, block| {
            block.listener.tokens.push(loader.token(node)?);
            Ok(())
        },
    },
    Directive {
        name: "max-pending-handshakes",
        apply: |loader, node, block| {
            block.listener.max_pending_handshakes = loader.reader.usize(node, 1)?;
            Ok(())
        },
    },
    Directive {
        name: "heartbeat-interval",
        apply: |loader, node, block| {
            block.pool.heartbeat_interval = loader.positive(node)?;
            Ok(())
        },
    },
    Directive {
        name: "write-timeout",
        apply: |loader, node, block| {
            block.pool.write_timeout = loader.positive(node)?;
            Ok(())
        },
    },
    Directive {
        name: "max-frame-size",
        apply: |loader, node, block| {
            block.listener.max_frame_length = loader.reader.size(node)?;
            if !FRAME_SIZES.contains(&block.listener.max_frame_length) {
                let message = "`max-frame-size` must be between 1KiB and 64MiB";
                return Err(loader.fail(node, message));
            }
            Ok(())
        },
    },
    Directive {
        name: "socket-mode",
        apply: |loader, node, block| {
            block.listener.socket_mode = loader.socket_mode(node)?;
            Ok(())
        },
    },
    Directive {
        name: "max-concurrent-requests",
        apply: |loader, node, block| {
            block.pool.default_max_in_flight = loader.reader.usize(node, 1)?;
            Ok(())
        },
    },
    Directive {
        name: "max-concurrent-requests-limit",
        apply: |loader, node, block| {
            block.pool.max_in_flight_limit = loader.reader.usize(node, 1)?;
            Ok(())
        },
    },
    Directive {
        name: "tls",
        apply: |loader, node, block| {
            block.listener.tls = Some(loader.tls(node)?);
            Ok(())
        },
    },
    Directive {
        name: "allowed-uids",
        apply: |loader, node, block| {
            block.listener.peer_filter.allowed_uids = Some(loader.ids(node)?);
            Ok(())
        },
    },
    Directive {
        name: "allowed-gids",
        apply: |loader, node, block| {
            block.listener.peer_filter.allowed_gids = Some(loader.ids(node)?);
            Ok(())
        },
    },
];

/// What `failed-registrations { limit 10 window "1m" … }` accepts; settings left out keep
/// their defaults.
const FAILED_REGISTRATIONS: &[Directive<ThrottleSettings>] = &[
    Directive {
        name: "limit",
        apply: |loader, node, settings| {
            settings.limit = loader.reader.usize(node, 0)? as u32;
            Ok(())
        },
    },
    Directive {
        name: "window",
        apply: |loader, node, settings| {
            settings.window = loader.positive(node)?;
            Ok(())
        },
    },
    Directive {
        name: "block",
        apply: |loader, node, settings| {
            settings.block = loader.positive(node)?;
            Ok(())
        },
    },
    Directive {
        name: "delay",
        apply: |loader, node, settings| {
            settings.delay = loader.reader.duration(node, MILLISECONDS)?;
            Ok(())
        },
    },
    Directive {
        name: "max-delay",
        apply: |loader, node, settings| {
            settings.max_delay = loader.reader.duration(node, MILLISECONDS)?;
            Ok(())
        },
    },
];

impl Loader<'_> {
    pub(super) fn reverse_listener(
        &self,
        node: &KdlNode,
    ) -> Result<(ReverseListenerConfig, PoolSettings), ConfigError> {
        let mut block = ReverseBlock::default();
        self.block(node, "reverse-listener", REVERSE_LISTENER, &mut block)?;
        block.listener.check().map_err(|invalid| {
            let at = match invalid {
                // The last `tls` block is the one in force.
                InvalidReverseListener::TlsWithoutTcp => children(node)
                    .iter()
                    .rfind(|child| name(child) == "tls")
                    .unwrap_or(node),
                _ => node,
            };
            self.fail(at, invalid.to_string())
        })?;
        Ok((block.listener, block.pool))
    }

    /// `allowed-uids 0 1000 …`: one or more numeric ids.
    fn ids(&self, node: &KdlNode) -> Result<Vec<u32>, ConfigError> {
        let values = self.reader.args(node);
        if values.is_empty() || values.len() != node.entries().len() {
            let example = format!("e.g. {} 0 1000", name(node));
            let message = format!("`{}` takes one or more numeric ids, {example}", name(node));
            return Err(self.fail(node, message));
        }
        values
            .into_iter()
            .map(|value| match value {
                KdlValue::Integer(n) if (0..=u32::MAX as i128).contains(n) => Ok(*n as u32),
                other => Err(self.fail(
                    node,
                    format!(
                        "`{}` takes numeric ids (0 to 4294967295), found {other}",
                        name(node)
                    ),
                )),
            })
            .collect()
    }

    /// `auth-token "waf-*" env="…"`: one pattern and exactly one source of the secret,
    /// loaded now so that a missing secret is a configuration error.
    fn token(&self, node: &KdlNode) -> Result<TokenRule, ConfigError> {
        let pattern = self.reader.strings(node)?;
        let [pattern] = pattern.as_slice() else {
            return Err(self.fail(node, ONE_PATTERN));
        };
        let text = |key: &str| match self.reader.property(node, key) {
            Some(KdlValue::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.fail(node, format!("`{key}=` must be a string"))),
            None => Ok(None),
        };
        let sources = [
            text("value")?.map(TokenSource::Value),
            text("env")?.map(TokenSource::Env),
            text("file")?.map(|f| TokenSource::File(self.resolve(&f))),
            text("sha256")?.map(TokenSource::Sha256),
        ];
        let mut sources = sources.into_iter().flatten();
        let (Some(source), None) = (sources.next(), sources.next()) else {
            return Err(self.fail(
                node,
                "`auth-token` needs exactly one of value=, env=, file= or sha256=",
            ));
        };
        TokenRule::load(pattern, &source).map_err(|e| self.fail(node, e.to_string()))
    }

    fn socket_mode(&self, node: &KdlNode) -> Result<u32, ConfigError> {
        let mode = match self.reader.string(node) {
            Ok(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8).ok(),
            Err(_) => None,
        };
        mode.filter(|m| *m <= 0o777).ok_or_else(|| {
            self.fail(
                node,
                "`socket-mode` must be an octal string such as \"0660\"",
            )
        })
    }
}
