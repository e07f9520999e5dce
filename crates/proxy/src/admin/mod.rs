//! The admin side: the operator's status report with its page and tables, the admin token, and
//! the admin HTTP listener (`/`, `/status.json`, `/metrics`, `/agents`, `/health`) with a small
//! client for the `sentinel agents`/`sentinel status` commands. It reads the pool, the
//! listener's counters and [`crate::telemetry`] (the metrics and each agent's last minute,
//! which it serves but does not own); it changes nothing.

pub mod client;
mod page;
mod server;
pub mod status;
mod token;
pub mod view;

pub use server::{serve_admin, AdminContext};
pub use token::{AdminToken, AdminTokenError};
