//! The admin listener: `GET /` (the status page), `GET /status.json` (the same facts for
//! scripts and `sentinel status`), `GET /status/view.json` (the page's tables, which its script
//! polls), `GET /metrics` (Prometheus text), `GET /agents` (every registered agent with its
//! metadata and connections, as JSON) and `GET /health`. Read-only; it never shows a token (the
//! pool holds none). With `admin { token-file … }` every path but `/health` answers 401 unless
//! the request carries the token; the token is read from the running configuration on each
//! request, so a reload rotates it.

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

use super::page::render_page;
use super::status::{ListenerAddresses, StatusReport};
use super::view::View;
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
    /// Where the reverse listener listens (for the status page).
    pub listener: ListenerAddresses,
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
    let path = request.uri().path();
    if path != "/health" && !authorized(context, request) {
        return unauthorized();
    }
    match path {
        "/" => with_type(
            StatusCode::OK,
            "text/html; charset=utf-8",
            render_page(&View::of(&StatusReport::gather(context))),
        ),
        "/status.json" => json(&StatusReport::gather(context)),
        "/status/view.json" => json(&View::of(&StatusReport::gather(context))),
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
            "not found; try /, /status.json, /metrics, /agents or /health\n",
        ),
    }
}

/// Whether the request may see the admin endpoints: always without a configured token.
fn authorized(context: &AdminContext, request: &Request<Incoming>) -> bool {
    let config = context.state.config();
    let Some(token) = config.admin.as_ref().and_then(|a| a.token.as_ref()) else {
        return true;
    };
    token.accepts(
        request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    )
}

/// 401 with both challenges: `Basic` makes a browser ask for the token (as the password).
fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "the admin listener needs its token: Authorization: Bearer <token> (or the token as the Basic password)\n",
    );
    for challenge in [
        "Bearer realm=\"sentinel admin\"",
        "Basic realm=\"sentinel admin\", charset=\"UTF-8\"",
    ] {
        response.headers_mut().append(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(challenge),
        );
    }
    response
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_string(value) {
        Ok(body) => with_type(StatusCode::OK, "application/json", body),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the status\n",
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
    // Live figures: never from a cache.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
