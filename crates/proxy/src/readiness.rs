//! Start-up readiness of the HTTP listeners. With `wait-for-agents` set, the listeners are bound
//! at start (an address in use still fails start-up) but listen only once every logical agent a
//! route consults has a live connection, or once the wait is over. Until then a client's
//! connection is refused, so a load balancer tries another proxy instead of getting 503s from a
//! proxy whose agents have not dialled in yet (a restart in a rolling upgrade). This module only
//! decides *when* to listen; serving is [`crate::http`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::state::ProxyState;

/// Pending connections the kernel queues for a listener (what `TcpListener::bind` uses).
const BACKLOG: u32 = 1024;

/// A socket bound to `address` that does not accept connections yet.
pub(crate) fn bind(address: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    Ok(socket)
}

/// Starts accepting on a socket from [`bind`].
pub(crate) fn listen(socket: TcpSocket) -> std::io::Result<TcpListener> {
    socket.listen(BACKLOG)
}

/// Whether every agent routes consult has a live connection now.
pub(crate) fn agents_connected(state: &ProxyState) -> bool {
    missing_agents(state).is_empty()
}

fn missing_agents(state: &ProxyState) -> Vec<String> {
    let pool = state.pool();
    state
        .config()
        .routed_agents()
        .into_iter()
        .filter(|name| !pool.has_available(name))
        .collect()
}

/// Waits until every agent routes consult has a live connection, `wait` has passed, or `stop`
/// is cancelled. Returns `true` when the agents are there. Looks again only when the pool
/// reports a change ([`crate::pool::AgentPool::changed`]), not on a timer.
pub(crate) async fn agents_ready(
    state: &ProxyState,
    wait: Duration,
    stop: &CancellationToken,
) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        // Enabled before the look, so a connection joining right after it still wakes us.
        let mut changed = std::pin::pin!(state.pool().changed());
        changed.as_mut().enable();
        let missing = missing_agents(state);
        if missing.is_empty() {
            return true;
        }
        if Instant::now() >= deadline || stop.is_cancelled() {
            tracing::warn!(
                ?missing,
                ?wait,
                "agents still without a connection; opening the HTTP listeners anyway"
            );
            return false;
        }
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = stop.cancelled() => {}
        }
    }
}
