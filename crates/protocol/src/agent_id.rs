//! Agent-id syntax (`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`) and the `*`/`?` wildcard patterns
//! used by allowlists, token scopes and logical-agent groups on both sides of the protocol.

use std::fmt;

/// The longest valid agent id, in bytes.
pub const AGENT_ID_MAX_LEN: usize = 128;

/// Whether `id` is a syntactically valid agent id (PROTOCOL.md §3, check 3).
pub fn is_valid_agent_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            bytes.len() <= AGENT_ID_MAX_LEN
                && first.is_ascii_alphanumeric()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        }
        None => false,
    }
}

/// A wildcard pattern over agent ids: `*` matches any run of characters (also none),
/// `?` exactly one character, everything else itself (case-sensitive).
///
/// Matching runs in `O(pattern × id)` time at worst, without recursion, so hostile ids
/// cannot make it explode.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AgentPattern {
    source: String,
    chars: Vec<char>,
}

impl AgentPattern {
    /// Compiles a pattern. Every string is a valid pattern.
    pub fn new(pattern: impl Into<String>) -> AgentPattern {
        let source = pattern.into();
        let chars = source.chars().collect();
        AgentPattern { source, chars }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern contains no wildcard (it then matches exactly one id).
    pub fn is_literal(&self) -> bool {
        !self.chars.iter().any(|c| matches!(c, '*' | '?'))
    }

    /// Whether `id` matches the whole pattern.
    pub fn matches(&self, id: &str) -> bool {
        let pattern = &self.chars;
        let text: Vec<char> = id.chars().collect();
        let (mut p, mut t) = (0, 0);
        // Position after the last `*` seen, and the text position it is currently matched up to.
        let mut backtrack: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some('*') => {
                    backtrack = Some((p + 1, t));
                    p += 1;
                }
                Some(c) if *c == '?' || *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match backtrack {
                    Some((star_p, star_t)) => {
                        p = star_p;
                        t = star_t + 1;
                        backtrack = Some((star_p, star_t + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|c| *c == '*')
    }
}

impl fmt::Debug for AgentPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentPattern({:?})", self.source)
    }
}

impl fmt::Display for AgentPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl From<&str> for AgentPattern {
    fn from(pattern: &str) -> AgentPattern {
        AgentPattern::new(pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_syntax() {
        for ok in ["a", "waf-worker-3", "A.b_c:d-e", "9", &"x".repeat(128)] {
            assert!(is_valid_agent_id(ok), "{ok:?} should be valid");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "é", "a\n", &"x".repeat(129)] {
            assert!(!is_valid_agent_id(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("waf-*", "waf-1", true),
            ("waf-*", "waf-", true),
            ("waf-*", "waf", false),
            ("waf-*", "auth-1", false),
            ("auth-agent", "auth-agent", true),
            ("auth-agent", "auth-agent2", false),
            ("*", "", true),
            ("*", "anything", true),
            ("w?f", "waf", true),
            ("w?f", "wf", false),
            ("*-worker-?", "waf-worker-3", true),
            ("*-worker-?", "waf-worker-33", false),
            ("a*b*c", "aXXbYYbZZc", true),
            ("a*b*c", "aXXbYYbZZ", false),
            ("**x", "x", true),
            ("WAF-*", "waf-1", false),
        ];
        for (pattern, id, expected) in cases {
            assert_eq!(
                AgentPattern::new(pattern).matches(id),
                expected,
                "{pattern:?} vs {id:?}"
            );
        }
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let pattern = AgentPattern::new("*a*a*a*a*a*a*a*a*b");
        let id = "a".repeat(128);
        assert!(!pattern.matches(&id));
    }
}
