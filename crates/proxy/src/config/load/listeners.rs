//! The `listeners` block: `listener "http" { address "127.0.0.1:8080" }`, one per HTTP
//! listener for clients. Binding them is [`crate::app`]'s business.

use std::net::SocketAddr;

use kdl::KdlNode;

use super::nodes::Directive;
use super::Loader;
use crate::config::{ConfigError, ListenerConfig};

/// What a `listener` block accepts; it builds the address, which has no default.
const LISTENER: &[Directive<Option<SocketAddr>>] = &[Directive {
    name: "address",
    apply: |loader, node, address| {
        *address = Some(loader.address(node)?);
        Ok(())
    },
}];

impl Loader<'_> {
    pub(super) fn listeners(&self, node: &KdlNode) -> Result<Vec<ListenerConfig>, ConfigError> {
        self.named_blocks(node, "listener", |listener, name| {
            let mut address = None;
            self.block(listener, "listener", LISTENER, &mut address)?;
            let address = address.ok_or_else(|| {
                self.fail(listener, format!("listener \"{name}\" needs an `address`"))
            })?;
            Ok(ListenerConfig { name, address })
        })
    }
}
