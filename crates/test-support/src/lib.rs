//! What Sentinel's tests and harnesses share, so each exists once: the typed builder of the
//! proxy's KDL configuration ([`config`]), loopback ports without bind-and-release races
//! ([`ports`]), waiting on conditions ([`wait`]), Prometheus text ([`prometheus`]), the OS
//! helpers ([`os`]), cargo builds of the binaries ([`build`]) and the process supervisor
//! ([`process`]), and reading the admin `/agents` listing ([`agents_listing`]).
//! Not shipped (`publish = false`); nothing here is used by the proxy or the SDK themselves.
#![allow(
    clippy::disallowed_methods,
    reason = "test support: fixture files, /proc reads and blocking waits for plain threads, never in a proxy runtime"
)]

pub mod agents_listing;
pub mod build;
pub mod config;
pub mod os;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod wait;
