//! Responses the proxy makes itself: its own errors (404, 413, 502, 503, 504…) and the
//! responses agents ask for (`block`, `redirect`). Agent-given statuses outside their class
//! fall back to the defaults (403 for block, 302 for redirect).

use http::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use http::{Response, StatusCode};
use sentinel_agent_protocol::{DEFAULT_BLOCK_STATUS, DEFAULT_REDIRECT_STATUS};

use super::agents::Stop;
use super::body::{empty, full, ProxyBody};
use super::headers::append_pairs;

const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// A plain-text response with `status` and its reason phrase as body.
pub fn status_response(status: StatusCode) -> Response<ProxyBody> {
    let text = format!(
        "{} {}\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, TEXT);
    response
}

fn status_in(code: u16, range: std::ops::RangeInclusive<u16>, default: u16) -> StatusCode {
    let code = if range.contains(&code) { code } else { default };
    StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN)
}

/// The response for an agent's `block` or `redirect`, or 503 for a closed-mode failure.
pub(crate) fn stop_response(stop: Stop) -> Response<ProxyBody> {
    match stop {
        Stop::Unavailable => status_response(StatusCode::SERVICE_UNAVAILABLE),
        Stop::Block {
            status,
            body,
            headers,
        } => {
            let status = status_in(status, 200..=599, DEFAULT_BLOCK_STATUS);
            let mut response = match body {
                Some(body) => {
                    let mut response = Response::new(full(body));
                    response.headers_mut().insert(CONTENT_TYPE, TEXT);
                    response
                }
                None => status_response(status),
            };
            *response.status_mut() = status;
            if headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                response.headers_mut().remove(CONTENT_TYPE);
            }
            append_pairs(response.headers_mut(), &headers);
            response
        }
        Stop::Redirect { location, status } => {
            let mut response = Response::new(empty());
            *response.status_mut() = status_in(status, 300..=399, DEFAULT_REDIRECT_STATUS);
            if let Ok(location) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(LOCATION, location);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_uses_its_status_body_and_headers() {
        let response = stop_response(Stop::Block {
            status: 451,
            body: Some("nope".into()),
            headers: vec![("x-reason".into(), "legal".into())],
        });
        assert_eq!(response.status(), 451);
        assert_eq!(response.headers()["x-reason"], "legal");
        assert_eq!(response.headers()[CONTENT_TYPE], TEXT);
    }

    #[test]
    fn agent_content_type_replaces_the_default() {
        let response = stop_response(Stop::Block {
            status: 403,
            body: Some("{}".into()),
            headers: vec![("Content-Type".into(), "application/json".into())],
        });
        let types: Vec<_> = response.headers().get_all(CONTENT_TYPE).iter().collect();
        assert_eq!(types, ["application/json"]);
    }

    #[test]
    fn out_of_class_statuses_fall_back_to_defaults() {
        let block = stop_response(Stop::Block {
            status: 101,
            body: None,
            headers: vec![],
        });
        assert_eq!(block.status(), 403);
        let redirect = stop_response(Stop::Redirect {
            location: "/login".into(),
            status: 200,
        });
        assert_eq!(redirect.status(), 302);
        assert_eq!(redirect.headers()[LOCATION], "/login");
        let redirect = stop_response(Stop::Redirect {
            location: "/x".into(),
            status: 308,
        });
        assert_eq!(redirect.status(), 308);
    }

    #[test]
    fn unavailable_is_503() {
        assert_eq!(stop_response(Stop::Unavailable).status(), 503);
    }
}
