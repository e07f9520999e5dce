//! Configuration: the typed model the proxy runs on ([`Config`]) and the KDL loader that builds
//! and validates it ([`load`]). Nothing here touches running state: a reload parses into a new
//! `Config`, and only a valid one is handed to the running proxy.

mod error;
mod load;
mod model;
mod restart;

pub use error::ConfigError;
pub use load::{load, parse};
pub use model::*;
