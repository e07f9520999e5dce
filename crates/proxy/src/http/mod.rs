//! The HTTP data plane: clients connect to [`serve`]; each request is normalised
//! (`normalise`) and routed ([`routing`]), shown to its route's agents (`agents`, with bodies
//! through `inspect`; a block's log line in `audit`), forwarded to an upstream target ([`upstream`]: the group picks it and
//! sends) and answered, with the agents' decisions applied. Pure header logic lives in [`headers`];
//! responses the proxy makes itself in [`response`], and why (which side failed) in `failure`;
//! body types in [`body`]; the request flow
//! that ties them together in `handler`.

mod agents;
mod audit;
pub mod body;
mod failure;
mod handler;
pub mod headers;
mod inspect;
mod normalise;
pub mod response;
pub mod routing;
mod server;
pub mod upstream;

pub use body::{BoxError, ProxyBody};
pub use inspect::MAX_CHUNK;
pub use server::serve;
pub use upstream::{TargetHealth, UpstreamError, UpstreamHealth, Upstreams};
