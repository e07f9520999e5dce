//! Keep-alive HTTP/1.1 connections to one upstream target, without a pool task: a request takes
//! the most recently returned idle connection that is ready (or dials a new one), and the
//! connection comes back to the idle list when its response body has been read to the end —
//! from the body itself ([`UpstreamBody`]), so no task is spawned or woken to return it. A
//! connection whose response was abandoned, or that the target closed, is simply dropped. It
//! does not pick targets or keep their health: that is [`super::group`].

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::client::ConnectError;
use crate::http::body::ProxyBody;

/// How long an idle connection is kept for reuse.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per target; more are closed when they come back.
const MAX_IDLE: usize = 256;
/// Idle connections tried before dialing, so a burst of dead ones cannot make a request loop.
const MAX_REUSE_ATTEMPTS: usize = 4;

/// The connections of one target.
pub(super) struct TargetConnections {
    authority: Authority,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

/// Why a request got no response on this target.
#[derive(Debug)]
pub(super) enum SendFailure {
    /// No connection could be made.
    Connect(ConnectError),
    /// The exchange failed on a connection.
    Exchange(hyper::Error),
}

impl TargetConnections {
    pub(super) fn new(authority: Authority, connect_timeout: Duration) -> Arc<TargetConnections> {
        Arc::new(TargetConnections {
            authority,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub(super) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Sends `request` (origin-form URI) and waits for the response headers. A request that an
    /// idle connection could not start (the target had closed it) goes on a fresh one.
    pub(super) async fn send(
        self: &Arc<Self>,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, SendFailure> {
        if !request.headers().contains_key(HOST) {
            if let Ok(host) = HeaderValue::from_str(self.authority.as_str()) {
                request.headers_mut().insert(HOST, host);
            }
        }
        for _ in 0..MAX_REUSE_ATTEMPTS {
            let Some(mut sender) = self.take_idle(Instant::now()) else {
                break;
            };
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.with_return(response, sender)),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendFailure::Exchange(failed.into_error())),
                },
            }
        }
        let mut sender = self.dial().await.map_err(SendFailure::Connect)?;
        match sender.send_request(request).await {
            Ok(response) => Ok(self.with_return(response, sender)),
            Err(error) => Err(SendFailure::Exchange(error)),
        }
    }

    /// The most recently returned connection that is ready; stale and closed ones are dropped.
    fn take_idle(&self, now: Instant) -> Option<SendRequest<ProxyBody>> {
        let mut idle = self.lock();
        while let Some(candidate) = idle.pop() {
            let fresh = now.saturating_duration_since(candidate.since) < IDLE_TIMEOUT;
            if fresh && candidate.sender.is_ready() {
                return Some(candidate.sender);
            }
        }
        None
    }

    fn give_back(&self, sender: SendRequest<ProxyBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_return(
        self: &Arc<Self>,
        response: Response<Incoming>,
        sender: SendRequest<ProxyBody>,
    ) -> Response<UpstreamBody> {
        response.map(|body| UpstreamBody::new(body, self.clone(), sender))
    }

    /// A new connection, its HTTP/1 handshake done and its driver spawned.
    async fn dial(&self) -> Result<SendRequest<ProxyBody>, ConnectError> {
        let address = self.authority.as_str();
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| ConnectError::TimedOut(self.connect_timeout))?
            .map_err(ConnectError::Io)?;
        stream.set_nodelay(true).map_err(ConnectError::Io)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// A response body from a target; once read to its end, its connection goes back to the idle
/// list. Dropped before its end, the connection is closed with it (HTTP/1 cannot skip the rest).
pub struct UpstreamBody {
    inner: Incoming,
    give_back: Option<(Arc<TargetConnections>, SendRequest<ProxyBody>)>,
}

impl UpstreamBody {
    fn new(
        inner: Incoming,
        home: Arc<TargetConnections>,
        sender: SendRequest<ProxyBody>,
    ) -> UpstreamBody {
        let mut body = UpstreamBody {
            inner,
            give_back: Some((home, sender)),
        };
        body.return_if_done();
        body
    }

    fn return_if_done(&mut self) {
        if self.inner.is_end_stream() {
            self.go_home();
        }
    }

    fn go_home(&mut self) {
        if let Some((home, sender)) = self.give_back.take() {
            home.give_back(sender);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => self.return_if_done(),
            // A chunked body learns it ended only here.
            Poll::Ready(None) => self.go_home(),
            Poll::Ready(Some(Err(_))) => self.give_back = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
