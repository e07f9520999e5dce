//! Auth tokens: where each comes from (`value`, `env`, `file`, `sha256`), which agent ids it is
//! for, and the constant-time check. Secrets live only inside [`TokenRule`], whose `Debug`
//! prints a mask; nothing here logs or formats a token.

use std::fmt;
use std::path::PathBuf;

use sentinel_agent_protocol::AgentPattern;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Where a token's secret comes from, as written in the configuration.
#[derive(Clone)]
pub enum TokenSource {
    /// The token itself (tests and development only).
    Value(String),
    /// The name of an environment variable holding the token.
    Env(String),
    /// A file whose contents (trailing newline removed) are the token.
    File(PathBuf),
    /// The lowercase or uppercase hex SHA-256 of the token; the token itself is never stored.
    Sha256(String),
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Value(_) => f.write_str("Value(***)"),
            TokenSource::Env(name) => write!(f, "Env({name:?})"),
            TokenSource::File(path) => write!(f, "File({path:?})"),
            TokenSource::Sha256(_) => f.write_str("Sha256(***)"),
        }
    }
}

/// Why a token could not be loaded. Messages name the source, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The environment variable is unset or not UTF-8.
    #[error("auth-token for {pattern:?}: environment variable {name} is not set")]
    MissingEnv {
        /// The token's agent-id pattern.
        pattern: String,
        /// The variable.
        name: String,
    },
    /// The file could not be read.
    #[error("auth-token for {pattern:?}: cannot read {path}: {source}")]
    File {
        /// The token's agent-id pattern.
        pattern: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The hash is not 64 hex digits.
    #[error("auth-token for {pattern:?}: sha256 must be 64 hexadecimal digits")]
    BadDigest {
        /// The token's agent-id pattern.
        pattern: String,
    },
    /// The token is empty, which would let an agent without a token in.
    #[error("auth-token for {pattern:?}: the token is empty")]
    Empty {
        /// The token's agent-id pattern.
        pattern: String,
    },
}

/// A loaded token: the agent ids it is valid for and the SHA-256 of its secret.
///
/// Only the digest is kept, so plain and hashed sources are checked the same way, and the
/// comparison does not depend on the token's length.
#[derive(Clone)]
pub struct TokenRule {
    pattern: AgentPattern,
    digest: [u8; 32],
}

impl TokenRule {
    /// Loads a token for agent ids matching `pattern` from `source`.
    #[allow(
        clippy::disallowed_methods,
        reason = "token files are read when the configuration is loaded, never per request"
    )]
    pub fn load(pattern: &str, source: &TokenSource) -> Result<TokenRule, TokenError> {
        let pattern_name = pattern.to_string();
        let secret = match source {
            TokenSource::Value(value) => value.clone(),
            TokenSource::Env(name) => std::env::var(name).map_err(|_| TokenError::MissingEnv {
                pattern: pattern_name.clone(),
                name: name.clone(),
            })?,
            TokenSource::File(path) => std::fs::read_to_string(path)
                .map_err(|source| TokenError::File {
                    pattern: pattern_name.clone(),
                    path: path.clone(),
                    source,
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            TokenSource::Sha256(hex) => {
                let digest = parse_digest(hex).ok_or(TokenError::BadDigest {
                    pattern: pattern_name,
                })?;
                return Ok(TokenRule {
                    pattern: AgentPattern::new(pattern),
                    digest,
                });
            }
        };
        if secret.is_empty() {
            return Err(TokenError::Empty {
                pattern: pattern_name,
            });
        }
        Ok(TokenRule {
            pattern: AgentPattern::new(pattern),
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// The agent ids this token is for.
    pub fn pattern(&self) -> &AgentPattern {
        &self.pattern
    }
}

impl fmt::Debug for TokenRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenRule({:?}, ***)", self.pattern.as_str())
    }
}

/// Whether `presented` is a token configured for `agent_id`. Every rule is examined and every
/// comparison is constant-time, so timing tells neither which rule matched nor how much of a
/// wrong token was right. A missing token is checked as an empty one, which never matches.
pub(crate) fn token_is_valid(rules: &[TokenRule], agent_id: &str, presented: Option<&str>) -> bool {
    let presented = presented.unwrap_or("");
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut valid = Choice::from(0);
    for rule in rules {
        let applies = Choice::from(u8::from(rule.pattern.matches(agent_id)));
        valid |= applies & rule.digest.ct_eq(&digest);
    }
    bool::from(valid) && !presented.is_empty()
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests write their fixture files")]
mod tests {
    use super::*;

    fn rule(pattern: &str, source: TokenSource) -> TokenRule {
        TokenRule::load(pattern, &source).expect("loads")
    }

    #[test]
    fn tokens_from_every_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        std::env::set_var("SENTINEL_TEST_TOKEN_AUTH_RS", "from-env");
        let rules = [
            rule("dev-*", TokenSource::Value("only-for-tests".into())),
            rule(
                "waf-*",
                TokenSource::Env("SENTINEL_TEST_TOKEN_AUTH_RS".into()),
            ),
            rule("auth-agent", TokenSource::File(file)),
            // sha256("test")
            rule(
                "*",
                TokenSource::Sha256(
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                ),
            ),
        ];
        assert!(token_is_valid(&rules, "dev-1", Some("only-for-tests")));
        assert!(token_is_valid(&rules, "waf-3", Some("from-env")));
        assert!(token_is_valid(&rules, "auth-agent", Some("from-file")));
        assert!(token_is_valid(&rules, "anyone", Some("test")));
        // A token is valid only for the ids it names.
        assert!(!token_is_valid(&rules, "waf-3", Some("from-file")));
        assert!(!token_is_valid(&rules, "auth-agent", Some("from-env")));
        assert!(!token_is_valid(&rules, "dev-1", None));
        assert!(!token_is_valid(&rules, "dev-1", Some("")));
        assert!(!token_is_valid(&rules, "dev-1", Some("only-for-test")));
    }

    #[test]
    fn load_errors_never_contain_the_secret() {
        let err = TokenRule::load("x", &TokenSource::Env("SENTINEL_SURELY_UNSET_VAR".into()))
            .unwrap_err();
        assert!(
            err.to_string().contains("SENTINEL_SURELY_UNSET_VAR"),
            "{err}"
        );
        let err = TokenRule::load("x", &TokenSource::Sha256("abc".into())).unwrap_err();
        assert!(err.to_string().contains("64 hexadecimal"), "{err}");
        let err = TokenRule::load("x", &TokenSource::Value(String::new())).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let rule = rule("x", TokenSource::Value("hunter2".into()));
        assert!(!format!("{rule:?}").contains("hunter2"));
        assert!(!format!("{:?}", TokenSource::Value("hunter2".into())).contains("hunter2"));
    }
}
