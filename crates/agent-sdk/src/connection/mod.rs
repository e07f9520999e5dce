//! One registered connection, from the RegistrationResponse to its end. A single task reads
//! frames and owns all per-connection state (known requests, running handlers, draining); each
//! event runs in its own handler task, at most `max_concurrent_requests` at once; a writer task
//! owns the write half (the protocol crate's batching writer). This module answers Ping, applies Cancel/CancelAll, forwards pushed
//! configuration, notices a silent proxy, and drains on GoAway in either direction. It returns
//! why the connection ended; reconnecting is the runner's job.

mod handler;
mod requests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sentinel_agent_protocol::io::{BoxedStream, FrameReader, FrameWriter, WriteError};
use sentinel_agent_protocol::{Encoding, Frame, GoAway, Message, Ping, Pong, RegistrationRequest};
use serde_json::Value;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::{AbortHandle, JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::handler::{Event, Finished};
use self::requests::{Busy, RequestTable};
use crate::agent::{Agent, Cancelled};
use crate::config::RunnerConfig;
use crate::config_push::ConfigQueue;
use crate::events::{Disconnect, EventSink};
use crate::register::Registered;
use crate::tls::TlsDialer;
use crate::verdict::{Reply, Verdict};

/// What every connection of a runner shares.
pub(crate) struct Shared<A> {
    pub agent: Arc<A>,
    pub config: Arc<RunnerConfig>,
    pub request: RegistrationRequest,
    pub config_queue: ConfigQueue,
    pub events: EventSink,
    /// TLS settings for `tls:` proxies, loaded once.
    pub tls: Option<TlsDialer>,
}

/// Frames queued before the connection task waits for the writer.
const OUTBOUND_QUEUE: usize = 256;

type Reader = FrameReader<ReadHalf<BoxedStream>>;

/// Serves `registered` until it ends, and says why.
pub(crate) async fn serve<A: Agent>(
    registered: Registered,
    shared: &Shared<A>,
    shutdown: &CancellationToken,
) -> Disconnect {
    let Registered {
        stream,
        assigned_id,
        encoding,
        config,
        heartbeat,
    } = registered;
    // No request is served before the pushed configuration is in place.
    shared
        .config_queue
        .apply(config.unwrap_or(Value::Null))
        .await;
    // Frames the proxy sent right behind its response are still in the reader's buffer and
    // are its first reads.
    let (mut reader, frames_out) = stream.split();
    let (out, queue) = mpsc::channel(OUTBOUND_QUEUE);
    let mut writer = tokio::spawn(write_until_closed(
        frames_out,
        queue,
        shared.config.write_timeout,
    ));
    let connection_id: Arc<str> = assigned_id.into();
    let mut connection = Connection {
        agent: shared.agent.clone(),
        config: &shared.config,
        config_queue: &shared.config_queue,
        table: RequestTable::new(connection_id.clone(), shared.config.max_tracked_requests),
        connection_id,
        encoding,
        out,
        permits: Arc::new(Semaphore::new(
            shared.config.max_concurrent_requests as usize,
        )),
        tasks: JoinSet::new(),
        running: HashMap::new(),
        drain: Drain::No,
        bad_frames: 0,
        next_nonce: 1,
    };
    let silence = heartbeat.map(|h| h * shared.config.silent_heartbeats);
    let reason = connection
        .run(&mut reader, &mut writer, silence, shutdown)
        .await;
    let abandoned = if reason == Disconnect::Shutdown {
        "shutdown"
    } else {
        "connection_lost"
    };
    connection.abandon_all(abandoned);
    drop(connection);
    // The queue is closed now: the writer flushes what is left and closes its half.
    if !writer.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    }
    reason
}

/// The writer task: writes the queued frames in batches under the write timeout until the
/// queue closes, then flushes and shuts the write half down so the proxy sees a clean end of
/// stream. `Err` says why it stopped early.
async fn write_until_closed(
    writer: FrameWriter<WriteHalf<BoxedStream>>,
    queue: mpsc::Receiver<Frame>,
    write_timeout: Duration,
) -> Result<(), String> {
    let never_stopped = std::future::pending();
    writer
        .run(queue, write_timeout, never_stopped)
        .await
        .map_err(|e| match e {
            WriteError::Failed(e) => format!("write failed: {e}"),
            WriteError::Stalled(_) => format!("the proxy did not read for {write_timeout:?}"),
        })
}

/// Whether, and how, the connection is winding down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    No,
    /// We sent GoAway; `barrier` is the nonce of the Ping sent right after it: once its Pong is
    /// back, the proxy has seen our GoAway and every event it sent before is in.
    Local {
        deadline: Instant,
        barrier: Option<u64>,
    },
    /// The proxy sent GoAway: serve what comes until it closes or the grace period ends.
    Remote {
        deadline: Instant,
    },
}

