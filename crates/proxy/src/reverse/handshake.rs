//! The handshake task of one new connection: check a Unix peer's credentials, run the TLS
//! handshake on a TLS listener, read the RegistrationRequest — all within the handshake
//! timeout — validate it, take a connection slot from the pool, answer, and hand the connection
//! to the pool. Runs in its own task, never in the accept loop.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sentinel_agent_protocol::io::FrameStream;
use sentinel_agent_protocol::{
    is_valid_agent_id, Encoding, Frame, FrameCodec, Message, RegistrationErrorCode,
    RegistrationRequest, RegistrationResponse,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pending::PendingTicket;
use super::{
    ClientIdentity, PeerFilter, RegistrationStats, RegistrationValidator, Rejection, Reloadable,
    ReverseListenerConfig, TlsSlot,
};
use crate::pool::{AgentPool, ConnectionIdentity, ConnectionLimits};
use crate::transport::{BoxedStream, IncomingConnection, Transport};

/// Initial read buffer: most registrations fit; larger ones grow it to the frame's size.
const HANDSHAKE_READ_BUFFER: usize = 1024;

/// Longest rejection message written to the log: the text may quote what a peer sent.
const MAX_LOGGED_MESSAGE: usize = 200;

/// Longest we spend writing a rejection to a peer that may not be reading.
const REJECTION_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What every handshake task of one listener shares.
pub(crate) struct HandshakeContext {
    pub validator: Arc<Reloadable<RegistrationValidator>>,
    pub pool: AgentPool,
    pub stats: Arc<RegistrationStats>,
    pub handshake_timeout: Duration,
    pub connection_limits: ConnectionLimits,
    pub max_frame_length: usize,
    pub max_registration_frame_length: usize,
    /// TLS for the TCP listener, swapped by reloads.
    pub tls: Option<Arc<TlsSlot>>,
    /// Which Unix socket peers may register.
    pub peer_filter: PeerFilter,
}

impl HandshakeContext {
    /// The context for the listener settings in `config`, registering into `pool`.
    pub(crate) fn new(config: &ReverseListenerConfig, pool: AgentPool) -> HandshakeContext {
        HandshakeContext {
            validator: Reloadable::new(RegistrationValidator::new(config)),
            pool,
            stats: Arc::new(RegistrationStats::new(config.failed_registrations)),
            handshake_timeout: config.handshake_timeout,
            connection_limits: ConnectionLimits {
                per_agent: config.max_connections_per_agent,
                total: config.max_agent_connections,
            },
            max_frame_length: config.max_frame_length,
            max_registration_frame_length: config.max_registration_frame_length,
            tls: config.tls.clone().map(TlsSlot::new),
            peer_filter: config.peer_filter.clone(),
        }
    }
}

type Handshaking = FrameStream<BoxedStream>;

pub(crate) async fn run_handshake(
    ctx: Arc<HandshakeContext>,
    incoming: IncomingConnection,
    ticket: PendingTicket,
    shutdown: CancellationToken,
) {
    ctx.stats.handshake_started();
    // One deadline for everything an unregistered peer may take: TLS and the registration.
    let deadline = Instant::now() + ctx.handshake_timeout;
    let IncomingConnection {
        stream,
        transport,
        peer,
        address,
        credentials,
    } = incoming;
    let peer = Peer {
        name: peer,
        address,
    };
    // Decided before the peer has said anything, and answered once its registration has been
    // read, so that the agent reads the reason instead of a broken pipe.
    let peer_refusal = ctx.peer_filter.check(transport, credentials.as_ref()).err();
    let (stream, identity) = if transport == Transport::Tls {
        match secure(&ctx, stream, &peer, deadline, &ticket, &shutdown).await {
            Some(secured) => secured,
            None => {
                ctx.stats.handshake_finished();
                return;
            }
        }
    } else {
        (stream, None)
    };
    let mut framed = FrameStream::with_read_capacity(
        stream,
        FrameCodec::with_max_frame_length(ctx.max_registration_frame_length),
        HANDSHAKE_READ_BUFFER,
    );
    let mut claimed_id = String::new();
    let outcome = tokio::select! {
        first = tokio::time::timeout_at(deadline, framed.read_frame()) => match (first, peer_refusal) {
            (Ok(Ok(None)), _) => {
                tracing::debug!(%peer, %transport, "connection closed before registering");
                ctx.stats.handshake_finished();
                return;
            }
            // A refused peer is refused whatever it sent.
            (_, Some(refusal)) => Err(refusal),
            (Err(_elapsed), None) => Err(Rejection::new(RegistrationErrorCode::Timeout)),
            (Ok(Err(e)), None) => Err(Rejection { code: RegistrationErrorCode::InvalidRequest, message: e.to_string() }),
            (Ok(Ok(Some(frame))), None) => validate(&ctx, &frame, identity.as_ref(), &peer).inspect_err(|_| {
                claimed_id = claimed_agent_id(&frame);
            }),
        },
        _ = ticket.evicted.cancelled() => Err(Rejection {
            code: RegistrationErrorCode::Timeout,
            message: "too many handshakes pending; retry later".into(),
        }),
        _ = shutdown.cancelled() => Err(Rejection::new(RegistrationErrorCode::ShuttingDown)),
    };
    drop(ticket);
    match outcome {
        Ok(request) => accept(&ctx, framed, request, transport, peer, &shutdown).await,
        Err(rejection) => reject(&ctx, framed, rejection, &peer, &claimed_id, &shutdown).await,
    }
    ctx.stats.handshake_finished();
}

/// Who is on the other end of a handshake: a name for logs and, over TCP, the address that
/// failures are throttled by.
struct Peer {
    name: String,
    address: Option<IpAddr>,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Peer {
    /// Counts a failure of this peer and waits the throttle's delay (cut short by shutdown).
    async fn throttle_failure(&self, ctx: &HandshakeContext, shutdown: &CancellationToken) {
        let Some(address) = self.address else {
            return;
        };
        let delay = ctx.stats.throttle().record_failure(address);
        if !delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }
}

/// Whether a rejection says something about the peer rather than the proxy's state: these
/// are what an address is throttled for.
fn counts_as_failure(code: RegistrationErrorCode) -> bool {
    use RegistrationErrorCode::*;
    matches!(
        code,
        InvalidRequest | VersionMismatch | InvalidAgentId | AuthFailed | NotAllowed
    )
}

/// Runs the TLS handshake with the certificates in force now, within the handshake deadline.
/// Returns the encrypted stream and, under mutual TLS, the client certificate's identity; or
/// `None` when the handshake failed (counted and logged; such a peer cannot be answered).
async fn secure(
    ctx: &HandshakeContext,
    stream: BoxedStream,
    peer: &Peer,
    deadline: Instant,
    ticket: &PendingTicket,
    shutdown: &CancellationToken,
) -> Option<(BoxedStream, Option<ClientIdentity>)> {
    let Some(slot) = &ctx.tls else {
        tracing::error!(%peer, "a TLS connection arrived on a listener without TLS settings; closing it");
        return None;
    };
    let tls = slot.current();
    let accepted = tokio::select! {
        accepted = tokio::time::timeout_at(deadline, tls.acceptor().accept(stream)) => accepted,
        _ = ticket.evicted.cancelled() => {
            tracing::debug!(%peer, "TLS handshake dropped: too many handshakes pending");
            ctx.stats.record_tls_failed();
            return None;
        }
        _ = shutdown.cancelled() => return None,
    };
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::info!(%peer, "TLS handshake failed: {e}");
            ctx.stats.record_tls_failed();
            peer.throttle_failure(ctx, shutdown).await;
            return None;
        }
        Err(_elapsed) => {
            tracing::info!(%peer, timeout = ?ctx.handshake_timeout, "TLS handshake did not finish within the handshake timeout");
            ctx.stats.record_tls_failed();
            return None;
        }
    };
    // Under mutual TLS rustls has verified the chain; a certificate we cannot read names
    // nobody, so the agent_id check fails closed.
    let identity = tls.is_mutual().then(|| {
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| ClientIdentity::from_der(leaf))
            .unwrap_or_default()
    });
    Some((Box::new(stream), identity))
}

