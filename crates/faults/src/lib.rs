//! Fault injection and soak harness for Sentinel (issue 7, items 5 and 6), as a library so
//! that other harnesses (e.g. a network-namespace fleet test) can reuse its pieces, plus the
//! `sentinel-faults` binary that runs the scenarios.
//!
//! The pieces, all real processes and sockets:
//! - processes are supervised by `sentinel_test_support::process` (spawn pinned to a CPU,
//!   signal, SIGSTOP until stopped, kill, restart from the same spec, logs kept).
//! - [`proxy`]: the `sentinel` binary on a generated configuration; `/health`, `/agents`,
//!   `/metrics`; restart on the same addresses; RSS and descriptors from `/proc`.
//! - [`agents`]: the real WAF agent process dialling the proxy.
//! - [`upstream`]: a real HTTP upstream that counts must-block requests reaching it.
//! - [`load`]: a bounded, paced load generator with a real HTTP client, classifying every
//!   request and timing it.
//! - [`report`]: per-phase tallies by outcome, facts, checks, rendering.
//! - [`raw`]: a hand-driven agent connection for malformed frames.
//! - [`scenarios`]: `kill`, `stop`, `restart`, `silent_flood`, `frames`, `soak`.
//!
//! "Wrongly allowed under fail-closed" is counted by construction: requests the agent must
//! block carry [`upstream::MUST_BLOCK_HEADER`] and an SQL injection the WAF blocks, and the
//! upstream counts every such request that reaches it.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: set-up files and /proc reads, outside any proxy runtime"
)]

pub mod admin;
pub mod agents;
pub mod binaries;
pub mod error;
pub mod load;
pub mod proxy;
pub mod raw;
pub mod report;
pub mod scenarios;
pub mod upstream;

pub use error::FaultError;
pub use report::{Outcome, Report, Tally};
