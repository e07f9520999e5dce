//! The `admin` block: where the admin listener binds and the token it asks for (defaults:
//! [`AdminConfig::default`], loopback only, no token).

use kdl::KdlNode;

use super::nodes::Directive;
use super::Loader;
use crate::admin::AdminToken;
use crate::config::{AdminConfig, ConfigError};

/// What the `admin` block accepts.
const ADMIN: &[Directive<AdminConfig>] = &[
    Directive {
        name: "address",
        apply: |loader, node, admin| {
            admin.address = loader.address(node)?;
            Ok(())
        },
    },
    Directive {
        name: "token-file",
        apply: |loader, node, admin| {
            let token = AdminToken::from_file(&loader.path(node)?)
                .map_err(|e| loader.fail(node, e.to_string()))?;
            admin.token = Some(token);
            Ok(())
        },
    },
];

impl Loader<'_> {
    pub(super) fn admin(&self, node: &KdlNode) -> Result<AdminConfig, ConfigError> {
        let mut admin = AdminConfig::default();
        self.block(node, "admin", ADMIN, &mut admin)?;
        Ok(admin)
    }
}
