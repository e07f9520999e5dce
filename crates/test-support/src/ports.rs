//! Loopback ports without races: a listener is bound on `127.0.0.1:0` and *kept*, its port
//! read back; a child process is given port 0 and its bound addresses are read from its own
//! start-up log line ([`SentinelAddresses::from_log`]). There is deliberately no "free port"
//! that binds and releases: another process could take the port in between.

use std::net::{Ipv4Addr, SocketAddr};

/// `127.0.0.1:0`: any free loopback port, for a configuration the child binds itself.
pub const ANY_LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// A blocking listener on a free loopback port; its address is `local_addr()`.
pub fn bind_loopback() -> std::io::Result<(std::net::TcpListener, SocketAddr)> {
    let listener = std::net::TcpListener::bind(ANY_LOOPBACK)?;
    let address = listener.local_addr()?;
    Ok((listener, address))
}

/// A tokio listener on a free loopback port, with its address.
pub async fn bind_loopback_async() -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(ANY_LOOPBACK).await?;
    let address = listener.local_addr()?;
    Ok((listener, address))
}

/// The addresses a `sentinel` process bound, as its `sentinel started` log line (level info)
/// names them: how a harness learns the ports of a proxy it started with port 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelAddresses {
    /// The HTTP listeners, in configuration order.
    pub http: Vec<SocketAddr>,
    /// The admin listener, if configured.
    pub admin: Option<SocketAddr>,
    /// The reverse listener's TCP address, if configured.
    pub agents_tcp: Option<SocketAddr>,
}

impl SentinelAddresses {
    /// The message of the proxy's start-up line.
    pub const STARTED: &'static str = "sentinel started";

    /// Reads the last `sentinel started` line of `log` (colour codes are ignored); `None`
    /// until the proxy has written it.
    pub fn from_log(log: &str) -> Option<SentinelAddresses> {
        let line = log
            .lines()
            .rev()
            .map(strip_ansi)
            .find(|line| line.contains(Self::STARTED))?;
        let http = field(&line, "http")?;
        let http = http
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().ok())
            .collect::<Option<Vec<SocketAddr>>>()?;
        Some(SentinelAddresses {
            http,
            admin: optional_address(&field(&line, "admin")?)?,
            agents_tcp: optional_address(&field(&line, "agents_tcp")?)?,
        })
    }
}

/// The value of `name=…` in a tracing line: up to the next ` key=` (values such as `[a, b]`
/// contain spaces, so split on the field boundary rather than on whitespace).
fn field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    let end = rest
        .match_indices(' ')
        .map(|(i, _)| i)
        .find(|&i| {
            let after = &rest[i + 1..];
            after
                .split_once('=')
                .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        })
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// `Some(ADDR)` → `Some(Some(addr))`, `None` → `Some(None)`, anything else → `None`.
fn optional_address(value: &str) -> Option<Option<SocketAddr>> {
    if value == "None" {
        return Some(None);
    }
    let inner = value.strip_prefix("Some(")?.strip_suffix(')')?;
    inner.parse().ok().map(Some)
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip `[` and parameters up to the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_listener_keeps_its_port() {
        let (listener, address) = bind_loopback().expect("bind");
        assert_ne!(address.port(), 0);
        assert_eq!(listener.local_addr().expect("address"), address);
        assert!(
            std::net::TcpListener::bind(address).is_err(),
            "the port is held"
        );
    }

    #[test]
    fn reads_the_addresses_of_the_started_line() {
        let log =
            "2026-01-01T00:00:00Z  INFO sentinel::reverse::listener: reverse listener bound\n\
                   2026-01-01T00:00:00Z  INFO sentinel::app: sentinel started \
                   http=[127.0.0.1:4001, 127.0.0.1:4002] admin=Some(127.0.0.1:4003) \
                   agents_socket=Some(\"/tmp/a b.sock\") agents_tcp=None\n";
        let addresses = SentinelAddresses::from_log(log).expect("started line");
        assert_eq!(
            addresses.http,
            [
                "127.0.0.1:4001".parse().unwrap(),
                "127.0.0.1:4002".parse().unwrap()
            ] as [SocketAddr; 2]
        );
        assert_eq!(addresses.admin, Some("127.0.0.1:4003".parse().unwrap()));
        assert_eq!(addresses.agents_tcp, None);
        assert_eq!(SentinelAddresses::from_log("nothing yet\n"), None);
    }

    #[test]
    fn colour_codes_do_not_hide_the_fields() {
        let log = "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m sentinel started \
                   \u{1b}[3mhttp\u{1b}[0m\u{1b}[2m=\u{1b}[0m[127.0.0.1:1] \
                   \u{1b}[3madmin\u{1b}[0m\u{1b}[2m=\u{1b}[0mNone \
                   \u{1b}[3magents_tcp\u{1b}[0m\u{1b}[2m=\u{1b}[0mSome(127.0.0.1:2)";
        let addresses = SentinelAddresses::from_log(log).expect("started line");
        assert_eq!(addresses.http.len(), 1);
        assert_eq!(addresses.admin, None);
        assert_eq!(addresses.agents_tcp, Some("127.0.0.1:2".parse().unwrap()));
    }
}

// Added for the proxy tests (kept apart from the items above so that branches extending this
// module merge cleanly).

/// A loopback port that refuses connections for as long as it is held: a TCP socket bound to
/// a free port that never listens, so the kernel answers every connect with a reset and no
/// other process can take the port meanwhile (unlike a port bound and released).
pub struct RefusingPort {
    socket: tokio::net::TcpSocket,
}

impl RefusingPort {
    /// Binds it on `127.0.0.1:0`.
    pub fn bind() -> std::io::Result<RefusingPort> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(ANY_LOOPBACK)?;
        Ok(RefusingPort { socket })
    }

    /// Its address.
    pub fn address(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

#[cfg(test)]
mod refusing_port_tests {
    use super::*;

    #[tokio::test]
    async fn a_bound_port_that_never_listens_refuses_and_stays_taken() {
        let port = RefusingPort::bind().expect("bind");
        let address = port.address().expect("address");
        let refused = tokio::net::TcpStream::connect(address).await;
        assert_eq!(
            refused.expect_err("refused").kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        assert!(std::net::TcpListener::bind(address).is_err(), "still held");
    }
}
