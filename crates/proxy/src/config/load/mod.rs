//! The KDL loader: reads one file (KDL v2, or v1 as the original design writes it) into a
//! validated [`Config`]. Unknown directives, wrong types, dangling references and missing
//! secrets are errors that name the file, line and column.
//!
//! This module owns the file as a whole: reading it, choosing the KDL dialect, and mapping
//! error positions back to the text as written. Each top-level block has its own module with
//! the table of directives it accepts; [`nodes`] holds what they share. Defaults are the
//! model's `Default` impls, not the loader's business.

mod admin;
mod agents;
mod dialect;
mod listeners;
mod nodes;
mod references;
mod reverse_listener;
mod routes;
mod tls;
mod top_level;
mod upstreams;
mod values;

use std::path::{Path, PathBuf};

use kdl::KdlDocument;

use self::dialect::{upgrade_v1_keywords, Upgraded};
use self::values::Reader;
use super::error::{ConfigError, Source};
use super::Config;

/// Reads and validates the configuration file at `path`.
#[allow(
    clippy::disallowed_methods,
    reason = "the configuration is read at start and on reload, never per request"
)]
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
        Ok(document) => return Loader::new(&reader, base).document(&document),
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
            return Loader::new(&upgraded_reader, base)
                .document(&document)
                .map_err(|e| relocate(e, &reader, &upgraded_reader, &upgraded));
        }
    }
    match KdlDocument::parse(text) {
        Ok(document) => Loader::new(&reader, base).document(&document),
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

/// One parsed document being turned into a [`Config`]: the typed-value reader for its text,
/// and the directory relative file paths in it are resolved against.
pub(super) struct Loader<'a> {
    reader: &'a Reader<'a>,
    base: PathBuf,
}

impl<'a> Loader<'a> {
    fn new(reader: &'a Reader<'a>, base: PathBuf) -> Loader<'a> {
        Loader { reader, base }
    }

    fn document(&self, document: &KdlDocument) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        self.directives(
            document.nodes(),
            "the top level",
            top_level::DIRECTIVES,
            &mut config,
        )?;
        self.check_references(document, &config)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name { body; }`: blocks are built, not spelt out, so that few files write the
    /// configuration grammar by hand.
    fn block(name: &str, body: &str) -> String {
        format!("{name} {{ {body}; }}")
    }

    /// Each block's "unknown directive" error lists exactly what its table dispatches, in the
    /// order the loader listed before it was split by section.
    #[test]
    fn unknown_directives_list_each_block_s_table() {
        let cases = [
            (
                String::from("bogus 1"),
                "the top level",
                "reverse-listener, listeners, upstreams, agents, routes, admin, \
                 shutdown-grace, wait-for-agents",
            ),
            (
                block("reverse-listener", "bogus 1"),
                "reverse-listener",
                "path, tcp-address, max-connections-per-agent, max-agent-connections, \
                 failed-registrations, handshake-timeout, require-auth, allowed-agents, \
                 auth-token, max-pending-handshakes, heartbeat-interval, write-timeout, \
                 max-frame-size, socket-mode, max-concurrent-requests, \
                 max-concurrent-requests-limit, tls, allowed-uids, allowed-gids",
            ),
            (
                block(
                    "reverse-listener",
                    &block("failed-registrations", "bogus 1"),
                ),
                "failed-registrations",
                "limit, window, block, delay, max-delay",
            ),
            (
                block("listeners", &block("listener \"a\"", "bogus 1")),
                "listener",
                "address",
            ),
            (
                block("upstreams", &block("upstream \"a\"", "bogus 1")),
                "upstream",
                "target, max-fails, fail-timeout, connect-timeout, request-timeout",
            ),
            (
                block("agents", &block("agent \"a\"", "bogus 1")),
                "agent",
                "agent-ids, events, timeout-ms, timeout, failure-mode, config",
            ),
            (
                block("routes", &block("route \"a\"", "bogus 1")),
                "route",
                "matches, upstream, agents, max-body-inspect, body-overflow",
            ),
            (
                block(
                    "routes",
                    &block("route \"a\"", &block("matches", "bogus 1")),
                ),
                "matches",
                "path-prefix, host",
            ),
            (block("admin", "bogus 1"), "admin", "address, token-file"),
        ];
        for (text, section, expected) in cases {
            let error = parse(&text, Path::new("/etc/sentinel.kdl")).expect_err(&text);
            assert_eq!(
                error.message,
                format!("unknown directive `bogus` in {section}; expected one of: {expected}"),
                "{text}"
            );
        }
    }
}
