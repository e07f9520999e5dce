//! The admin token (`admin { token-file "…" }`): loading it, keeping it out of every `Debug`,
//! error and log, and checking a request's `Authorization` header against it in constant time.
//! It does not decide which paths need it; that is the admin server.
//!
//! Two header forms are accepted, both carrying the same token: `Bearer <token>` for scripts
//! and `sentinel status --token-file`, and `Basic` with any user name and the token as the
//! password, because that is the only credential a browser asks for (and then resends with
//! the page's own requests) without an extension.

use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Longest token file read; a token is a line, not a document.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// The admin listener's bearer token. Compared by digest; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Why the token file could not be used. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// The file could not be read.
    #[error("cannot read the admin token file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than a token can be.
    #[error("the admin token file {path} is larger than {MAX_TOKEN_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no token (empty or whitespace only), or not UTF-8 text.
    #[error("the admin token file {path} holds no token (empty, whitespace only, or not text)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl AdminToken {
    /// Reads the token from `path`: the file's text without surrounding whitespace (so a
    /// trailing newline does not count).
    #[allow(
        clippy::disallowed_methods,
        reason = "read when the configuration is loaded or reloaded, never per request"
    )]
    pub fn from_file(path: &Path) -> Result<AdminToken, AdminTokenError> {
        let size = std::fs::metadata(path)
            .map_err(|source| AdminTokenError::Unreadable {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if size > MAX_TOKEN_FILE_BYTES {
            return Err(AdminTokenError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let bytes = std::fs::read(path).map_err(|source| AdminTokenError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| AdminTokenError::Empty {
            path: path.to_path_buf(),
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(AdminTokenError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(AdminToken::new(token))
    }

    /// A token with this text (tests, the CLI).
    pub fn new(token: &str) -> AdminToken {
        AdminToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether an `Authorization` header value carries this token, as `Bearer <token>` or as
    /// the password of `Basic`.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(presented) = authorization.and_then(presented_token) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(&presented).into();
        bool::from(digest.ct_eq(&self.digest))
    }
}

/// The token inside an `Authorization` header value, if it has one of the two forms.
fn presented_token(header: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests write their fixture files")]
mod tests {
    use super::*;

    const SECRET: &str = "admin-secret-0123456789";

    #[test]
    fn bearer_and_basic_carry_the_token() {
        let token = AdminToken::new(SECRET);
        assert!(token.accepts(Some(format!("Bearer {SECRET}").as_bytes())));
        assert!(token.accepts(Some(format!("bearer  {SECRET} ").as_bytes())));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("ops:{SECRET}"));
        assert!(token.accepts(Some(format!("Basic {basic}").as_bytes())));
        assert!(!token.accepts(None));
        assert!(!token.accepts(Some(b"Bearer wrong")));
        assert!(!token.accepts(Some(SECRET.as_bytes())));
        assert!(!token.accepts(Some(b"Basic not-base64!")));
        let user_only = base64::engine::general_purpose::STANDARD.encode(SECRET);
        assert!(!token.accepts(Some(format!("Basic {user_only}").as_bytes())));
    }

    #[test]
    fn the_file_is_trimmed_and_the_secret_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, format!("{SECRET}\n")).unwrap();
        let token = AdminToken::from_file(&path).unwrap();
        assert!(token.accepts(Some(format!("Bearer {SECRET}").as_bytes())));
        assert!(!format!("{token:?}").contains(SECRET));

        std::fs::write(&path, " \n").unwrap();
        let empty = AdminToken::from_file(&path).unwrap_err().to_string();
        assert!(empty.contains("holds no token"), "{empty}");
        let missing = AdminToken::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("cannot read"));
    }
}
