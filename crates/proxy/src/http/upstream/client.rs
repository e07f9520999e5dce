//! The HTTP side of talking to one upstream target: the keep-alive client (hyper-util's legacy
//! client over HTTP/1.1) with its connect timeout, pointing a request at a target, and the
//! errors a send can end in with the status each gives the client. Which target, and what a
//! failure does to its health, is the group's business ([`super::group`]).

use std::time::Duration;

use http::uri::Authority;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::http::body::ProxyBody;

/// A pooled keep-alive HTTP/1.1 client for one upstream group.
pub(super) type UpstreamClient = Client<HttpConnector, ProxyBody>;

/// How long an idle upstream connection is kept for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A client whose connections give up after `connect_timeout`.
pub(super) fn client(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector)
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
        /// What the client reported.
        source: hyper_util::client::legacy::Error,
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
        /// What the client reported.
        source: hyper_util::client::legacy::Error,
    },
}

impl UpstreamError {
    /// The status the client gets: 504 for timeouts, 502 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Connect { source, .. } if is_timeout(source) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Points `request` (origin-form URI, headers ready) at the target `authority`, over HTTP/1.1.
pub(super) fn aim_at(
    request: &mut Request<ProxyBody>,
    authority: Authority,
) -> Result<(), UpstreamError> {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(path)
        .build()?;
    *request.version_mut() = Version::HTTP_11;
    Ok(())
}
