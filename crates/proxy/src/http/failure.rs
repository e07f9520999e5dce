//! [`Failure`]: why the proxy answers a request itself instead of passing on the upstream's
//! response, and which [`Side`] of the exchange caused it. From a failure derive the response
//! the client gets, the Cancel reason for agents still expecting events, and the log line.
//! Failures before a route's agents and upstream are known (no route, bad host) are not
//! failures of an exchange and stay in `handler`; agents' own failures (timeouts, errors,
//! failure modes) are told apart and counted in `agents`.

use http::{Response, StatusCode};
use sentinel_agent_protocol::CancelReason;

use super::agents::{Phase, Stop};
use super::body::{BoxError, ProxyBody};
use super::inspect::InspectError;
use super::response::{status_response, stop_response};
use super::UpstreamError;

/// The party a failure is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    /// The client: its request body failed, stalled or was too large.
    Client,
    /// An agent: it blocked or redirected the request, or gave no verdict in closed mode.
    Agent,
    /// The upstream: unreachable, slow, or its response failed, stalled or was too large.
    Upstream,
    /// The proxy itself: it could not build the upstream request from its configuration.
    Proxy,
}

impl Side {
    /// The side as a log field value, e.g. `upstream`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Agent => "agent",
            Side::Upstream => "upstream",
            Side::Proxy => "proxy",
        }
    }

    /// Who sends the body of `phase`.
    fn sending(phase: Phase) -> Side {
        match phase {
            Phase::Request => Side::Client,
            Phase::Response => Side::Upstream,
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the proxy answers instead of the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("an agent stopped the request: {0:?}")]
    Stopped(Stop),
    #[error("the {0:?} body exceeds the route's inspection limit")]
    TooLarge(Phase),
    #[error("reading the client's request body failed: {0}")]
    ClientBody(BoxError),
    #[error(transparent)]
    Upstream(UpstreamError),
    #[error("reading the upstream's response body failed: {0}")]
    UpstreamBody(BoxError),
    #[error("the {0:?} body stalled while agents were inspecting it")]
    Stalled(Phase),
}

impl Failure {
    /// The failure that ends the request when inspecting the body of `phase` failed.
    pub(crate) fn from_inspection(error: InspectError, phase: Phase) -> Failure {
        match (error, phase) {
            (InspectError::Stopped(stop), _) => Failure::Stopped(stop),
            (InspectError::TooLarge, phase) => Failure::TooLarge(phase),
            (InspectError::Body(e), Phase::Request) => Failure::ClientBody(e),
            (InspectError::Body(e), Phase::Response) => Failure::UpstreamBody(e),
            (InspectError::Stalled, phase) => Failure::Stalled(phase),
        }
    }

    /// Which side of the exchange failed.
    pub(crate) fn side(&self) -> Side {
        match self {
            Failure::Stopped(_) => Side::Agent,
            Failure::TooLarge(phase) | Failure::Stalled(phase) => Side::sending(*phase),
            Failure::ClientBody(_) => Side::Client,
            Failure::UpstreamBody(_) => Side::Upstream,
            Failure::Upstream(
                UpstreamError::NoTarget(_) | UpstreamError::BadTarget(_) | UpstreamError::Uri(_),
            ) => Side::Proxy,
            Failure::Upstream(_) => Side::Upstream,
        }
    }

    /// The reason given in Cancel to agents still expecting events. Every failure on the
    /// upstream's path, the proxy's own included, is an `upstream_error` to the agents.
    pub(crate) fn cancel_reason(&self) -> CancelReason {
        match self {
            Failure::Stopped(Stop::Unavailable) => CancelReason::AgentUnavailable,
            Failure::Stopped(_) => CancelReason::Blocked,
            Failure::TooLarge(_) => CancelReason::BodyTooLarge,
            Failure::ClientBody(_) | Failure::Stalled(Phase::Request) => {
                CancelReason::ClientDisconnected
            }
            Failure::Upstream(_) | Failure::UpstreamBody(_) | Failure::Stalled(Phase::Response) => {
                CancelReason::UpstreamError
            }
        }
    }

    /// Agents' failures are logged where their verdict is read (`agents`); the others here.
    pub(crate) fn log(&self, route: &str) {
        if self.side() != Side::Agent {
            tracing::warn!(route = %route, side = %self.side(), "{self}");
        }
    }

    /// The response the client gets.
    pub(crate) fn into_response(self) -> Response<ProxyBody> {
        match self {
            Failure::Stopped(stop) => stop_response(stop),
            Failure::TooLarge(Phase::Request) => status_response(StatusCode::PAYLOAD_TOO_LARGE),
            // Nothing reaches the client uninspected.
            Failure::TooLarge(Phase::Response) => status_response(StatusCode::BAD_GATEWAY),
            Failure::ClientBody(_) => status_response(StatusCode::BAD_REQUEST),
            Failure::Upstream(e) => status_response(e.status()),
            Failure::UpstreamBody(_) => status_response(StatusCode::BAD_GATEWAY),
            Failure::Stalled(Phase::Request) => status_response(StatusCode::REQUEST_TIMEOUT),
            Failure::Stalled(Phase::Response) => status_response(StatusCode::GATEWAY_TIMEOUT),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn upstream_timeout() -> Failure {
        Failure::Upstream(UpstreamError::Timeout {
            target: "127.0.0.1:1".into(),
            timeout: Duration::from_secs(1),
        })
    }

    #[test]
    fn each_failure_names_its_side_cancel_reason_and_status() {
        let cases = [
            (
                Failure::Stopped(Stop::Unavailable),
                Side::Agent,
                "agent_unavailable",
                503,
            ),
            (
                Failure::Stopped(Stop::Redirect {
                    location: "/".into(),
                    status: 302,
                }),
                Side::Agent,
                "blocked",
                302,
            ),
            (
                Failure::TooLarge(Phase::Request),
                Side::Client,
                "body_too_large",
                413,
            ),
            (
                Failure::TooLarge(Phase::Response),
                Side::Upstream,
                "body_too_large",
                502,
            ),
            (
                Failure::ClientBody("reset".into()),
                Side::Client,
                "client_disconnected",
                400,
            ),
            (
                Failure::Stalled(Phase::Request),
                Side::Client,
                "client_disconnected",
                408,
            ),
            (
                Failure::Stalled(Phase::Response),
                Side::Upstream,
                "upstream_error",
                504,
            ),
            (
                Failure::UpstreamBody("reset".into()),
                Side::Upstream,
                "upstream_error",
                502,
            ),
            (upstream_timeout(), Side::Upstream, "upstream_error", 504),
            (
                Failure::Upstream(UpstreamError::NoTarget("web".into())),
                Side::Proxy,
                "upstream_error",
                502,
            ),
        ];
        for (failure, side, reason, status) in cases {
            let name = format!("{failure:?}");
            assert_eq!(failure.side(), side, "{name}");
            assert_eq!(failure.cancel_reason(), reason, "{name}");
            assert_eq!(failure.into_response().status(), status, "{name}");
        }
    }
}
