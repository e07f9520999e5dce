//! [`AuthAgent`]: for each request, finds a bearer token (`Authorization: Bearer …`) or an API
//! key (`x-api-key`), looks it up in the credentials, and either passes the request upstream
//! with the identity header set (`x-auth-user: alice`) or answers 401. A client can never
//! choose its own identity: the header is always overwritten or removed. Public path prefixes
//! skip the check. Pushed configuration replaces the credentials and settings.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use sentinel_agent_sdk::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use crate::credentials::{CredentialError, CredentialSpec, Credentials, Kind};

/// What the agent checks against and how it answers.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Where the credentials come from at start-up (none: every request is refused).
    pub tokens_file: Option<PathBuf>,
    /// The header that carries the identity upstream.
    pub identity_header: String,
    /// The header that carries an API key.
    pub api_key_header: String,
    /// Path prefixes served without credentials.
    pub public_paths: Vec<String>,
    /// The realm in `WWW-Authenticate`.
    pub realm: String,
}

impl Default for AuthSettings {
    fn default() -> AuthSettings {
        AuthSettings {
            tokens_file: None,
            identity_header: "x-auth-user".into(),
            api_key_header: "x-api-key".into(),
            public_paths: Vec::new(),
            realm: "sentinel".into(),
        }
    }
}

/// The settings and credentials in force, swapped whole on reload.
struct State {
    settings: AuthSettings,
    credentials: Credentials,
}

/// The auth agent.
pub struct AuthAgent {
    startup: AuthSettings,
    state: RwLock<Arc<State>>,
}

/// The agent's part of the pushed configuration; unknown keys are ignored.
#[derive(Deserialize)]
struct PushedConfig {
    #[serde(default, deserialize_with = "sentinel_agent_sdk::optional_one_or_many")]
    credentials: Option<Vec<CredentialSpec>>,
    tokens_file: Option<PathBuf>,
    identity_header: Option<String>,
    api_key_header: Option<String>,
    #[serde(default, deserialize_with = "sentinel_agent_sdk::optional_one_or_many")]
    public_paths: Option<Vec<String>>,
    realm: Option<String>,
}

/// The outcome of a check, before it becomes a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A public path.
    Public,
    /// Known user, and how they proved it.
    Authenticated {
        /// The identity.
        user: String,
        /// Bearer token or API key.
        kind: Kind,
    },
    /// No credentials presented.
    Missing,
    /// Credentials presented but unknown.
    Invalid,
}

impl AuthAgent {
    /// Loads the start-up credentials.
    pub fn new(settings: AuthSettings) -> Result<AuthAgent, CredentialError> {
        let credentials = match &settings.tokens_file {
            Some(path) => Credentials::load(path)?,
            None => Credentials::default(),
        };
        Ok(AuthAgent {
            state: RwLock::new(Arc::new(State {
                settings: settings.clone(),
                credentials,
            })),
            startup: settings,
        })
    }

    fn state(&self) -> Arc<State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many credentials are in force.
    pub fn credential_count(&self) -> usize {
        self.state().credentials.len()
    }

    /// Applies pushed configuration: `credentials` (inline) or `tokens_file` replace the
    /// credentials; `identity_header`, `api_key_header`, `public_paths`, `realm` replace those
    /// settings. Missing keys (or null) fall back to the start-up values.
    pub fn apply_config(&self, config: &Value) -> Result<usize, CredentialError> {
        let pushed = match config {
            Value::Null => None,
            Value::Object(_) => Some(
                PushedConfig::deserialize(config)
                    .map_err(|_| CredentialError::Format("pushed config".into()))?,
            ),
            _ => return Err(CredentialError::Format("pushed config".into())),
        };
        let mut settings = self.startup.clone();
        let credentials = match pushed {
            None => self.load_startup()?,
            Some(pushed) => {
                settings.identity_header =
                    pushed.identity_header.unwrap_or(settings.identity_header);
                settings.api_key_header = pushed.api_key_header.unwrap_or(settings.api_key_header);
                settings.public_paths = pushed.public_paths.unwrap_or(settings.public_paths);
                settings.realm = pushed.realm.unwrap_or(settings.realm);
                match (pushed.credentials, pushed.tokens_file) {
                    (Some(specs), _) => Credentials::from_specs(&specs)?,
                    (None, Some(path)) => Credentials::load(&path)?,
                    (None, None) => self.load_startup()?,
                }
            }
        };
        let count = credentials.len();
        *self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(State {
            settings,
            credentials,
        });
        Ok(count)
    }

    fn load_startup(&self) -> Result<Credentials, CredentialError> {
        match &self.startup.tokens_file {
            Some(path) => Credentials::load(path),
            None => Ok(Credentials::default()),
        }
    }

    /// Checks one request.
    pub fn check(&self, request: &RequestHeaders) -> Outcome {
        let state = self.state();
        let path = request.path();
        if state
            .settings
            .public_paths
            .iter()
            .any(|p| path.starts_with(p.as_str()))
        {
            return Outcome::Public;
        }
        let presented = request
            .bearer_token()
            .map(|token| (Kind::Bearer, token))
            .or_else(|| {
                request
                    .header(&state.settings.api_key_header)
                    .map(|key| (Kind::ApiKey, key.trim()))
            });
        let Some((kind, secret)) = presented else {
            return Outcome::Missing;
        };
        match state.credentials.identify(kind, secret) {
            Some(user) => Outcome::Authenticated {
                user: user.to_string(),
                kind,
            },
            None => Outcome::Invalid,
        }
    }

    fn verdict(&self, outcome: Outcome) -> Verdict {
        let state = self.state();
        let identity = state.settings.identity_header.as_str();
        let refuse = |reason: &str| {
            tracing::info!(%reason, "request refused");
            Verdict::block(401)
                .with_body("Unauthorized\n")
                .with_block_header(
                    "www-authenticate",
                    format!("Bearer realm=\"{}\"", state.settings.realm),
                )
                .tag("auth")
                .reason(reason)
        };
        match outcome {
            Outcome::Public => Verdict::allow().remove_request_header(identity),
            Outcome::Authenticated { user, kind } => {
                tracing::debug!(%user, method = kind.as_str(), "request authenticated");
                Verdict::allow().set_request_header(identity, user)
            }
            Outcome::Missing => refuse("no bearer token or API key"),
            Outcome::Invalid => refuse("unknown bearer token or API key"),
        }
    }
}

impl Agent for AuthAgent {
    async fn on_request_headers(&self, req: &RequestHeaders, _ctx: &mut RequestContext) -> Verdict {
        self.verdict(self.check(req))
    }

    async fn on_config(&self, config: &Value) -> Result<(), BoxError> {
        let count = self.apply_config(config)?;
        tracing::info!(
            credentials = count,
            "credentials reloaded from pushed configuration"
        );
        Ok(())
    }
}
