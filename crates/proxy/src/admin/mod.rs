//! The admin side: Prometheus metrics and the admin HTTP listener (`/metrics`, `/agents`,
//! `/health`). It reads the pool and the listener's counters; it changes nothing.

mod metrics;
mod server;

pub use metrics::Metrics;
pub use server::{serve_admin, AdminContext};
