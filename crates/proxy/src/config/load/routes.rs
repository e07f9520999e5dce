//! The `routes` block: `route "default" { matches { … } upstream "…" agents "…" }`, matched
//! in order (defaults: [`RouteConfig::default`]). Whether the upstream and agents a route
//! names exist is checked once the whole file is read ([`super::references`]).

use kdl::KdlNode;

use super::nodes::{children, name, Directive};
use super::Loader;
use crate::config::{BodyOverflow, ConfigError, RouteConfig, RouteMatch};

/// A route as its block is read: the upstream has no default, so it stays apart until the
/// block is complete.
struct RouteBlock {
    route: RouteConfig,
    upstream: Option<String>,
}

/// What a `route` block accepts.
const ROUTE: &[Directive<RouteBlock>] = &[
    Directive {
        name: "matches",
        apply: |loader, node, block| {
            block.route.matches = loader.matches(node)?;
            Ok(())
        },
    },
    Directive {
        name: "upstream",
        apply: |loader, node, block| {
            block.upstream = Some(loader.reader.string(node)?);
            Ok(())
        },
    },
    Directive {
        name: "agents",
        apply: |loader, node, block| {
            block.route.agents = loader.reader.strings(node)?;
            Ok(())
        },
    },
    Directive {
        name: "max-body-inspect",
        apply: |loader, node, block| {
            block.route.max_body_inspect = loader.reader.size(node)?;
            Ok(())
        },
    },
    Directive {
        name: "body-overflow",
        apply: |loader, node, block| {
            let choices = [
                ("reject", BodyOverflow::Reject),
                ("forward", BodyOverflow::Forward),
            ];
            block.route.body_overflow = loader.either(node, choices)?;
            Ok(())
        },
    },
];

/// What a `matches` block accepts.
const MATCHES: &[Directive<RouteMatch>] = &[
    Directive {
        name: "path-prefix",
        apply: |loader, node, matches| {
            let prefix = loader.reader.string(node)?;
            if !prefix.starts_with('/') {
                return Err(loader.fail(node, "path-prefix must start with `/`"));
            }
            matches.path_prefix = Some(prefix);
            Ok(())
        },
    },
    Directive {
        name: "host",
        apply: |loader, node, matches| {
            matches.host = Some(loader.reader.string(node)?.to_ascii_lowercase());
            Ok(())
        },
    },
];

impl Loader<'_> {
    pub(super) fn routes(&self, node: &KdlNode) -> Result<Vec<RouteConfig>, ConfigError> {
        self.named_blocks(node, "route", |node, name| {
            let mut block = RouteBlock {
                route: RouteConfig {
                    name,
                    ..RouteConfig::default()
                },
                upstream: None,
            };
            self.block(node, "route", ROUTE, &mut block)?;
            let RouteBlock {
                mut route,
                upstream,
            } = block;
            route.upstream = upstream.ok_or_else(|| {
                self.fail(
                    node,
                    format!("route \"{}\" needs an `upstream`", route.name),
                )
            })?;
            Ok(route)
        })
    }

    fn matches(&self, node: &KdlNode) -> Result<RouteMatch, ConfigError> {
        let mut matches = RouteMatch::default();
        self.block(node, "matches", MATCHES, &mut matches)?;
        Ok(matches)
    }
}

/// The `route` nodes of a document, in the order [`Loader::routes`] read them.
pub(super) fn route_nodes(document: &kdl::KdlDocument) -> Vec<&KdlNode> {
    document
        .nodes()
        .iter()
        .filter(|n| name(n) == "routes")
        .flat_map(|n| children(n).iter())
        .collect()
}
