//! The admin side: Prometheus metrics, the one-minute view of each agent's decisions, the
//! operator's status report with its page and tables, the admin token, and the admin HTTP
//! listener (`/`, `/status.json`, `/metrics`, `/agents`, `/health`) with a small client for the
//! `sentinel agents`/`sentinel status` commands. It reads the pool and the listener's counters;
//! it changes nothing.

pub mod client;
mod metrics;
mod page;
mod recent;
mod server;
pub mod status;
mod token;
pub mod view;

pub use metrics::Metrics;
pub use recent::AgentMinute;
pub use server::{serve_admin, AdminContext};
pub use token::{AdminToken, AdminTokenError};
