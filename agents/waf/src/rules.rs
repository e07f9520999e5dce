//! WAF rules: their JSON form ([`RuleSpec`]), compiled form ([`Rule`]), the ordered
//! [`RuleSet`] with its matching over the parts of a request, and where a rule set comes from
//! ([`RuleSource`]: the built-in defaults, a rules file, inline rules from pushed config).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use regex::{Regex, RegexBuilder};
use serde::Deserialize;

use crate::defaults::default_rules;

/// Largest compiled program per rule; a hostile or careless pattern cannot use more.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A part of the request a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The URI path, percent-decoded.
    Path,
    /// The query string, percent-decoded with `+` as space.
    Query,
    /// Every header value, raw and percent-decoded.
    Headers,
    /// The request body (up to the inspection limit), raw and form-decoded.
    Body,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [Target::Path, Target::Query, Target::Headers, Target::Body];

    /// The name used in configs and audits.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Path => "path",
            Target::Query => "query",
            Target::Headers => "headers",
            Target::Body => "body",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule as written in a rules file or pushed config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique id, reported in the audit record (`rule_ids`).
    pub id: String,
    /// A regular expression (Rust `regex` syntax; `(?i)` for case-insensitive).
    pub pattern: String,
    /// Where to look (default: everywhere).
    #[serde(default, deserialize_with = "sentinel_agent_sdk::one_or_many")]
    pub targets: Vec<Target>,
    /// Classification tags for the audit record, e.g. `sqli`.
    #[serde(default, deserialize_with = "sentinel_agent_sdk::one_or_many")]
    pub tags: Vec<String>,
    /// One sentence saying what the rule catches.
    #[serde(default)]
    pub message: String,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's id.
    pub id: String,
    regex: Regex,
    targets: Vec<Target>,
    /// Audit tags.
    pub tags: Vec<String>,
    /// What it catches.
    pub message: String,
}

impl Rule {
    /// Compiles a rule.
    pub fn compile(spec: &RuleSpec) -> Result<Rule, RuleError> {
        if spec.id.trim().is_empty() {
            return Err(RuleError::MissingId(spec.pattern.clone()));
        }
        let regex = RegexBuilder::new(&spec.pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| RuleError::Pattern {
                id: spec.id.clone(),
                reason: e.to_string(),
            })?;
        Ok(Rule {
            id: spec.id.clone(),
            regex,
            targets: if spec.targets.is_empty() {
                Target::ALL.to_vec()
            } else {
                spec.targets.clone()
            },
            tags: spec.tags.clone(),
            message: spec.message.clone(),
        })
    }

    /// Whether the rule looks at `target`.
    pub fn applies_to(&self, target: Target) -> bool {
        self.targets.contains(&target)
    }
}

/// A rule that matched, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The rule's id.
    pub rule_id: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Where it matched.
    pub target: Target,
    /// The rule's message.
    pub message: String,
}

/// An ordered set of compiled rules; the first match wins.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Compiles `specs` in order; ids must be unique.
    pub fn compile(specs: &[RuleSpec]) -> Result<RuleSet, RuleError> {
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(specs.len());
        for spec in specs {
            if !seen.insert(spec.id.as_str()) {
                return Err(RuleError::DuplicateId(spec.id.clone()));
            }
            rules.push(Rule::compile(spec)?);
        }
        Ok(RuleSet { rules })
    }

    /// The rules, in matching order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether any rule looks at `target`.
    pub fn inspects(&self, target: Target) -> bool {
        self.rules.iter().any(|r| r.applies_to(target))
    }

    /// The first rule that matches any of `texts` (the forms of one part of the request).
    pub fn check<S: AsRef<str>>(&self, target: Target, texts: &[S]) -> Option<Hit> {
        self.rules
            .iter()
            .filter(|rule| rule.applies_to(target))
            .find(|rule| texts.iter().any(|t| rule.regex.is_match(t.as_ref())))
            .map(|rule| Hit {
                rule_id: rule.id.clone(),
                tags: rule.tags.clone(),
                target,
                message: rule.message.clone(),
            })
    }
}

/// A rule set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A rule has no id.
    #[error("a rule has no id (pattern {0:?})")]
    MissingId(String),
    /// Two rules share an id.
    #[error("rule id {0:?} is used twice")]
    DuplicateId(String),
    /// A pattern does not compile.
    #[error("rule {id:?}: invalid pattern: {reason}")]
    Pattern {
        /// The rule.
        id: String,
        /// The regex compiler's message.
        reason: String,
    },
    /// The rules file could not be read.
    #[error("cannot read rules file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The rules file or config is not the expected JSON.
    #[error("{origin}: not a valid rule list: {reason}")]
    Format {
        /// The file or `pushed config`.
        origin: String,
        /// The parser's message.
        reason: String,
    },
}

