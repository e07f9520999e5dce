//! The top level of the file: which blocks and settings it may hold, each handed to its
//! section's loader. The settings that are not blocks (`shutdown-grace`, `wait-for-agents`)
//! are read here.

use super::nodes::{Directive, SECONDS};
use crate::config::Config;

/// Everything the top level accepts, in the order the "unknown directive" error lists it.
pub(super) const DIRECTIVES: &[Directive<Config>] = &[
    Directive {
        name: "reverse-listener",
        apply: |loader, node, config| {
            let (listener, pool) = loader.reverse_listener(node)?;
            config.reverse_listener = Some(listener);
            config.pool = pool;
            Ok(())
        },
    },
    Directive {
        name: "listeners",
        apply: |loader, node, config| {
            config.listeners = loader.listeners(node)?;
            Ok(())
        },
    },
    Directive {
        name: "upstreams",
        apply: |loader, node, config| {
            config.upstreams = loader.upstreams(node)?;
            Ok(())
        },
    },
    Directive {
        name: "agents",
        apply: |loader, node, config| {
            config.agents = loader.agents(node)?;
            Ok(())
        },
    },
    Directive {
        name: "routes",
        apply: |loader, node, config| {
            config.routes = loader.routes(node)?;
            Ok(())
        },
    },
    Directive {
        name: "admin",
        apply: |loader, node, config| {
            config.admin = Some(loader.admin(node)?);
            Ok(())
        },
    },
    Directive {
        name: "shutdown-grace",
        apply: |loader, node, config| {
            config.shutdown_grace = loader.reader.duration(node, SECONDS)?;
            Ok(())
        },
    },
    Directive {
        name: "wait-for-agents",
        apply: |loader, node, config| {
            config.wait_for_agents = loader.reader.duration(node, SECONDS)?;
            Ok(())
        },
    },
];
