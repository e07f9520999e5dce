//! One client request from start to finish: route selection, the request phase with the
//! route's agents, forwarding upstream, the response phase, and the final response with the
//! agents' response header operations applied. Bodies nobody inspects are streamed through.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_LENGTH, HOST};
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::{Body, Incoming};

use super::agents::{AgentChain, Phase, RequestInfo};
use super::body::{prefixed, streamed, ProxyBody};
use super::failure::Failure;
use super::headers::{add_forwarded, remove_hop_by_hop};
use super::inspect::{inspect, Inspected};
use super::normalise;
use super::response::{status_response, stop_response};
use super::routing;
use crate::config::{BodyOverflow, Config, RouteConfig, UpstreamConfig};
use crate::state::ProxyState;

/// Handles one request from `client` and records it in the metrics.
pub(crate) async fn handle(
    state: Arc<ProxyState>,
    request: Request<Incoming>,
    client: SocketAddr,
) -> Response<ProxyBody> {
    let config = state.config();
    let (mut parts, body) = request.into_parts();
    let host = match normalise::host_for_routing(&mut parts) {
        Ok(host) => host,
        Err(status) => return refuse(&state, status),
    };
    let Some(route) = routing::select(&config.routes, host.as_deref(), parts.uri.path()) else {
        return refuse(&state, StatusCode::NOT_FOUND);
    };
    let response = proxy(&state, &config, route, parts, body, client).await;
    state
        .metrics()
        .record_request(&route.name, response.status().as_u16());
    response
}

/// An answer the proxy gives before any route is chosen, recorded under route `-`.
fn refuse(state: &ProxyState, status: StatusCode) -> Response<ProxyBody> {
    state.metrics().record_request("-", status.as_u16());
    status_response(status)
}

async fn proxy(
    state: &Arc<ProxyState>,
    config: &Config,
    route: &RouteConfig,
    parts: Parts,
    body: Incoming,
    client: SocketAddr,
) -> Response<ProxyBody> {
    let Some(upstream) = config.upstream(&route.upstream) else {
        tracing::error!(route = %route.name, upstream = %route.upstream, "route refers to an upstream that is not configured");
        return status_response(StatusCode::BAD_GATEWAY);
    };
    let mut chain = match AgentChain::new(state.clone(), config, &route.agents) {
        Ok(chain) => chain,
        Err(stop) => return stop_response(stop),
    };
    let mut response = match exchange(state, &mut chain, route, upstream, parts, body, client).await
    {
        Ok(response) => {
            chain.finish();
            response
        }
        Err(failure) => {
            failure.log(&route.name);
            chain.log_stop(&route.name);
            chain.set_end_reason(failure.cancel_reason());
            failure.into_response()
        }
    };
    chain.apply_response_ops(response.headers_mut());
    response
}

async fn exchange(
    state: &ProxyState,
    chain: &mut AgentChain,
    route: &RouteConfig,
    upstream: &UpstreamConfig,
    mut parts: Parts,
    body: Incoming,
    client: SocketAddr,
) -> Result<Response<ProxyBody>, Failure> {
    // Request phase.
    let mut headers = std::mem::take(&mut parts.headers);
    remove_hop_by_hop(&mut headers);
    if !headers.contains_key(HOST) {
        if let Some(authority) = parts.uri.authority() {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                headers.insert(HOST, host);
            }
        }
    }
    // A route without agents skips building the event's strings (five allocations a request).
    if !chain.is_empty() {
        let info = RequestInfo {
            method: parts.method.to_string(),
            uri: parts
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_string(),
            version: format!("{:?}", parts.version),
            client_addr: client.to_string(),
            route: route.name.clone(),
            has_body: !body.is_end_stream(),
        };
        chain
            .request_headers(&info, &mut headers)
            .await
            .map_err(Failure::Stopped)?;
    }
    let request_body = if chain.wants_body() {
        check_declared_length(&headers, route, Phase::Request)?;
        let inspected = inspect(
            chain,
            Phase::Request,
            body,
            route.max_body_inspect,
            route.body_overflow,
            Some(&mut headers),
        )
        .await
        .map_err(|e| Failure::from_inspection(e, Phase::Request))?;
        fix_length(&mut headers, &inspected);
        prefixed(inspected.head, inspected.rest)
    } else {
        streamed(body)
    };
    chain.end_request_phase();
    add_forwarded(&mut headers, client.ip(), "http");

    let mut request = Request::new(request_body);
    *request.method_mut() = parts.method;
    *request.uri_mut() = parts.uri;
    *request.headers_mut() = headers;
    let group = state.upstreams().group(upstream);
    let response = group.send(request).await.map_err(Failure::Upstream)?;

    // Response phase.
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    chain
        .response_headers(parts.status.as_u16(), &parts.headers, !body.is_end_stream())
        .await
        .map_err(Failure::Stopped)?;
    let body = if chain.wants_body() {
        check_declared_length(&parts.headers, route, Phase::Response)?;
        let inspected = inspect(
            chain,
            Phase::Response,
            body,
            route.max_body_inspect,
            route.body_overflow,
            None,
        )
        .await
        .map_err(|e| Failure::from_inspection(e, Phase::Response))?;
        fix_length(&mut parts.headers, &inspected);
        prefixed(inspected.head, inspected.rest)
    } else {
        streamed(body)
    };
    Ok(Response::from_parts(parts, body))
}

/// Under `body-overflow reject`, a body declared larger than the limit is refused before any
/// of it is read.
fn check_declared_length(
    headers: &HeaderMap,
    route: &RouteConfig,
    phase: Phase,
) -> Result<(), Failure> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = u64::try_from(route.max_body_inspect).unwrap_or(u64::MAX);
    match declared {
        Some(length) if route.body_overflow == BodyOverflow::Reject && length > limit => {
            Err(Failure::TooLarge(phase))
        }
        _ => Ok(()),
    }
}

/// A body read to its end gets its exact length; one partly replaced and partly streamed loses
/// its (now wrong) length and goes chunked.
fn fix_length<B>(headers: &mut HeaderMap, inspected: &Inspected<B>) {
    if inspected.rest.is_none() {
        let total: usize = inspected.head.iter().map(|b| b.len()).sum();
        headers.insert(CONTENT_LENGTH, HeaderValue::from(total));
    } else if inspected.replaced {
        headers.remove(CONTENT_LENGTH);
    }
}
