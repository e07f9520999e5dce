//! The Sentinel auth agent: lets a request through only with a known bearer token or API key,
//! passes the caller's identity upstream in a header (`x-auth-user`), and answers 401
//! otherwise. Credentials come from a JSON tokens file or the configuration the proxy pushes;
//! secrets may be stored as SHA-256 digests and are only ever held as digests.
//!
//! `credentials` owns the secrets and their constant-time lookup, `agent` the [`AuthAgent`];
//! the binary (`sentinel-auth-agent`) only parses flags and runs it.

#![warn(missing_docs)]

mod agent;
mod credentials;

pub use agent::{AuthAgent, AuthSettings, Outcome};
pub use credentials::{CredentialError, CredentialSpec, Credentials, Kind};
