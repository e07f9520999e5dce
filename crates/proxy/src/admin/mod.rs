//! The admin side: Prometheus metrics and (later in this module) the admin HTTP listener.

mod metrics;

pub use metrics::Metrics;
