//! The client side of `/status.json`, for `sentinel agents` and `sentinel status`: one GET to a
//! running proxy's admin listener, with the admin token when one is given, under a timeout and
//! a size bound. It fetches and parses; the tables are [`super::view`]'s.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::status::StatusReport;

/// Longest the whole exchange may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest status document accepted.
const MAX_STATUS_BYTES: usize = 16 * 1024 * 1024;

/// Why the status could not be fetched. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum StatusFetchError {
    /// `ADDR` is neither `host:port` nor `http://host:port`.
    #[error("`{0}` is not an admin address; give host:port, e.g. 127.0.0.1:9901")]
    BadAddress(String),
    /// No connection or no answer.
    #[error("cannot reach the admin listener at {address}: {reason}")]
    Unreachable {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The listener wants a token (none or a wrong one was given).
    #[error("the admin listener at {0} answered 401: pass its token with --token-file FILE")]
    Unauthorized(String),
    /// Any other non-200 answer.
    #[error("the admin listener at {address} answered {status}")]
    Status {
        /// The address.
        address: String,
        /// The status.
        status: StatusCode,
    },
    /// The body is not a status report (an older proxy, or not a sentinel).
    #[error("the answer from {address} is not a sentinel status report: {reason}")]
    NotAReport {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
}

/// `GET /status.json` from the admin listener at `address` (`host:port` or `http://host:port`).
pub async fn fetch_status(
    address: &str,
    token: Option<&str>,
) -> Result<StatusReport, StatusFetchError> {
    let base = address.trim().trim_end_matches('/');
    let base = base.strip_prefix("http://").unwrap_or(base);
    if base.is_empty() || base.contains('/') || base.contains('@') {
        return Err(StatusFetchError::BadAddress(address.to_string()));
    }
    let mut request = Request::get(format!("http://{base}/status.json"));
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|_| StatusFetchError::BadAddress(address.to_string()))?;
    let unreachable = |reason: String| StatusFetchError::Unreachable {
        address: base.to_string(),
        reason,
    };
    let client = Client::builder(TokioExecutor::new()).build_http();
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_STATUS_BYTES)
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        Ok::<_, StatusFetchError>((status, body))
    };
    let (status, body) = tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable(format!("no answer within {FETCH_TIMEOUT:?}")))??;
    match status {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED => return Err(StatusFetchError::Unauthorized(base.to_string())),
        status => {
            return Err(StatusFetchError::Status {
                address: base.to_string(),
                status,
            })
        }
    }
    serde_json::from_slice(&body).map_err(|e| StatusFetchError::NotAReport {
        address: base.to_string(),
        reason: e.to_string(),
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
