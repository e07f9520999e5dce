//! Route selection: the first configured route whose conditions all hold. A path prefix is a
//! plain string prefix of the request path; a host is compared case-insensitively without its
//! port (and without a trailing dot), and `*.example.com` matches any subdomain of
//! `example.com` but not `example.com` itself.

use crate::config::{RouteConfig, RouteMatch};

/// The first route of `routes` matching a request for `host` (as sent: it may carry a port;
/// `None` when the request named no host) and `path`.
pub fn select<'a>(
    routes: &'a [RouteConfig],
    host: Option<&str>,
    path: &str,
) -> Option<&'a RouteConfig> {
    let host = host.map(host_without_port);
    routes.iter().find(|r| matches(&r.matches, host, path))
}

fn matches(m: &RouteMatch, host: Option<&str>, path: &str) -> bool {
    if let Some(prefix) = &m.path_prefix {
        if !path.starts_with(prefix.as_str()) {
            return false;
        }
    }
    match (&m.host, host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(pattern), Some(host)) => host_matches(pattern, host),
    }
}

/// Whether `host` (already without port) matches `pattern` (`example.com` or `*.example.com`).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            let Some(cut) = host.len().checked_sub(suffix.len() + 1) else {
                return false;
            };
            cut > 0
                && host.is_char_boundary(cut)
                && host.as_bytes()[cut] == b'.'
                && host[cut + 1..].eq_ignore_ascii_case(suffix)
        }
        None => host.eq_ignore_ascii_case(pattern),
    }
}

/// `host[:port]` or `[v6]:port` without the port and without a trailing dot.
pub fn host_without_port(host: &str) -> &str {
    let host = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
            _ => host,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, prefix: Option<&str>, host: Option<&str>) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            matches: RouteMatch {
                path_prefix: prefix.map(Into::into),
                host: host.map(Into::into),
            },
            upstream: "u".into(),
            agents: vec![],
            max_body_inspect: 1024,
            body_overflow: Default::default(),
        }
    }

    fn pick<'a>(routes: &'a [RouteConfig], host: Option<&str>, path: &str) -> Option<&'a str> {
        select(routes, host, path).map(|r| r.name.as_str())
    }

    #[test]
    fn first_matching_route_wins() {
        let routes = [
            route("api", Some("/api"), None),
            route("all", Some("/"), None),
            route("never", Some("/api/v2"), None),
        ];
        assert_eq!(pick(&routes, None, "/api/v2/x"), Some("api"));
        assert_eq!(pick(&routes, None, "/other"), Some("all"));
    }

    #[test]
    fn no_route_matches() {
        let routes = [route("api", Some("/api"), None)];
        assert_eq!(pick(&routes, Some("a"), "/"), None);
        assert_eq!(pick(&[], Some("a"), "/"), None);
    }

    #[test]
    fn host_is_case_insensitive_and_ignores_the_port() {
        let routes = [route("ex", None, Some("Example.COM"))];
        assert_eq!(pick(&routes, Some("example.com:8080"), "/"), Some("ex"));
        assert_eq!(pick(&routes, Some("EXAMPLE.com."), "/"), Some("ex"));
        assert_eq!(pick(&routes, Some("example.org"), "/"), None);
        assert_eq!(pick(&routes, None, "/"), None);
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.B.Example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "aexample.com"));
        assert!(!host_matches("*.example.com", ".example.com"));
        assert!(!host_matches("*.example.com", "a.example.org"));
        assert!(!host_matches("*.example.com", "é.example.co"));
        assert!(!host_matches("*.éxample.com", "aéxample.com"));
        assert!(host_matches("*.éxample.com", "é.éxample.com"));
    }

    #[test]
    fn both_conditions_must_hold() {
        let routes = [
            route("both", Some("/admin"), Some("*.corp.test")),
            route("rest", None, None),
        ];
        assert_eq!(pick(&routes, Some("x.corp.test"), "/admin/a"), Some("both"));
        assert_eq!(pick(&routes, Some("x.corp.test"), "/public"), Some("rest"));
        assert_eq!(pick(&routes, Some("corp.test"), "/admin"), Some("rest"));
    }

    #[test]
    fn ports_and_ipv6_are_stripped() {
        assert_eq!(host_without_port("a.test:80"), "a.test");
        assert_eq!(host_without_port("a.test"), "a.test");
        assert_eq!(host_without_port("[::1]:8080"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("a.test:x"), "a.test:x");
    }
}
