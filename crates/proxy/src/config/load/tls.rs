//! The reverse listener's `tls { cert-file "…" key-file "…" client-ca-file "…" }` block. The
//! files are loaded and checked now, so that `sentinel check` and a reload refuse unusable
//! certificates; reading PEM is [`crate::reverse::ReverseTls`]'s business.

use std::path::PathBuf;

use kdl::KdlNode;

use super::nodes::{children, name};
use super::Loader;
use crate::config::ConfigError;
use crate::reverse::{ReverseTls, TlsError, TlsFiles};

/// The files a `tls` block names, in the order the "unknown directive" error lists them.
const FILES: [&str; 3] = ["cert-file", "key-file", "client-ca-file"];

/// Each file a `tls` block names, with the node naming it (to point errors at it).
type Named<'n> = Option<(PathBuf, &'n KdlNode)>;

impl Loader<'_> {
    pub(super) fn tls(&self, node: &KdlNode) -> Result<ReverseTls, ConfigError> {
        if !node.entries().is_empty() {
            return Err(self.fail(
                node,
                "`tls` takes a block: tls { cert-file \"…\" key-file \"…\" }",
            ));
        }
        let mut named: [Named<'_>; 3] = [None, None, None];
        for child in children(node) {
            // The value is read before the name is looked up, as it always was: a bad value
            // is reported even under a misspelt name.
            let path = self.path(child)?;
            let Some(slot) = FILES.iter().position(|file| *file == name(child)) else {
                return Err(self.unknown_among(child, "tls", &FILES));
            };
            named[slot] = Some((path, child));
        }
        let [cert_file, key_file, client_ca_file] = named;
        let (Some((cert_file, cert_node)), Some((key_file, key_node))) = (cert_file, key_file)
        else {
            return Err(self.fail(node, "`tls` needs both `cert-file` and `key-file`"));
        };
        let client_ca_node = client_ca_file.as_ref().map_or(node, |(_, n)| n);
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
                    "client-ca-file" => client_ca_node,
                    _ => cert_node,
                },
                TlsError::ClientCa { .. } => client_ca_node,
                TlsError::Certificate { .. } => node,
            };
            self.fail(at, e.to_string())
        })
    }
}
