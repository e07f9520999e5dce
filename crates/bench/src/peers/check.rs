//! The two decisions every system in the `peers` comparison makes, written once so the bench's
//! auth service (nginx) and SPOA (HAProxy) decide exactly as the `auth` and `waf` agents do for
//! Sentinel: a bearer token must match (SHA-256 compared in constant time, as the auth agent
//! does), and a request body must not match a pattern (the same regex the waf agent gets as its
//! only rule). Owns the decisions, not the transports.

use regex::bytes::Regex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The pattern the body check looks for (literal `<script`, case-insensitive): the waf agent
/// gets it as its only rule, the SPOA compiles the same expression.
pub const BODY_PATTERN: &str = r"(?i)<script";

/// Accepts `Authorization: Bearer <token>` for one token.
#[derive(Clone)]
pub struct BearerCheck {
    digest: [u8; 32],
}

impl BearerCheck {
    /// A check for `token` (only its digest is kept).
    pub fn new(token: &str) -> BearerCheck {
        BearerCheck {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether an Authorization header value carries the token.
    pub fn allows(&self, authorization: &[u8]) -> bool {
        let Some(token) = bearer_token(authorization) else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(token).into();
        presented.ct_eq(&self.digest).into()
    }
}

/// The token of a `Bearer <token>` header value (scheme case-insensitive, spaces trimmed).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Refuses bodies that match [`BODY_PATTERN`].
#[derive(Clone)]
pub struct BodyCheck {
    pattern: Regex,
}

impl Default for BodyCheck {
    fn default() -> BodyCheck {
        BodyCheck {
            // A constant expression, covered by the tests below.
            pattern: Regex::new(BODY_PATTERN).expect("the body pattern is a valid regex"),
        }
    }
}

impl BodyCheck {
    /// Whether `body` may pass.
    pub fn allows(&self, body: &[u8]) -> bool {
        !self.pattern.is_match(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_must_match_exactly() {
        let check = BearerCheck::new("s3cret-token");
        assert!(check.allows(b"Bearer s3cret-token"));
        assert!(check.allows(b"bearer  s3cret-token "));
        assert!(!check.allows(b"Bearer s3cret-tokeN"));
        assert!(!check.allows(b"Bearer s3cret-token2"));
        assert!(!check.allows(b"Basic s3cret-token"));
        assert!(!check.allows(b"s3cret-token"));
        assert!(!check.allows(b"Bearer "));
        assert!(!check.allows(b""));
    }

    #[test]
    fn body_pattern_blocks_script_only() {
        let check = BodyCheck::default();
        assert!(check.allows(&crate::wire::clean_body()));
        assert!(!check.allows(b"comment=<SCRIPT>alert(1)</script>"));
        assert!(!check.allows(b"a=1&b=<script src=x>"));
    }
}