/// Where a rule set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSource {
    /// Start with the built-in SQLi/XSS/traversal rules.
    pub default_rules: bool,
    /// A JSON rules file: a list of rules, or `{"rules": [...]}`.
    pub file: Option<PathBuf>,
    /// Rules given inline (pushed config).
    pub inline: Vec<RuleSpec>,
}

impl Default for RuleSource {
    fn default() -> RuleSource {
        RuleSource {
            default_rules: true,
            file: None,
            inline: Vec::new(),
        }
    }
}

impl RuleSource {
    /// Reads the file (if any) and compiles defaults, file rules and inline rules, in order.
    pub fn load(&self) -> Result<RuleSet, RuleError> {
        let mut specs = if self.default_rules {
            default_rules()
        } else {
            Vec::new()
        };
        if let Some(path) = &self.file {
            specs.extend(read_rules_file(path)?);
        }
        specs.extend(self.inline.iter().cloned());
        RuleSet::compile(&specs)
    }
}

/// Parses a rules file: a JSON list of rules, or an object with a `rules` list.
#[allow(
    clippy::disallowed_methods,
    reason = "the rules file is read at start, before serving"
)]
pub fn read_rules_file(path: &Path) -> Result<Vec<RuleSpec>, RuleError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuleError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_rules(&text, &path.display().to_string())
}

/// Parses a rule list from JSON text (`[...]` or `{"rules": [...]}`).
pub fn parse_rules(text: &str, origin: &str) -> Result<Vec<RuleSpec>, RuleError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum File {
        List(Vec<RuleSpec>),
        Object { rules: Vec<RuleSpec> },
    }
    let file: File = serde_json::from_str(text).map_err(|e| RuleError::Format {
        origin: origin.to_string(),
        reason: e.to_string(),
    })?;
    Ok(match file {
        File::List(rules) | File::Object { rules } => rules,
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests write their fixture files")]
mod tests {
    use super::*;

    fn spec(id: &str, pattern: &str, targets: &[Target]) -> RuleSpec {
        RuleSpec {
            id: id.into(),
            pattern: pattern.into(),
            targets: targets.to_vec(),
            tags: vec!["t".into()],
            message: "m".into(),
        }
    }

    #[test]
    fn first_matching_rule_wins_and_targets_are_respected() {
        let set = RuleSet::compile(&[
            spec("only-body", "secret", &[Target::Body]),
            spec("anywhere", "(?i)secret", &[]),
        ])
        .unwrap();
        assert_eq!(
            set.check(Target::Body, &["a secret"]).unwrap().rule_id,
            "only-body"
        );
        assert_eq!(
            set.check(Target::Query, &["SECRET"]).unwrap().rule_id,
            "anywhere"
        );
        assert_eq!(set.check(Target::Path, &["/public"]), None);
        assert!(set.inspects(Target::Headers));
    }

    #[test]
    fn bad_rule_sets_are_refused_with_the_rule_named() {
        let err = RuleSet::compile(&[spec("broken", "(unclosed", &[])]).unwrap_err();
        assert!(err.to_string().contains("\"broken\""), "{err}");
        let err = RuleSet::compile(&[spec("a", "x", &[]), spec("a", "y", &[])]).unwrap_err();
        assert!(matches!(err, RuleError::DuplicateId(_)));
        let err = RuleSet::compile(&[spec(" ", "x", &[])]).unwrap_err();
        assert!(matches!(err, RuleError::MissingId(_)));
    }

    #[test]
    fn rule_files_in_both_shapes() {
        let list = r#"[{"id": "r1", "pattern": "x", "targets": ["path", "body"]}]"#;
        let object = r#"{"rules": [{"id": "r1", "pattern": "x", "tags": ["demo"]}]}"#;
        assert_eq!(
            parse_rules(list, "f").unwrap()[0].targets,
            [Target::Path, Target::Body]
        );
        assert_eq!(parse_rules(object, "f").unwrap()[0].tags, ["demo"]);
        let err = parse_rules(r#"[{"id": "r1"}]"#, "rules.json").unwrap_err();
        assert!(err.to_string().starts_with("rules.json:"), "{err}");
        let err = parse_rules(r#"[{"id": "r1", "pattern": "x", "target": ["path"]}]"#, "f");
        assert!(err.is_err(), "a misspelt field is an error, not ignored");
    }

    #[test]
    fn sources_combine_defaults_file_and_inline_rules() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.json");
        std::fs::write(&file, r#"[{"id": "from-file", "pattern": "filebad"}]"#).unwrap();
        let source = RuleSource {
            default_rules: false,
            file: Some(file),
            inline: vec![spec("inline", "inlinebad", &[])],
        };
        let ids: Vec<_> = source
            .load()
            .unwrap()
            .rules()
            .iter()
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(ids, ["from-file", "inline"]);
        let with_defaults = RuleSource::default().load().unwrap();
        assert!(with_defaults.rules().len() >= 8);
        let missing = RuleSource {
            file: Some(dir.path().join("nope.json")),
            ..RuleSource::default()
        };
        assert!(matches!(missing.load(), Err(RuleError::Read { .. })));
    }
}
