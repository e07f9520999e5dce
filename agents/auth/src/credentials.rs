//! Credentials: who may pass and with which secret. A credential is a user name with a bearer
//! token or an API key, given in clear or as its SHA-256. Only digests are kept in memory,
//! every check compares against every credential in constant time, and nothing here can print
//! a secret (the `Debug` output names users only).

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How the client presented its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// The API-key header (default `x-api-key`).
    ApiKey,
}

impl Kind {
    /// `bearer` or `api_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bearer => "bearer",
            Kind::ApiKey => "api_key",
        }
    }
}

/// One credential as written in a tokens file or pushed config: `user` plus exactly one of
/// `bearer`, `bearer_sha256`, `api_key`, `api_key_sha256`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    /// The identity passed upstream.
    pub user: String,
    /// A bearer token in clear.
    #[serde(default)]
    pub bearer: Option<String>,
    /// The hex SHA-256 of a bearer token.
    #[serde(default)]
    pub bearer_sha256: Option<String>,
    /// An API key in clear.
    #[serde(default)]
    pub api_key: Option<String>,
    /// The hex SHA-256 of an API key.
    #[serde(default)]
    pub api_key_sha256: Option<String>,
}

impl fmt::Debug for CredentialSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialSpec({:?}, ***)", self.user)
    }
}

struct Credential {
    user: String,
    kind: Kind,
    digest: [u8; 32],
}

/// The loaded credentials.
#[derive(Default)]
pub struct Credentials {
    entries: Vec<Credential>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|c| (&c.user, c.kind.as_str())))
            .finish()
    }
}

/// Credentials that could not be loaded. Messages name users and files, never secrets.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A credential has no or several secrets.
    #[error("credential for user {0:?} must have exactly one of bearer, bearer_sha256, api_key, api_key_sha256")]
    SecretCount(String),
    /// A user name is empty.
    #[error("a credential has an empty user name")]
    EmptyUser,
    /// A secret is empty.
    #[error("credential for user {0:?} has an empty secret")]
    EmptySecret(String),
    /// A digest is not 64 hex digits.
    #[error("credential for user {0:?}: the sha256 must be 64 hexadecimal digits")]
    BadDigest(String),
    /// The file could not be read.
    #[error("cannot read tokens file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file or config is not the expected JSON. The parser's message is not repeated: it
    /// could quote a secret.
    #[error("{0}: expected a list of credentials or {{\"credentials\": [...]}}, each {{\"user\": ..., \"bearer\" | \"api_key\" | \"bearer_sha256\" | \"api_key_sha256\": ...}}")]
    Format(String),
}

impl Credentials {
    /// Builds the store from specs.
    pub fn from_specs(specs: &[CredentialSpec]) -> Result<Credentials, CredentialError> {
        let mut entries = Vec::with_capacity(specs.len());
        for spec in specs {
            if spec.user.trim().is_empty() {
                return Err(CredentialError::EmptyUser);
            }
            let secrets = [
                (Kind::Bearer, spec.bearer.as_deref(), false),
                (Kind::Bearer, spec.bearer_sha256.as_deref(), true),
                (Kind::ApiKey, spec.api_key.as_deref(), false),
                (Kind::ApiKey, spec.api_key_sha256.as_deref(), true),
            ];
            let mut given = secrets.iter().filter(|(_, s, _)| s.is_some());
            let (Some((kind, Some(secret), hashed)), None) = (given.next(), given.next()) else {
                return Err(CredentialError::SecretCount(spec.user.clone()));
            };
            if secret.is_empty() {
                return Err(CredentialError::EmptySecret(spec.user.clone()));
            }
            let digest = if *hashed {
                parse_digest(secret).ok_or_else(|| CredentialError::BadDigest(spec.user.clone()))?
            } else {
                Sha256::digest(secret.as_bytes()).into()
            };
            entries.push(Credential {
                user: spec.user.clone(),
                kind: *kind,
                digest,
            });
        }
        Ok(Credentials { entries })
    }

