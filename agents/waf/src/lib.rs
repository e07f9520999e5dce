//! The Sentinel WAF agent: blocks requests whose path, query, header values or body match
//! regular-expression rules. Rules have ids (reported in the audit record of every block),
//! come from a built-in default set (SQL injection, XSS, path traversal), a JSON rules file,
//! and the configuration the proxy pushes, which reloads them on every ConfigUpdate.
//!
//! `rules` holds the rule model and matching, `defaults` the built-in set, `agent` the
//! [`Waf`] agent itself; the binary (`sentinel-waf-agent`) only parses flags and runs it.

#![warn(missing_docs)]

mod agent;
mod defaults;
mod rules;

pub use agent::{Waf, WafSettings, BLOCK_BODY, DEFAULT_MAX_BODY_BYTES};
pub use defaults::default_rules;
pub use rules::{
    parse_rules, read_rules_file, Hit, Rule, RuleError, RuleSet, RuleSource, RuleSpec, Target,
};
