//! Conveniences for reading request events: the path and query of the URI, header look-up by
//! case-insensitive name, the bearer token, and percent-decoding. Pure functions over the
//! protocol's types; nothing here allocates unless it has to decode.

use sentinel_agent_protocol::{HeaderPair, RequestHeaders, ResponseHeaders};

/// Read-only helpers on [`RequestHeaders`].
pub trait RequestHeadersExt {
    /// The path part of the URI, as sent (not decoded): `/login` for `/login?next=%2F`.
    fn path(&self) -> &str;
    /// The raw query after `?`, if any: `next=%2F`.
    fn query(&self) -> Option<&str>;
    /// The query's `name=value` pairs, percent-decoded with `+` as space.
    fn query_pairs(&self) -> Vec<(String, String)>;
    /// The first value of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str>;
    /// Every value of header `name` (case-insensitive), in order.
    fn header_values<'a>(&'a self, name: &'a str) -> Box<dyn Iterator<Item = &'a str> + 'a>;
    /// The token of an `Authorization: Bearer <token>` header.
    fn bearer_token(&self) -> Option<&str>;
}

impl RequestHeadersExt for RequestHeaders {
    fn path(&self) -> &str {
        let end = self.uri.find(['?', '#']).unwrap_or(self.uri.len());
        &self.uri[..end]
    }

    fn query(&self) -> Option<&str> {
        let (_, rest) = self.uri.split_once('?')?;
        Some(rest.split('#').next().unwrap_or(rest))
    }

    fn query_pairs(&self) -> Vec<(String, String)> {
        self.query()
            .map(|q| {
                q.split('&')
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                        (decode_form_component(name), decode_form_component(value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    fn header_values<'a>(&'a self, name: &'a str) -> Box<dyn Iterator<Item = &'a str> + 'a> {
        Box::new(
            self.headers
                .iter()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
        )
    }

    fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }
}

/// Read-only helpers on [`ResponseHeaders`].
pub trait ResponseHeadersExt {
    /// The first value of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str>;
}

impl ResponseHeadersExt for ResponseHeaders {
    fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [HeaderPair], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Decodes `%XX` escapes; malformed escapes stay as written, invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(input: &str) -> String {
    decode(input, false)
}

/// Decodes a query or form component: `%XX` escapes and `+` as space.
pub fn decode_form_component(input: &str) -> String {
    decode(input, true)
}

fn decode(input: &str, plus_is_space: bool) -> String {
    let escaped = input.contains('%') || (plus_is_space && input.contains('+'));
    if !escaped {
        return input.to_string();
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i + 1..i + 3) {
            Some([high, low]) if bytes[i] == b'%' => hex_pair(*high, *low),
            _ => None,
        };
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
            continue;
        }
        match bytes[i] {
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> RequestHeaders {
        RequestHeaders {
            request_id: 1,
            method: "GET".into(),
            uri: uri.into(),
            version: "HTTP/1.1".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            client_addr: String::new(),
            route: String::new(),
            has_body: false,
        }
    }

    #[test]
    fn path_query_and_pairs() {
        let r = request("/login?next=%2Fhome&q=a+b&flag#frag", &[]);
        assert_eq!(r.path(), "/login");
        assert_eq!(r.query(), Some("next=%2Fhome&q=a+b&flag"));
        assert_eq!(
            r.query_pairs(),
            vec![
                ("next".into(), "/home".into()),
                ("q".into(), "a b".into()),
                ("flag".into(), String::new())
            ]
        );
        let bare = request("/plain", &[]);
        assert_eq!((bare.path(), bare.query()), ("/plain", None));
    }

    #[test]
    fn headers_are_case_insensitive_and_repeatable() {
        let r = request(
            "/",
            &[
                ("Cookie", "a=1"),
                ("cookie", "b=2"),
                ("Authorization", "Bearer  tok-1 "),
            ],
        );
        assert_eq!(r.header("COOKIE"), Some("a=1"));
        assert_eq!(
            r.header_values("cookie").collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(r.bearer_token(), Some("tok-1"));
        assert_eq!(
            request("/", &[("authorization", "Basic x")]).bearer_token(),
            None
        );
        assert_eq!(
            request("/", &[("authorization", "Bearer ")]).bearer_token(),
            None
        );
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(percent_decode("%2e%2E%2f"), "../");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a+b"), "a+b");
        assert_eq!(decode_form_component("a+b%20c"), "a b c");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
