//! Configuration: the typed model the proxy runs on and the KDL loader that builds it.

mod model;

pub use model::*;
