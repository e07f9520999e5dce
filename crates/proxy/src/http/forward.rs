//! Sending a request to one target of an upstream group: the keep-alive client (hyper-util's
//! legacy client over HTTP/1.1), the connect and request timeouts, and classifying failures so
//! that only connect errors and timeouts count against a target's health.

use std::time::{Duration, Instant};

use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::ProxyBody;
use super::upstream::UpstreamGroup;

/// A pooled keep-alive HTTP/1.1 client for one upstream group.
pub(crate) type UpstreamClient = Client<HttpConnector, ProxyBody>;

/// How long an idle upstream connection is kept for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A client whose connections give up after `connect_timeout`.
pub(crate) fn client(connect_timeout: Duration) -> UpstreamClient {
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

/// Sends `request` (origin-form URI, headers ready) to the group's next target and waits for
/// the response headers, recording the outcome in the target's health.
pub(crate) async fn send(
    group: &UpstreamGroup,
    mut request: Request<ProxyBody>,
) -> Result<Response<Incoming>, UpstreamError> {
    let index = group
        .pick(Instant::now())
        .ok_or_else(|| UpstreamError::NoTarget(group.config.name.clone()))?;
    let target = &group.targets[index];
    let authority = target
        .authority
        .clone()
        .ok_or_else(|| UpstreamError::BadTarget(target.address.clone()))?;
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

    let timeout = group.config.request_timeout;
    let address = || target.address.clone();
    match tokio::time::timeout(timeout, group.client.request(request)).await {
        Ok(Ok(response)) => {
            group.record_success(index);
            Ok(response)
        }
        Ok(Err(source)) if source.is_connect() => {
            group.record_failure(index, Instant::now());
            Err(UpstreamError::Connect {
                target: address(),
                source,
            })
        }
        Ok(Err(source)) => Err(UpstreamError::Failed {
            target: address(),
            source,
        }),
        Err(_elapsed) => {
            group.record_failure(index, Instant::now());
            Err(UpstreamError::Timeout {
                target: address(),
                timeout,
            })
        }
    }
}
