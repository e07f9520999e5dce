//! The Sentinel agent SDK: write a policy agent as a few async methods, and let the runner do
//! the rest — dial the proxy (`unix:`, `tcp:` or `tls:`, with an optional client certificate), register with an id, token, capabilities and
//! metadata, keep N connections per proxy alive with jittered exponential backoff, run events
//! concurrently, honour Cancel, answer Ping, apply pushed configuration, and drain on shutdown.
//!
//! ```no_run
//! use clap::Parser;
//! use sentinel_agent_sdk::prelude::*;
//!
//! struct NoAdmin;
//!
//! impl Agent for NoAdmin {
//!     async fn on_request_headers(&self, req: &RequestHeaders, _ctx: &mut RequestContext) -> Verdict {
//!         if req.path().starts_with("/admin") {
//!             Verdict::block(403).reason("admin is closed")
//!         } else {
//!             Verdict::allow().set_request_header("x-no-admin", "checked")
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     sentinel_agent_sdk::init_tracing();
//!     let config = ConnectArgs::parse().to_config()?;
//!     Runner::new(NoAdmin, config)?.run_until_signal().await?;
//!     Ok(())
//! }
//! ```
//!
//! Layout: [`Agent`] and [`Verdict`] are what authors touch; [`RequestContext`] carries
//! per-request state between events; [`Runner`] with [`RunnerConfig`] (or [`ConnectArgs`] for
//! the standard flags) runs it. Everything else is the machinery behind them.
// No unwrap/expect on what can fail at run time; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod address;
mod agent;
mod backoff;
mod cli;
mod config;
mod config_push;
mod connection;
mod context;
mod error;
mod events;
mod metadata;
mod pushed;
mod register;
mod request_ext;
mod runner;
mod shutdown;
mod tls;
mod verdict;

pub use address::ProxyAddr;
pub use agent::{Agent, Cancelled, Events};
pub use backoff::{Backoff, BackoffConfig};
pub use cli::ConnectArgs;
pub use config::RunnerConfig;
pub use context::RequestContext;
pub use error::{AddressError, BoxError, ConfigError, DialError, RegisterError, RunError};
pub use events::{Disconnect, RunnerEvent};
pub use pushed::{one_or_many, optional_one_or_many};
pub use request_ext::{
    decode_form_component, percent_decode, RequestHeadersExt, ResponseHeadersExt,
};
pub use runner::Runner;
pub use shutdown::{init_tracing, shutdown_on_signal};
pub use tls::{TlsClientConfig, TlsConfigError};
pub use verdict::{Reply, Verdict};

/// The protocol crate, for the message types handlers receive.
pub use sentinel_agent_protocol as protocol;
/// The JSON crate behind [`Agent::on_config`]'s `&Value`, so agents need no dependency of their own.
pub use serde_json;
/// The token type [`Runner::run`] stops on.
pub use tokio_util::sync::CancellationToken;

/// Everything a typical agent needs in one `use`.
pub mod prelude {
    pub use crate::{
        Agent, BoxError, Cancelled, ConnectArgs, Events, RequestContext, RequestHeadersExt,
        ResponseHeadersExt, Runner, RunnerConfig, Verdict,
    };
    pub use sentinel_agent_protocol::{BodyChunk, RequestHeaders, ResponseHeaders};
    /// The pushed configuration's type, as [`Agent::on_config`] receives it.
    pub use serde_json::Value;
}