fn validate(
    ctx: &HandshakeContext,
    frame: &Frame,
    identity: Option<&ClientIdentity>,
    peer: &Peer,
) -> Result<RegistrationRequest, Rejection> {
    let result = ctx
        .validator
        .current()
        .validate_with_identity(frame, identity);
    match &result {
        Ok(request) => tracing::info!(
            %peer,
            agent_id = %request.agent_id,
            capabilities = ?request.capabilities,
            encodings = ?request.encodings,
            "registration request"
        ),
        Err(rejection) => {
            tracing::debug!(%peer, code = %rejection.code, "registration request failed validation")
        }
    }
    result
}

async fn accept(
    ctx: &HandshakeContext,
    mut framed: Handshaking,
    request: RegistrationRequest,
    transport: crate::transport::Transport,
    peer: Peer,
    shutdown: &CancellationToken,
) {
    let reservation = match ctx.pool.reserve(&request.agent_id, ctx.connection_limits) {
        Ok(reservation) => reservation,
        Err(refusal) => {
            let rejection = Rejection {
                code: refusal.code(),
                message: refusal.to_string(),
            };
            return reject(ctx, framed, rejection, &peer, &request.agent_id, shutdown).await;
        }
    };
    let encoding = Encoding::negotiate(
        request.encodings.iter().map(String::as_str),
        &Encoding::SUPPORTED,
    );
    let config = ctx.pool.config_for(&request.agent_id);
    let response = RegistrationResponse::Accepted {
        assigned_id: reservation.assigned_id().to_string(),
        config: config.clone(),
        encoding,
        heartbeat_interval_ms: ctx.pool.settings().heartbeat_interval.as_millis() as u64,
    };
    if let Err(e) = send_response(&mut framed, response, ctx.handshake_timeout).await {
        tracing::info!(%peer, agent_id = %request.agent_id, "could not send registration response: {e}");
        return;
    }
    ctx.stats.record_accepted();
    tracing::info!(%peer, agent_id = %request.agent_id, assigned_id = %reservation.assigned_id(), %transport, %encoding, "agent registered");
    let identity = ConnectionIdentity {
        assigned_id: reservation.assigned_id().to_string(),
        agent_id: request.agent_id,
        transport,
        peer: peer.name,
        capabilities: request.capabilities,
        metadata: request.metadata,
        encoding,
    };
    // Frames the agent sent right behind its registration stay in `framed`'s buffer and are
    // the connection's first reads.
    reservation.activate(identity, config, framed, ctx.max_frame_length);
}

