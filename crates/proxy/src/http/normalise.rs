//! Request normalisation, the step before routing: which host a request is for (the URI's
//! authority wins over `Host`), made the one `Host` the upstream sees, and the requests refused
//! before any route is chosen because routing and the upstream could read them differently
//! (several `Host` headers, a `.` or `..` path segment in any spelling). It owns only that
//! reading of the request head; choosing the route is [`super::routing`], the headers sent
//! upstream are [`super::headers`].

use http::header::{HeaderValue, HOST};
use http::request::Parts;
use http::StatusCode;

/// Normalises the request head for routing and returns the host to route on (`None` when the
/// request names none), or the status to refuse it with (400).
pub(crate) fn host_for_routing(parts: &mut Parts) -> Result<Option<String>, StatusCode> {
    let host = request_host(parts)?;
    // The upstream sees the host the route was chosen on, and only that one.
    if let Some(value) = host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
        parts.headers.insert(HOST, value);
    }
    Ok(host)
}

/// The host a request is for: the URI's authority (absolute-form, HTTP/2 `:authority`) wins
/// over `Host`, as HTTP requires. Refused with 400 when there are several `Host` headers (so
/// routing and the upstream can never disagree about the host) or when the path has a dot
/// segment.
fn request_host(parts: &Parts) -> Result<Option<String>, StatusCode> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() || has_dot_segment(parts.uri.path()) {
        return Err(StatusCode::BAD_REQUEST);
    }
    if let Some(authority) = parts.uri.authority() {
        return Ok(Some(authority.as_str().to_string()));
    }
    match header {
        Some(value) => value
            .to_str()
            .map(|h| Some(h.to_string()))
            .map_err(|_| StatusCode::BAD_REQUEST),
        None => Ok(None),
    }
}

/// Whether the path has a `.` or `..` segment (also percent-encoded). Such paths are refused
/// (400): a prefix route must not be escaped by a path the upstream would normalise elsewhere.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        // Compared in place: one or two dots, each written `.` or `%2e` (either case).
        let (first, rest) = take_dot(segment.as_bytes());
        first && (rest.is_empty() || matches!(take_dot(rest), (true, [])))
    })
}

/// Whether `bytes` starts with `.` or `%2e`/`%2E`, and what follows it.
fn take_dot(bytes: &[u8]) -> (bool, &[u8]) {
    match bytes {
        [b'.', rest @ ..] => (true, rest),
        [b'%', b'2', b'e' | b'E', rest @ ..] => (true, rest),
        _ => (false, bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::has_dot_segment;

    #[test]
    fn dot_segments_are_found_in_every_spelling() {
        for path in [
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a/%2e/b",
            "/a/%2E%2e",
            "/a/.%2E/b",
            "/a/%2e.",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in [
            "/",
            "/a/b",
            "/a/.../b",
            "/a/.b",
            "/a/b./c",
            "/a/%2e%2e%2e",
            "/a/%2ex",
            "/a/%2",
            "/%",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }
}