struct Connection<'a, A> {
    agent: Arc<A>,
    config: &'a RunnerConfig,
    config_queue: &'a ConfigQueue,
    connection_id: Arc<str>,
    encoding: Encoding,
    out: mpsc::Sender<Frame>,
    permits: Arc<Semaphore>,
    tasks: JoinSet<Finished>,
    running: HashMap<u64, AbortHandle>,
    table: RequestTable,
    drain: Drain,
    bad_frames: u32,
    next_nonce: u64,
}

impl<A: Agent> Connection<'_, A> {
    async fn run(
        &mut self,
        reader: &mut Reader,
        writer: &mut JoinHandle<Result<(), String>>,
        silence: Option<Duration>,
        shutdown: &CancellationToken,
    ) -> Disconnect {
        let mut last_heard = Instant::now();
        let far = Duration::from_secs(86_400 * 365);
        loop {
            if self.drained_locally() {
                return Disconnect::Shutdown;
            }
            let silent_at = last_heard + silence.unwrap_or(far);
            let drain_deadline = match self.drain {
                Drain::No => Instant::now() + far,
                Drain::Local { deadline, .. } | Drain::Remote { deadline } => deadline,
            };
            let step = tokio::select! {
                _ = shutdown.cancelled(), if !matches!(self.drain, Drain::Local { .. }) => {
                    self.begin_local_drain().await
                }
                written = &mut *writer => Err(Disconnect::WriteFailed(match written {
                    Ok(Ok(())) => "the writer stopped".to_string(),
                    Ok(Err(why)) => why,
                    Err(e) => format!("the writer task failed: {e}"),
                })),
                read = reader.read_frame() => match read {
                    Ok(None) if matches!(self.drain, Drain::No) => Err(Disconnect::ProxyClosed),
                    Ok(None) if matches!(self.drain, Drain::Remote { .. }) => Err(Disconnect::Drained),
                    Ok(None) => Err(Disconnect::Shutdown),
                    Err(e) => Err(Disconnect::Protocol(e.to_string())),
                    Ok(Some(frame)) => {
                        last_heard = Instant::now();
                        self.on_frame(&frame).await
                    }
                },
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    self.on_finished(joined).await
                }
                _ = tokio::time::sleep_until(silent_at), if silence.is_some() => {
                    Err(Disconnect::Silent(last_heard.elapsed()))
                }
                _ = tokio::time::sleep_until(drain_deadline), if self.drain != Drain::No => {
                    Err(self.grace_over())
                }
            };
            if let Err(reason) = step {
                return reason;
            }
        }
    }

    fn drained_locally(&self) -> bool {
        matches!(self.drain, Drain::Local { barrier: None, .. })
            && self.running.is_empty()
            && self.table.mid_phase() == 0
    }

    fn grace_over(&self) -> Disconnect {
        if !self.running.is_empty() {
            tracing::warn!(connection = %self.connection_id, in_flight = self.running.len(), "grace period over; abandoning requests still in progress");
        }
        match self.drain {
            Drain::Remote { .. } => Disconnect::Drained,
            _ => Disconnect::Shutdown,
        }
    }

    async fn begin_local_drain(&mut self) -> Result<(), Disconnect> {
        let grace = self.config.drain_grace;
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        let mut deadline = Instant::now() + grace;
        if let Drain::Remote { deadline: remote } = self.drain {
            deadline = deadline.min(remote);
        }
        tracing::info!(connection = %self.connection_id, in_flight = self.running.len(), ?grace, "sending GoAway");
        self.drain = Drain::Local {
            deadline,
            barrier: Some(nonce),
        };
        self.send(Message::GoAway(GoAway {
            reason: "shutdown".into(),
            grace_ms: grace.as_millis() as u64,
        }))
        .await?;
        self.send(Message::Ping(Ping { nonce })).await
    }

    async fn on_frame(&mut self, frame: &Frame) -> Result<(), Disconnect> {
        let Some(message_type) = frame.message_type() else {
            tracing::debug!(connection = %self.connection_id, type_byte = frame.type_byte, "unknown message type ignored");
            return Ok(());
        };
        match Message::from_frame(frame, self.encoding) {
            Ok(message) => {
                self.bad_frames = 0;
                self.on_message(message).await
            }
            Err(e) => {
                self.bad_frames += 1;
                tracing::warn!(connection = %self.connection_id, message = %message_type, "undecodable frame ignored: {e}");
                if self.bad_frames >= self.config.max_consecutive_errors {
                    return Err(Disconnect::Protocol(format!(
                        "{} undecodable frames in a row, the last: {e}",
                        self.bad_frames
                    )));
                }
                Ok(())
            }
        }
    }

    async fn on_message(&mut self, message: Message) -> Result<(), Disconnect> {
        match message {
            Message::RequestHeaders(h) => self.start(Event::RequestHeaders(Arc::from(h))).await,
            Message::RequestBodyChunk(c) => self.start(Event::RequestBody(c)).await,
            Message::ResponseHeaders(h) => self.start(Event::ResponseHeaders(Arc::from(h))).await,
            Message::ResponseBodyChunk(c) => self.start(Event::ResponseBody(c)).await,
            Message::Cancel(cancel) => {
                self.cancel(cancel.request_id, cancel.reason.as_str());
                Ok(())
            }
            Message::CancelAll(cancel) => {
                tracing::info!(connection = %self.connection_id, reason = %cancel.reason, "CancelAll");
                self.abandon_all(cancel.reason.as_str());
                Ok(())
            }
            Message::ConfigUpdate(update) => {
                self.config_queue.push(update.config).await;
                Ok(())
            }
            Message::GoAway(go_away) => {
                self.on_go_away(go_away);
                Ok(())
            }
            Message::Ping(ping) => self.send(Message::Pong(Pong { nonce: ping.nonce })).await,
            Message::Pong(pong) => {
                if let Drain::Local { barrier, .. } = &mut self.drain {
                    if *barrier == Some(pong.nonce) {
                        *barrier = None;
                    }
                }
                Ok(())
            }
            other => {
                tracing::debug!(connection = %self.connection_id, message = %other.message_type(), "message not expected from a proxy; ignored");
                Ok(())
            }
        }
    }

    fn on_go_away(&mut self, go_away: GoAway) {
        let grace = match go_away.grace_ms {
            0 => self.config.drain_grace,
            ms => Duration::from_millis(ms),
        };
        tracing::info!(connection = %self.connection_id, reason = %go_away.reason, ?grace, in_flight = self.running.len(), "the proxy sent GoAway; finishing in-flight requests");
        let deadline = Instant::now() + grace;
        self.drain = match self.drain {
            Drain::No | Drain::Remote { .. } => Drain::Remote { deadline },
            Drain::Local {
                deadline: ours,
                barrier,
            } => Drain::Local {
                deadline: ours.min(deadline),
                barrier,
            },
        };
    }

    async fn start(&mut self, event: Event) -> Result<(), Disconnect> {
        let request_id = event.request_id();
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(connection = %self.connection_id, request_id, "more concurrent events than max_concurrent_requests; refusing one");
            let busy = Verdict::error("overloaded", "max_concurrent_requests reached");
            return self.reply(request_id, busy).await;
        };
        let fresh = matches!(event, Event::RequestHeaders(_));
        let ctx = match self.table.checkout(request_id, fresh) {
            Ok(ctx) => ctx,
            Err(Busy) => {
                let busy = Verdict::error("busy", "an event of this request is still in progress");
                return self.reply(request_id, busy).await;
            }
        };
        let task = handler::run(self.agent.clone(), event, ctx, permit);
        let handle = self.tasks.spawn(task);
        self.running.insert(request_id, handle);
        Ok(())
    }

    async fn on_finished(&mut self, joined: Result<Finished, JoinError>) -> Result<(), Disconnect> {
        let finished = match joined {
            Ok(finished) => finished,
            Err(e) if e.is_cancelled() => return Ok(()),
            Err(e) => {
                tracing::error!(connection = %self.connection_id, "a handler task failed: {e}");
                return Ok(());
            }
        };
        if self.running.remove(&finished.request_id).is_none() {
            // Cancelled while its answer was on the way: the proxy no longer wants it.
            return Ok(());
        }
        let request_id = finished.request_id;
        self.table.checkin(finished.ctx, finished.after);
        self.reply(request_id, finished.verdict).await
    }

    async fn reply(&mut self, request_id: u64, verdict: Verdict) -> Result<(), Disconnect> {
        let message = match verdict.into_reply(request_id) {
            Reply::Decision(decision) => Message::Decision(Box::new(decision)),
            Reply::Error(error) => Message::RequestError(error),
        };
        self.send(message).await
    }

    async fn send(&mut self, message: Message) -> Result<(), Disconnect> {
        let frame = match message.to_frame(self.encoding) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::error!(connection = %self.connection_id, "cannot encode {}: {e}", message.message_type());
                return Ok(());
            }
        };
        self.out
            .send(frame)
            .await
            .map_err(|_| Disconnect::WriteFailed("the writer stopped".into()))
    }

    /// Stops the work on one request and tells the agent.
    fn cancel(&mut self, request_id: u64, reason: &str) {
        let was_running = self
            .running
            .remove(&request_id)
            .map(|h| h.abort())
            .is_some();
        let was_known = self.table.remove(request_id);
        if !(was_running || was_known) {
            tracing::debug!(connection = %self.connection_id, request_id, "Cancel for an unknown or finished request");
            return;
        }
        tracing::debug!(connection = %self.connection_id, request_id, %reason, was_running, "request cancelled");
        let agent = self.agent.clone();
        let cancelled = Cancelled {
            connection_id: self.connection_id.to_string(),
            request_id,
            reason: reason.to_string(),
        };
        tokio::spawn(async move { agent.on_cancel(&cancelled).await });
    }

    /// Cancels every request this connection knows.
    fn abandon_all(&mut self, reason: &str) {
        let mut ids: Vec<u64> = self.running.keys().copied().collect();
        ids.extend(self.table.ids());
        ids.sort_unstable();
        ids.dedup();
        for request_id in ids {
            self.cancel(request_id, reason);
        }
        self.tasks.abort_all();
    }
}
