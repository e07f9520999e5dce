//! What Sentinel's tests and harnesses share, so each exists once: the typed builder of the
//! proxy's KDL configuration ([`config`]), loopback ports without bind-and-release races
//! ([`ports`]), waiting on conditions ([`wait`]), Prometheus text ([`prometheus`]), the OS
//! helpers ([`os`]), cargo builds of the binaries ([`build`]) and the process supervisor
//! ([`process`]).
//! Not shipped (`publish = false`); nothing here is used by the proxy or the SDK themselves.

pub mod build;
pub mod config;
pub mod os;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod wait;
