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
/// Client connections served at once; beyond it the listener stops accepting until one ends
/// (kept well below the open-files limit so agents can still connect).
const MAX_CLIENT_CONNECTIONS: usize = 16 * 1024;
/// A new connection that sends nothing for this long is closed (HTTP/1.1's header timeout
/// starts only once hyper knows the protocol).
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 pings an idle connection this often and closes it if the ping is not answered
/// within `H2_KEEP_ALIVE_TIMEOUT`.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
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
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// Serves HTTP clients accepted on `listener` with `state` until `shutdown` is cancelled, then
/// stops accepting and returns once every connection has finished its in-flight requests.
pub async fn serve(listener: TcpListener, state: Arc<ProxyState>, shutdown: CancellationToken) {
    let builder = builder();
    let graceful = GracefulShutdown::new();
    let local = listener.local_addr().ok();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENT_CONNECTIONS));
    tracing::info!(address = ?local, "HTTP listener serving");
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
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
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // A connection that never sends a byte is closed without ever reaching hyper, and
            // does not hold up a shutdown.
            let first_byte = tokio::select! {
                ready = tokio::time::timeout(FIRST_BYTE_TIMEOUT, stream.readable()) => ready.is_ok(),
                _ = stopping.cancelled() => false,
            };
            if !first_byte {
                tracing::debug!(%client, "client sent nothing; closing");
                return;
            }
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, request, client).await) }
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%client, "client connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!(address = ?local, connections = graceful.count(), "HTTP listener draining");
    graceful.shutdown().await;
    tracing::info!(address = ?local, "HTTP listener stopped");
}
