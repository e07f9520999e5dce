//! The client-facing listener: one task per accepted connection, each served by hyper-util's
//! auto builder (HTTP/1.1, or HTTP/2 with prior knowledge). Shutdown is graceful: accepting
//! stops, every connection is told to finish its in-flight requests and close, and [`serve`]
//! returns once they all have (the caller bounds that wait).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::handler::handle;
use crate::state::ProxyState;

/// Longest a client may take to send a request's headers (HTTP/1.1).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest header block accepted from an HTTP/2 client.
const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;
/// Concurrent streams per HTTP/2 connection.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    builder
}

/// Serves HTTP clients accepted on `listener` with `state` until `shutdown` is cancelled, then
/// stops accepting and returns once every connection has finished its in-flight requests.
pub async fn serve(listener: TcpListener, state: Arc<ProxyState>, shutdown: CancellationToken) {
    let builder = builder();
    let graceful = GracefulShutdown::new();
    let local = listener.local_addr().ok();
    tracing::info!(address = ?local, "HTTP listener serving");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(address = ?local, "accept failed: {e}");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%client, "cannot set TCP_NODELAY: {e}");
        }
        let state = state.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(state, request, client).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%client, "client connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!(address = ?local, connections = graceful.count(), "HTTP listener draining");
    graceful.shutdown().await;
    tracing::info!(address = ?local, "HTTP listener stopped");
}
