//! The admin listener: `GET /metrics` (Prometheus text), `GET /agents` (every registered agent
//! with its metadata and connections, as JSON) and `GET /health`. Read-only; it never shows a
//! token (the pool holds none).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::reverse::RegistrationStats;
use crate::state::ProxyState;

/// Longest an admin client may take to send its request headers.
const ADMIN_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminContext {
    /// The running proxy.
    pub state: Arc<ProxyState>,
    /// Registration counters of the reverse listener, if there is one.
    pub registrations: Option<Arc<RegistrationStats>>,
    /// Cancelled when the proxy starts shutting down (`/health` then answers 503).
    pub shutdown: CancellationToken,
}

/// Serves the admin endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve_admin(listener: TcpListener, context: AdminContext, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("admin accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let context = context.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let context = context.clone();
                async move { Ok::<_, Infallible>(respond(&context, &request)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(ADMIN_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(ADMIN_HEADER_TIMEOUT, connection).await;
                }
            }
        });
    }
}

fn respond(context: &AdminContext, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported\n");
    }
    match request.uri().path() {
        "/metrics" => {
            let body = context
                .state
                .metrics()
                .render(context.state.pool(), context.registrations.as_ref());
            with_type(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            )
        }
        "/agents" => {
            let agents = context.state.pool().snapshot();
            let body = serde_json::json!({ "agents": agents });
            with_type(StatusCode::OK, "application/json", body.to_string())
        }
        "/health" => {
            if context.shutdown.is_cancelled() {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else {
                text(StatusCode::OK, "ok\n")
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /agents or /health\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", body.to_string())
}

fn with_type(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
