//! Sentinel, the proxy side of the reverse-connection agent protocol.
//!
//! Two paths, two modules: [`reverse`] owns how agents get *in* (listening sockets, the
//! handshake, registration validation); [`pool`] owns what happens once they are in (the live
//! connections, dispatching events and correlating decisions, heartbeats, draining).
//! [`transport`] is the seam between them: a registered connection is the same object whichever
//! socket it came from. [`http`] is the data plane: client requests routed, shown to agents and
//! forwarded to upstreams. [`config`] loads the KDL file, [`app`] wires everything together,
//! [`telemetry`] records the metrics and each agent's last minute, [`admin`] serves them with
//! the agent list and status; the `sentinel` binary parses arguments and holds the demo.
// No unwrap/expect on what can fail at run time; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod app;
pub mod config;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod pool;
mod readiness;
pub mod reverse;
pub mod signals;
pub mod state;
pub mod telemetry;
pub mod transport;
pub mod window;

pub use pool::{
    AgentPool, AgentReply, AgentRequest, DispatchError, Event, LogicalAgent, PoolSettings,
};
pub use reverse::{
    ListenerError, RegistrationValidator, ReverseConnectionListener, ReverseListenerConfig,
    TokenRule, TokenSource,
};
pub use transport::Transport;
