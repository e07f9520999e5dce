//! The client-facing listener: one task per accepted connection, each served by hyper-util's
//! auto builder (HTTP/1.1, or HTTP/2 with prior knowledge). Shutdown is graceful: accepting
//! stops, every connection is told to finish its in-flight requests and close, and [`serve`]
//! returns once they all have (the caller bounds that wait). A connection the kernel had
//! already completed when shutdown began (still in the accept queue, or accepted but with its
//! first request still on the way) is not reset: it is served one request, then closed, so a
//! client only ever sees a refused connection or an answer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
/// During shutdown, how long a connection accepted but silent so far may take to send its
/// request (it was connected before the listener closed; the bytes are normally in flight).
const DRAIN_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(1);

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
    let local = listener.local_addr().ok();
    let connections = Connections {
        builder: builder(),
        graceful: GracefulShutdown::new(),
        tracker: TaskTracker::new(),
        state,
        shutdown: shutdown.clone(),
    };
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
        match accepted {
            Ok((stream, client)) => connections.spawn(stream, client, Some(slot)),
            Err(e) => {
                tracing::warn!(address = ?local, "accept failed: {e}");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        }
    }
    let late = take_accept_queue(listener, &connections);
    tracing::info!(address = ?local, connections = connections.graceful.count(), late, "HTTP listener draining");
    let Connections {
        graceful, tracker, ..
    } = connections;
    graceful.shutdown().await;
    tracker.close();
    tracker.wait().await;
    tracing::info!(address = ?local, "HTTP listener stopped");
}

/// Closing a listener resets the connections still in its accept queue, yet their clients
/// connected before the shutdown: they are taken and answered instead. The queue is read with
/// the accept system call itself, not through the reactor, which may not have seen the newest
/// ones yet. Returns how many there were; the listener is closed on return.
fn take_accept_queue(listener: TcpListener, connections: &Connections) -> usize {
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!("cannot read the accept queue before closing: {e}");
            return 0;
        }
    };
    let mut late = 0;
    // Non-blocking (as tokio left it): ends at WouldBlock, when the queue is empty.
    while let Ok((stream, client)) = listener.accept() {
        let stream = stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(stream));
        match stream {
            Ok(stream) => {
                connections.spawn(stream, client, None);
                late += 1;
            }
            Err(e) => tracing::debug!(%client, "cannot serve a queued connection: {e}"),
        }
    }
    late
}

/// What every client connection task needs.
struct Connections {
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
    tracker: TaskTracker,
    state: Arc<ProxyState>,
    shutdown: CancellationToken,
}

impl Connections {
    fn spawn(
        &self,
        stream: TcpStream,
        client: std::net::SocketAddr,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%client, "cannot set TCP_NODELAY: {e}");
        }
        let state = self.state.clone();
        let mut builder = self.builder.clone();
        let watcher = self.graceful.watcher();
        let stopping = self.shutdown.clone();
        self.tracker.spawn(async move {
            let _slot = slot;
            // A connection that never sends a byte is closed without ever reaching hyper, and
            // does not hold up a shutdown for long.
            let first_byte = tokio::select! {
                sent = tokio::time::timeout(FIRST_BYTE_TIMEOUT, has_data(&stream)) => sent.unwrap_or(false),
                _ = stopping.cancelled() => {
                    tokio::time::timeout(DRAIN_FIRST_BYTE_TIMEOUT, has_data(&stream)).await.unwrap_or(false)
                }
            };
            if !first_byte {
                tracing::debug!(%client, "client sent nothing; closing");
                return;
            }
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, request, client).await) }
            });
            if stopping.is_cancelled() {
                // Shutdown has begun: answer this one request and close.
                builder.http1().keep_alive(false);
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                if let Err(e) = connection.await {
                    tracing::debug!(%client, "client connection ended with an error: {e}");
                }
                return;
            }
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%client, "client connection ended with an error: {e}");
            }
        });
    }
}

/// Waits for the client's first byte without consuming it; `false` on end of stream or error.
async fn has_data(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.peek(&mut byte).await, Ok(n) if n > 0)
}
