//! The `upstreams` block: `upstream "backend" { target "127.0.0.1:9000" … }` groups with
//! their health and timeout settings (defaults: [`UpstreamConfig::default`]).

use kdl::KdlNode;

use super::nodes::Directive;
use super::Loader;
use crate::config::{ConfigError, UpstreamConfig};

/// The range `max-fails` accepts.
const MAX_FAILS: (i128, i128) = (1, 1000);

/// What an `upstream` block accepts.
const UPSTREAM: &[Directive<UpstreamConfig>] = &[
    Directive {
        name: "target",
        apply: |loader, node, upstream| loader.targets(node, &mut upstream.targets),
    },
    Directive {
        name: "max-fails",
        apply: |loader, node, upstream| {
            upstream.max_fails = loader.reader.integer(node, MAX_FAILS.0, MAX_FAILS.1)? as u32;
            Ok(())
        },
    },
    Directive {
        name: "fail-timeout",
        apply: |loader, node, upstream| {
            upstream.fail_timeout = loader.positive(node)?;
            Ok(())
        },
    },
    Directive {
        name: "connect-timeout",
        apply: |loader, node, upstream| {
            upstream.connect_timeout = loader.positive(node)?;
            Ok(())
        },
    },
    Directive {
        name: "request-timeout",
        apply: |loader, node, upstream| {
            upstream.request_timeout = loader.positive(node)?;
            Ok(())
        },
    },
];

impl Loader<'_> {
    pub(super) fn upstreams(&self, node: &KdlNode) -> Result<Vec<UpstreamConfig>, ConfigError> {
        self.named_blocks(node, "upstream", |block, name| {
            let mut upstream = UpstreamConfig {
                name,
                ..UpstreamConfig::default()
            };
            self.block(block, "upstream", UPSTREAM, &mut upstream)?;
            if upstream.targets.is_empty() {
                return Err(self.fail(
                    block,
                    format!("upstream \"{}\" needs at least one `target`", upstream.name),
                ));
            }
            Ok(upstream)
        })
    }

    /// `target "host:port" …`: adds each to the group's targets, in order.
    fn targets(&self, node: &KdlNode, targets: &mut Vec<String>) -> Result<(), ConfigError> {
        for target in self.reader.strings(node)? {
            if !looks_like_host_port(&target) {
                return Err(self.fail(node, format!("target `{target}` must be host:port")));
            }
            targets.push(target);
        }
        Ok(())
    }
}

fn looks_like_host_port(target: &str) -> bool {
    target
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}
