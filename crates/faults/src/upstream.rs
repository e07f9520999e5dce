//! The real upstream behind the proxy under test: a small hyper HTTP/1.1 server on
//! `127.0.0.1:0` that answers every request `200 ok` with `x-upstream: faults`, and counts
//! what reaches it. It is the witness of "wrongly allowed under fail-closed": a request the
//! agent must block carries the header [`MUST_BLOCK_HEADER`], and every such request that
//! reaches the upstream is counted in [`Upstream::wrongly_allowed`], whatever the client saw.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::error::FaultError;

/// Header carried by every request the agents must block; the upstream counts any that arrive.
pub const MUST_BLOCK_HEADER: &str = "x-fault-must-block";

/// Response header the upstream sets, so a client can tell its answers from the proxy's.
pub const UPSTREAM_HEADER: &str = "x-upstream";

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    marked: AtomicU64,
}

/// A running upstream; stops when dropped.
pub struct Upstream {
    address: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Binds `127.0.0.1:0` and serves.
    pub async fn start() -> Result<Upstream, FaultError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| FaultError::io("binding the upstream", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| FaultError::io("upstream address", e))?;
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(listener, counters.clone()));
        Ok(Upstream {
            address,
            counters,
            task,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Requests received so far.
    pub fn received(&self) -> u64 {
        self.counters.received.load(Ordering::Relaxed)
    }

    /// Requests carrying [`MUST_BLOCK_HEADER`] received so far: each one was wrongly allowed.
    pub fn wrongly_allowed(&self) -> u64 {
        self.counters.marked.load(Ordering::Relaxed)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, counters: Arc<Counters>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let counters = counters.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let counters = counters.clone();
                async move { Ok::<_, Infallible>(answer(request, &counters).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(request: Request<Incoming>, counters: &Counters) -> Response<Full<Bytes>> {
    counters.received.fetch_add(1, Ordering::Relaxed);
    if request.headers().contains_key(MUST_BLOCK_HEADER) {
        counters.marked.fetch_add(1, Ordering::Relaxed);
    }
    // Read the body so the connection can be reused; its content does not matter.
    let _ = request.into_body().collect().await;
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok\n")));
    response
        .headers_mut()
        .insert(UPSTREAM_HEADER, http::HeaderValue::from_static("faults"));
    response
}
