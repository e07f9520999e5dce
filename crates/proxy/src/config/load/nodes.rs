//! What every block's loader shares: walking a block's children against its table of
//! [`Directive`]s (dispatch and the "unknown directive" error come from the same table), named
//! blocks such as `listener "http" { … }`, and the values several blocks read (positive
//! durations, addresses, file paths, one-of-two keywords). Typed scalar values themselves are
//! [`super::values`]'s.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kdl::KdlNode;

use super::Loader;
use crate::config::ConfigError;

/// The unit of a duration written as a bare number, for settings in seconds.
pub(super) const SECONDS: Duration = Duration::from_secs(1);

/// The unit of a duration written as a bare number, for settings in milliseconds.
pub(super) const MILLISECONDS: Duration = Duration::from_millis(1);

/// One directive a block accepts: its name as written in the file, and how its node sets the
/// value the block builds (`T`). A block's table of these is the only list of its directives.
pub(super) struct Directive<T> {
    pub name: &'static str,
    pub apply: fn(&Loader<'_>, &KdlNode, &mut T) -> Result<(), ConfigError>,
}

/// The child nodes of a block (none when it has no `{ … }`).
pub(super) fn children(node: &KdlNode) -> &[KdlNode] {
    node.children().map(|c| c.nodes()).unwrap_or_default()
}

/// A node's name as written.
pub(super) fn name(node: &KdlNode) -> &str {
    node.name().value()
}

impl Loader<'_> {
    /// Applies each node to `target` with the directive of the same name; a node no directive
    /// names is an error listing the directives `section` accepts.
    pub(super) fn directives<T>(
        &self,
        nodes: &[KdlNode],
        section: &str,
        table: &[Directive<T>],
        target: &mut T,
    ) -> Result<(), ConfigError> {
        for node in nodes {
            let Some(directive) = table.iter().find(|d| d.name == name(node)) else {
                return Err(self.unknown(node, section, table));
            };
            (directive.apply)(self, node, target)?;
        }
        Ok(())
    }

    /// [`Self::directives`] over the children of `node`.
    pub(super) fn block<T>(
        &self,
        node: &KdlNode,
        section: &str,
        table: &[Directive<T>],
        target: &mut T,
    ) -> Result<(), ConfigError> {
        self.directives(children(node), section, table, target)
    }

    /// The error for a directive `section` does not accept.
    pub(super) fn unknown<T>(
        &self,
        node: &KdlNode,
        section: &str,
        table: &[Directive<T>],
    ) -> ConfigError {
        let names: Vec<&str> = table.iter().map(|d| d.name).collect();
        self.unknown_among(node, section, &names)
    }

    /// The error for a directive `section` does not accept, given its known names.
    pub(super) fn unknown_among(
        &self,
        node: &KdlNode,
        section: &str,
        expected: &[&str],
    ) -> ConfigError {
        self.fail(
            node,
            format!(
                "unknown directive `{}` in {section}; expected one of: {}",
                name(node),
                expected.join(", ")
            ),
        )
    }

    /// An error at `node`.
    pub(super) fn fail(&self, node: &KdlNode, message: impl Into<String>) -> ConfigError {
        self.reader.fail(node, message)
    }

    /// Builds one item per child of `node`, each a `kind "name" { … }` block with a name no
    /// other child of the same block has.
    pub(super) fn named_blocks<T>(
        &self,
        node: &KdlNode,
        kind: &str,
        build: impl Fn(&KdlNode, String) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let mut seen = HashSet::new();
        children(node)
            .iter()
            .map(|child| build(child, self.named(child, kind, &mut seen)?))
            .collect()
    }

    /// The name of a `listener "x" { … }`-style node, checked for duplicates.
    fn named(
        &self,
        node: &KdlNode,
        kind: &str,
        seen: &mut HashSet<String>,
    ) -> Result<String, ConfigError> {
        if name(node) != kind {
            return Err(self.fail(
                node,
                format!("expected `{kind} \"name\" {{ … }}`, found `{}`", name(node)),
            ));
        }
        let label = self.reader.string(node).map_err(|_| {
            self.fail(
                node,
                format!("`{kind}` needs a name, e.g. {kind} \"default\""),
            )
        })?;
        if !seen.insert(label.clone()) {
            return Err(self.fail(node, format!("{kind} \"{label}\" is defined twice")));
        }
        Ok(label)
    }

    /// A duration in seconds (or with a unit) that must not be zero.
    pub(super) fn positive(&self, node: &KdlNode) -> Result<Duration, ConfigError> {
        let duration = self.reader.duration(node, SECONDS)?;
        if duration.is_zero() {
            return Err(self.fail(node, format!("`{}` must be greater than zero", name(node))));
        }
        Ok(duration)
    }

    /// A node's file path, relative ones taken from the configuration file's directory.
    pub(super) fn path(&self, node: &KdlNode) -> Result<PathBuf, ConfigError> {
        Ok(self.resolve(&self.reader.string(node)?))
    }

    /// A file path as written, relative ones taken from the configuration file's directory.
    pub(super) fn resolve(&self, text: &str) -> PathBuf {
        let path = PathBuf::from(text);
        if path.is_absolute() {
            path
        } else {
            self.base.join(path)
        }
    }

    /// A socket address such as `"127.0.0.1:8080"`.
    pub(super) fn address(&self, node: &KdlNode) -> Result<SocketAddr, ConfigError> {
        let text = self.reader.string(node)?;
        text.parse().map_err(|_| {
            self.fail(
                node,
                format!("`{text}` is not an address such as \"127.0.0.1:8080\""),
            )
        })
    }

    /// One of two keywords, each standing for a value.
    pub(super) fn either<T: Copy>(
        &self,
        node: &KdlNode,
        choices: [(&str, T); 2],
    ) -> Result<T, ConfigError> {
        let text = self.reader.string(node)?;
        match choices.iter().find(|(keyword, _)| *keyword == text) {
            Some((_, value)) => Ok(*value),
            None => Err(self.fail(
                node,
                format!(
                    "{} must be \"{}\" or \"{}\", found \"{text}\"",
                    name(node),
                    choices[0].0,
                    choices[1].0
                ),
            )),
        }
    }
}
