//! The errors a send to an upstream can end in, with the status each gives the client, and
//! pointing a request at a target. The connections themselves are [`super::connections`];
//! which target, and what a failure does to its health, is the group's business
//! ([`super::group`]).

use std::time::Duration;

use http::{Request, StatusCode, Version};

use crate::http::body::ProxyBody;

/// Why no connection to a target could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Resolving, connecting or setting up the socket failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// The connection did not complete within the group's `connect-timeout`.
    #[error("no connection within {0:?}")]
    TimedOut(Duration),
    /// The HTTP/1 client could not start on the connection.
    #[error("{0}")]
    Handshake(hyper::Error),
}

/// Why a request got no response from its upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The group has no target.
    #[error("upstream {0:?} has no targets")]
    NoTarget(String),
    /// A target is not a valid `host:port`.
    #[error("upstream target {0:?} is not a valid host:port")]
    BadTarget(String),
    /// The request URI could not be rebuilt for the target.
    #[error("cannot build the upstream request URI: {0}")]
    Uri(#[from] http::Error),
    /// Connecting failed (refused, unreachable, connect timeout).
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The target.
        target: String,
        /// Why.
        source: ConnectError,
    },
    /// No response headers within the group's `request_timeout`.
    #[error("{target} did not answer within {timeout:?}")]
    Timeout {
        /// The target.
        target: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// The exchange failed after connecting (the upstream closed, the client's body failed…).
    #[error("request to {target} failed: {source}")]
    Failed {
        /// The target.
        target: String,
        /// What the HTTP client reported.
        source: hyper::Error,
    },
}

impl UpstreamError {
    /// The status the client gets: 504 for timeouts, 502 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Connect {
                source: ConnectError::TimedOut(_),
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Connect {
                source: ConnectError::Io(io),
                ..
            } if io.kind() == std::io::ErrorKind::TimedOut => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// Makes `request` an HTTP/1.1 request with an origin-form URI (`/path?query`), as a target
/// expects it; a client's absolute-form URI loses its scheme and authority (the Host header
/// carries the authority).
pub(super) fn aim(request: &mut Request<ProxyBody>) -> Result<(), UpstreamError> {
    if request.uri().scheme().is_some() || request.uri().authority().is_some() {
        let mut parts = http::uri::Parts::default();
        parts.path_and_query = Some(
            request
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        *request.uri_mut() = http::Uri::from_parts(parts).map_err(http::Error::from)?;
    }
    *request.version_mut() = Version::HTTP_11;
    Ok(())
}
