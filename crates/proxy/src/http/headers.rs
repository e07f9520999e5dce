//! Header handling that does not depend on sockets: hop-by-hop removal (both directions),
//! `x-forwarded-for` / `x-forwarded-proto`, agents' header operations, and the ordered
//! `[name, value]` pairs agents are sent. Headers that frame the message (`content-length` and
//! the hop-by-hop ones) are the proxy's business: agents' operations on them are ignored.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH};
use sentinel_agent_protocol::{HeaderOp, HeaderPair};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1, plus the
/// non-standard `keep-alive` and `proxy-connection`). Every `proxy-*` header is dropped too.
const HOP_BY_HOP: [HeaderName; 6] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

/// Whether `name` is hop-by-hop whatever the `Connection` header says.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name.as_str().starts_with("proxy-")
}

/// Whether agents may not touch `name`: it frames the message on one hop.
fn is_protected(name: &HeaderName) -> bool {
    is_hop_by_hop(name) || name == CONTENT_LENGTH
}

/// Removes the hop-by-hop headers: `Connection` and every header it names, `Keep-Alive`,
/// `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let fixed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name))
        .cloned()
        .collect();
    for name in fixed {
        headers.remove(name);
    }
}

/// Appends the client's address to `x-forwarded-for` (joining earlier values into one) and sets
/// `x-forwarded-proto`.
pub fn add_forwarded(headers: &mut HeaderMap, client: IpAddr, proto: &'static str) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let client = client.to_canonical().to_string();
    let mut earlier: Vec<&str> = headers
        .get_all(&xff)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    earlier.push(&client);
    let joined = earlier.join(", ");
    if let Ok(value) = HeaderValue::from_str(&joined) {
        headers.insert(xff, value);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    );
}

/// Applies `ops` in order: `set` replaces every value, `add` appends one, `remove` drops every
/// value. Operations with an invalid name or value, or on a framing header, are skipped and
/// counted in the result.
pub fn apply_ops(headers: &mut HeaderMap, ops: &[HeaderOp]) -> usize {
    let mut skipped = ops.len().saturating_sub(MAX_HEADER_OPS);
    for op in ops.iter().take(MAX_HEADER_OPS) {
        let name = match op {
            HeaderOp::Set { name, .. } | HeaderOp::Add { name, .. } | HeaderOp::Remove { name } => {
                name
            }
        };
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            skipped += 1;
            continue;
        };
        if is_protected(&name) {
            skipped += 1;
            continue;
        }
        match op {
            HeaderOp::Remove { .. } => {
                headers.remove(&name);
            }
            HeaderOp::Set { value, .. } | HeaderOp::Add { value, .. } => {
                let Ok(value) = HeaderValue::from_str(value) else {
                    skipped += 1;
                    continue;
                };
                // `try_*`: a map at its size limit refuses instead of panicking.
                let applied = if matches!(op, HeaderOp::Set { .. }) {
                    headers.try_insert(name, value).is_ok()
                } else {
                    headers.try_append(name, value).is_ok()
                };
                if !applied {
                    skipped += 1;
                }
            }
        }
    }
    skipped
}

/// Most header operations (or block headers) applied from one list; an agent cannot make the
/// proxy build arbitrarily large header maps.
pub const MAX_HEADER_OPS: usize = 64;

/// Adds `pairs` (a block decision's headers) to `headers`, skipping invalid and framing ones.
pub fn append_pairs(headers: &mut HeaderMap, pairs: &[HeaderPair]) {
    for (name, value) in pairs.iter().take(MAX_HEADER_OPS) {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        if !is_protected(&name) {
            let _ = headers.try_append(name, value);
        }
    }
}

/// `headers` as ordered `[name, value]` pairs; repeated names stay repeated. Values that are
/// not UTF-8 are converted lossily.
pub fn to_pairs(headers: &HeaderMap) -> Vec<HeaderPair> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (n, v) in pairs {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        headers
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        names.sort();
        names
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-secret-hop", "1"),
            ("x-other", "2"),
            ("x-end-to-end", "3"),
            ("host", "a.test"),
        ]);
        remove_hop_by_hop(&mut headers);
        assert_eq!(names(&headers), ["host", "x-end-to-end"]);
    }

    #[test]
    fn forwarded_for_appends_to_earlier_values() {
        let mut headers = map(&[
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        add_forwarded(&mut headers, "192.0.2.9".parse().unwrap(), "http");
        let all: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(all, ["203.0.113.1, 10.0.0.1, 192.0.2.9"]);
        assert_eq!(headers["x-forwarded-proto"], "http");

        let mut headers = HeaderMap::new();
        add_forwarded(&mut headers, "::ffff:127.0.0.1".parse().unwrap(), "http");
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn ops_set_add_remove_in_order() {
        let mut headers = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("x-user", "mallory")]);
        let ops = vec![
            HeaderOp::Set {
                name: "x-user".into(),
                value: "alice".into(),
            },
            HeaderOp::Add {
                name: "x-tag".into(),
                value: "one".into(),
            },
            HeaderOp::Add {
                name: "X-Tag".into(),
                value: "two".into(),
            },
            HeaderOp::Remove {
                name: "Cookie".into(),
            },
        ];
        assert_eq!(apply_ops(&mut headers, &ops), 0);
        assert_eq!(
            headers.get_all("x-user").iter().collect::<Vec<_>>(),
            ["alice"]
        );
        assert_eq!(
            headers.get_all("x-tag").iter().collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert!(headers.get("cookie").is_none());
    }

    #[test]
    fn invalid_and_framing_ops_are_skipped() {
        let mut headers = map(&[("content-length", "5")]);
        let ops = vec![
            HeaderOp::Set {
                name: "bad name".into(),
                value: "x".into(),
            },
            HeaderOp::Set {
                name: "x-ok".into(),
                value: "line\nbreak".into(),
            },
            HeaderOp::Set {
                name: "content-length".into(),
                value: "999".into(),
            },
            HeaderOp::Add {
                name: "transfer-encoding".into(),
                value: "chunked".into(),
            },
            HeaderOp::Remove {
                name: "content-length".into(),
            },
            HeaderOp::Add {
                name: "x-fine".into(),
                value: "yes".into(),
            },
        ];
        assert_eq!(apply_ops(&mut headers, &ops), 5);
        assert_eq!(headers["content-length"], "5");
        assert_eq!(headers["x-fine"], "yes");
        assert!(headers.get("transfer-encoding").is_none());
    }

    #[test]
    fn pairs_keep_repeated_names() {
        let headers = map(&[("cookie", "a=1"), ("host", "h"), ("cookie", "b=2")]);
        let pairs = to_pairs(&headers);
        let cookies: Vec<_> = pairs
            .iter()
            .filter(|(n, _)| n == "cookie")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(pairs.len(), 3);
    }

    #[test]
    fn block_headers_skip_framing_ones() {
        let mut headers = HeaderMap::new();
        append_pairs(
            &mut headers,
            &[
                ("x-reason".into(), "waf".into()),
                ("connection".into(), "close".into()),
                ("content-length".into(), "1".into()),
                ("bad name".into(), "x".into()),
            ],
        );
        assert_eq!(names(&headers), ["x-reason"]);
    }
}
