//! A client for the proxy's admin API: one plain HTTP/1.1 GET per call on a fresh loopback
//! connection, bounded by a timeout (the harness asks while the proxy is being killed and
//! restarted, so no pooled connection may outlive a proxy). Reading `/metrics` is
//! `sentinel_test_support::prometheus`. What the answers mean for a scenario is decided by
//! [`crate::proxy`].

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::FaultError;

/// `GET path` on `address`; the status and the whole body, or an error after `limit`.
pub async fn get(
    address: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(StatusCode, Bytes), FaultError> {
    get_with_headers(address, path, &[], limit)
        .await
        .map(|(status, _, body)| (status, body))
}

/// `GET path` with `headers` on `address`; the status, response headers and whole body, or
/// an error after `limit`.
pub async fn get_with_headers(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    limit: Duration,
) -> Result<(StatusCode, http::HeaderMap, Bytes), FaultError> {
    let what = format!("GET http://{address}{path}");
    let exchange = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let mut request = Request::get(path).header("host", address.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        driver.abort();
        Ok::<_, String>((parts.status, parts.headers, body))
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(detail)) => Err(FaultError::Http { what, detail }),
        Err(_) => Err(FaultError::Http {
            what,
            detail: format!("no answer within {limit:?}"),
        }),
    }
}