/// The agent id a refused registration claimed, for the log; empty if there is none.
fn claimed_agent_id(frame: &Frame) -> String {
    RegistrationRequest::parse(&frame.payload)
        .map(|r| r.agent_id)
        .unwrap_or_default()
}

async fn reject(
    ctx: &HandshakeContext,
    mut framed: Handshaking,
    rejection: Rejection,
    peer: &Peer,
    agent_id: &str,
    shutdown: &CancellationToken,
) {
    ctx.stats.record_rejected(rejection.code);
    if counts_as_failure(rejection.code) {
        peer.throttle_failure(ctx, shutdown).await;
    }
    // Only a syntactically valid id is logged: anything else came from an unauthenticated peer.
    let agent_id = if is_valid_agent_id(agent_id) {
        agent_id
    } else {
        "-"
    };
    let message = truncated(&rejection.message, MAX_LOGGED_MESSAGE);
    tracing::warn!(%peer, agent_id, code = %rejection.code, message, "registration rejected");
    let response = RegistrationResponse::Rejected {
        error: rejection.code,
        message: rejection.message,
    };
    let _ = send_response(&mut framed, response, REJECTION_WRITE_TIMEOUT).await;
    let _ = tokio::time::timeout(REJECTION_WRITE_TIMEOUT, framed.shutdown()).await;
}

async fn send_response(
    framed: &mut Handshaking,
    response: RegistrationResponse,
    limit: Duration,
) -> Result<(), String> {
    let frame = Message::from(response)
        .to_frame(Encoding::Json)
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(limit, framed.write_frame(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("peer did not read within {limit:?}")),
    }
}

fn truncated(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}
