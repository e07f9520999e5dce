//! What Sentinel's tests and harnesses share, so each exists once: the typed builder of the
//! proxy's KDL configuration ([`config`]), loopback ports without bind-and-release races
//! ([`ports`]), waiting on conditions ([`wait`]), Prometheus text ([`prometheus`]).
//! Not shipped (`publish = false`); nothing here is used by the proxy or the SDK themselves.

pub mod config;
pub mod ports;
pub mod prometheus;
pub mod wait;
