//! The built-in rules: a small, deliberately conservative set for SQL injection, cross-site
//! scripting and path traversal. They aim at unambiguous attack shapes so that ordinary
//! traffic (names with apostrophes, JSON with colours, prose mentioning "union" and "select")
//! passes; a real deployment adds its own rules on top.

use crate::rules::{RuleSpec, Target};

fn rule(id: &str, pattern: &str, targets: &[Target], tag: &str, message: &str) -> RuleSpec {
    RuleSpec {
        id: id.into(),
        pattern: pattern.into(),
        targets: targets.to_vec(),
        tags: vec![tag.into()],
        message: message.into(),
    }
}

/// The default rules, in matching order.
pub fn default_rules() -> Vec<RuleSpec> {
    use Target::*;
    let all = &[Path, Query, Headers, Body][..];
    let no_body = &[Path, Query, Headers][..];
    vec![
        rule(
            "sqli-union-select",
            r"(?i)\bunion(\s|/\*.*?\*/)+((all|distinct)(\s|/\*.*?\*/)+)?select\b",
            all,
            "sqli",
            "UNION SELECT query splicing",
        ),
        rule(
            "sqli-tautology",
            r#"(?i)(['"]\s*\bor\b\s+['"]?[\w-]+['"]?\s*(=|<|>|\blike\b))|(\bor\s+\d+\s*=\s*\d+\b)"#,
            all,
            "sqli",
            "always-true condition such as ' OR '1'='1",
        ),
        rule(
            "sqli-comment-terminator",
            r"'\s*(--|;\s*--)",
            all,
            "sqli",
            "quote followed by an SQL comment",
        ),
        rule(
            "sqli-stacked-query",
            r"(?i);\s*(drop\s+(table|database|schema)|truncate\s+table|alter\s+table|delete\s+from|insert\s+into|update\s+\w+\s+set|exec(ute)?\s)",
            all,
            "sqli",
            "stacked destructive SQL statement",
        ),
        rule(
            "sqli-time-delay",
            r"(?i)\b(sleep|pg_sleep|benchmark)\s*\(\s*\d|\bwaitfor\s+delay\s+'",
            all,
            "sqli",
            "time-based blind SQL injection",
        ),
        rule(
            "xss-script-tag",
            r"(?i)<\s*/?\s*script\b",
            all,
            "xss",
            "script element",
        ),
        rule(
            "xss-event-handler",
            r"(?i)<[a-z][^>]*[\s/]on[a-z]+\s*=",
            all,
            "xss",
            "HTML element with an inline event handler",
        ),
        rule(
            "xss-javascript-uri",
            r"(?i)javascript\s*:\s*\S*\(",
            all,
            "xss",
            "javascript: URI calling a function",
        ),
        rule(
            "xss-embedding-element",
            r"(?i)<\s*(iframe|object|embed)\b",
            all,
            "xss",
            "iframe, object or embed element",
        ),
        rule(
            "traversal-dot-dot",
            r"(^|[/\\=&;:,\s])\.\.([/\\]|$)",
            no_body,
            "path-traversal",
            "../ path traversal",
        ),
        rule(
            "traversal-sensitive-file",
            r"(?i)(/etc/(passwd|shadow|hosts)\b|\b(boot|win)\.ini\b|/proc/self/)",
            all,
            "path-traversal",
            "access to a well-known system file",
        ),
    ]
}
