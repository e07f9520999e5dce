//! Checks across blocks, run once the whole file is read: routes name upstreams and agents
//! that exist, and there is at least one listener. Checks within one block are that block's.

use kdl::KdlDocument;

use super::routes::route_nodes;
use super::Loader;
use crate::config::{Config, ConfigError};

impl Loader<'_> {
    /// Routes must name configured upstreams and agents; there must be a listener.
    pub(super) fn check_references(
        &self,
        document: &KdlDocument,
        config: &Config,
    ) -> Result<(), ConfigError> {
        for (route, node) in config.routes.iter().zip(route_nodes(document)) {
            if config.upstream(&route.upstream).is_none() {
                return Err(self.fail(
                    node,
                    format!(
                        "route \"{}\" names upstream \"{}\", which is not defined in `upstreams`",
                        route.name, route.upstream
                    ),
                ));
            }
            if let Some(agent) = route.agents.iter().find(|a| config.agent(a).is_none()) {
                return Err(self.fail(
                    node,
                    format!(
                        "route \"{}\" names agent \"{agent}\", which is not defined in `agents`",
                        route.name
                    ),
                ));
            }
        }
        if config.listeners.is_empty() {
            return Err(self
                .reader
                .source
                .error("no `listeners` block: the proxy needs at least one listener for clients"));
        }
        Ok(())
    }
}