    /// Parses JSON text: a list of credentials or `{"credentials": [...]}`.
    pub fn parse(text: &str, origin: &str) -> Result<Credentials, CredentialError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum File {
            List(Vec<CredentialSpec>),
            Object { credentials: Vec<CredentialSpec> },
        }
        let file: File =
            serde_json::from_str(text).map_err(|_| CredentialError::Format(origin.to_string()))?;
        match file {
            File::List(specs) | File::Object { credentials: specs } => {
                Credentials::from_specs(&specs)
            }
        }
    }

    /// Reads a tokens file.
    #[allow(
        clippy::disallowed_methods,
        reason = "the credentials file is read at start, before serving"
    )]
    pub fn load(path: &Path) -> Result<Credentials, CredentialError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Credentials::parse(&text, &path.display().to_string())
    }

    /// How many credentials there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The user whose `kind` secret is `presented`. Every credential is compared, in constant
    /// time, so the time taken says nothing about how close a wrong secret came.
    pub fn identify(&self, kind: Kind, presented: &str) -> Option<&str> {
        if presented.is_empty() {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for credential in &self.entries {
            let same_kind = u8::from(credential.kind == kind);
            let matched = credential.digest.ct_eq(&digest) & same_kind.ct_eq(&1);
            if bool::from(matched) && found.is_none() {
                found = Some(credential.user.as_str());
            }
        }
        found
    }
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests write their fixture files")]
mod tests {
    use super::*;

    const ALICE: &str = "alice-token-1234";
    const SOME_DIGEST: &str = "e4c4b0c8ad6e7a2f3e7e0c0e5b3c1e0a3b2f6d6a8f1b7c9e2d4a6b8c0e1f3a5c";

    fn spec(user: &str) -> CredentialSpec {
        CredentialSpec {
            user: user.into(),
            ..CredentialSpec::default()
        }
    }

    #[test]
    fn identifies_by_kind_and_secret_in_clear_or_hashed() {
        let hashed_key = format!("{:x}", Sha256::digest(b"ci-key-5678"));
        let credentials = Credentials::from_specs(&[
            CredentialSpec {
                bearer: Some(ALICE.into()),
                ..spec("alice")
            },
            CredentialSpec {
                api_key_sha256: Some(hashed_key.to_uppercase()),
                ..spec("ci")
            },
        ])
        .unwrap();
        assert_eq!(credentials.identify(Kind::Bearer, ALICE), Some("alice"));
        assert_eq!(
            credentials.identify(Kind::ApiKey, "ci-key-5678"),
            Some("ci")
        );
        // A secret only counts where it was issued.
        assert_eq!(credentials.identify(Kind::ApiKey, ALICE), None);
        assert_eq!(credentials.identify(Kind::Bearer, "ci-key-5678"), None);
        assert_eq!(credentials.identify(Kind::Bearer, "alice-token-123"), None);
        assert_eq!(credentials.identify(Kind::Bearer, ""), None);
    }

    #[test]
    fn malformed_credentials_are_refused_without_echoing_secrets() {
        let two = CredentialSpec {
            bearer: Some("s3cret-a".into()),
            api_key: Some("s3cret-b".into()),
            ..spec("bob")
        };
        let none = spec("carol");
        let bad_hash = CredentialSpec {
            bearer_sha256: Some(SOME_DIGEST[..10].into()),
            ..spec("dan")
        };
        for (spec, expected) in [
            (two, "exactly one"),
            (none, "exactly one"),
            (bad_hash, "64 hexadecimal"),
        ] {
            let err = Credentials::from_specs(&[spec]).unwrap_err().to_string();
            assert!(err.contains(expected) && !err.contains("s3cret"), "{err}");
        }
        let err = Credentials::parse(r#"[{"user": "eve", "bearer": 12345678}]"#, "tokens.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("tokens.json:") && !err.contains("12345678"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_names_users_only() {
        let credentials = Credentials::parse(
            &format!(r#"{{"credentials": [{{"user": "alice", "bearer": "{ALICE}"}}]}}"#),
            "x",
        )
        .unwrap();
        let debug = format!("{credentials:?}");
        assert!(debug.contains("alice") && !debug.contains(ALICE), "{debug}");
        let spec = CredentialSpec {
            bearer: Some(ALICE.into()),
            ..spec("alice")
        };
        assert!(!format!("{spec:?}").contains(ALICE));
    }
}
