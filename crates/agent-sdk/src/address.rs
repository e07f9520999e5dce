//! Proxy addresses as agents name them (`unix:/path`, `tcp:host:port`, `tls:host:port`,
//! PROTOCOL.md §8) and dialing them. This module owns parsing and the socket connect; what is
//! said on the stream afterwards is [`crate::register`]'s and [`crate::connection`]'s business.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sentinel_agent_protocol::io::BoxedStream;
use tokio::net::{TcpStream, UnixStream};

use crate::error::{AddressError, DialError};
use crate::tls::TlsDialer;

/// Where a proxy's reverse listener can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProxyAddr {
    /// `unix:/path/to/agents.sock`: a Unix domain socket.
    Unix(PathBuf),
    /// `tcp:host:port`: plain TCP.
    Tcp {
        /// Host name or IP address (IPv6 in brackets: `tcp:[::1]:9090`).
        host: String,
        /// Port.
        port: u16,
    },
    /// `tls:host:port`: TCP with TLS, checked against the runner's CA bundle
    /// ([`crate::TlsClientConfig`]).
    Tls {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
}

impl ProxyAddr {
    /// Whether this is a `tls:` address.
    pub fn is_tls(&self) -> bool {
        matches!(self, ProxyAddr::Tls { .. })
    }

    /// Opens a stream to the proxy (TLS handshake included for `tls:`), giving up after
    /// `timeout`. The transport is erased, so Unix, TCP and TLS share one code path.
    pub(crate) async fn dial(
        &self,
        timeout: Duration,
        tls: Option<&TlsDialer>,
    ) -> Result<BoxedStream, DialError> {
        match tokio::time::timeout(timeout, self.connect(tls)).await {
            Ok(result) => result,
            Err(_) => Err(DialError::Timeout {
                address: self.to_string(),
                after: timeout,
            }),
        }
    }

    async fn connect(&self, tls: Option<&TlsDialer>) -> Result<BoxedStream, DialError> {
        let connect_error = |source| DialError::Connect {
            address: self.to_string(),
            source,
        };
        match self {
            ProxyAddr::Unix(path) => Ok(Box::new(
                UnixStream::connect(path).await.map_err(connect_error)?,
            )),
            ProxyAddr::Tcp { host, port } => {
                Ok(Box::new(tcp(host, *port).await.map_err(connect_error)?))
            }
            ProxyAddr::Tls { host, port } => {
                let Some(tls) = tls else {
                    return Err(DialError::TlsNotConfigured(self.to_string()));
                };
                let stream = tcp(host, *port).await.map_err(connect_error)?;
                Ok(Box::new(
                    tls.handshake(&self.to_string(), host, stream).await?,
                ))
            }
        }
    }
}

async fn tcp(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect((strip_brackets(host), port)).await?;
    // Decisions are small and latency-bound.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn parse_host_port(input: &str, rest: &str) -> Result<(String, u16), AddressError> {
    let bad = |why: &str| AddressError::Invalid {
        input: input.to_string(),
        why: why.to_string(),
    };
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("write IPv6 addresses in brackets, e.g. tcp:[::1]:9090"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("the port must be a number from 1 to 65535"))?;
    if port == 0 {
        return Err(bad("the port must be a number from 1 to 65535"));
    }
    Ok((host.to_string(), port))
}

impl FromStr for ProxyAddr {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<ProxyAddr, AddressError> {
        let (scheme, rest) = input.split_once(':').ok_or_else(|| AddressError::Invalid {
            input: input.to_string(),
            why: "expected unix:/path, tcp:host:port or tls:host:port".into(),
        })?;
        match scheme {
            "unix" if rest.is_empty() => Err(AddressError::Invalid {
                input: input.to_string(),
                why: "the socket path is empty".into(),
            }),
            "unix" => Ok(ProxyAddr::Unix(PathBuf::from(rest))),
            "tcp" => parse_host_port(input, rest).map(|(host, port)| ProxyAddr::Tcp { host, port }),
            "tls" => parse_host_port(input, rest).map(|(host, port)| ProxyAddr::Tls { host, port }),
            other => Err(AddressError::Invalid {
                input: input.to_string(),
                why: format!("unknown scheme {other:?}; use unix:, tcp: or tls:"),
            }),
        }
    }
}

impl fmt::Display for ProxyAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ProxyAddr::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            ProxyAddr::Tls { host, port } => write!(f, "tls:{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme_and_round_trips() {
        let cases = [
            (
                "unix:/run/sentinel/agents.sock",
                ProxyAddr::Unix("/run/sentinel/agents.sock".into()),
            ),
            (
                "tcp:proxy.internal:9090",
                ProxyAddr::Tcp {
                    host: "proxy.internal".into(),
                    port: 9090,
                },
            ),
            (
                "tcp:[::1]:9090",
                ProxyAddr::Tcp {
                    host: "[::1]".into(),
                    port: 9090,
                },
            ),
            (
                "tls:10.0.0.1:9443",
                ProxyAddr::Tls {
                    host: "10.0.0.1".into(),
                    port: 9443,
                },
            ),
        ];
        for (text, expected) in cases {
            let parsed: ProxyAddr = text.parse().expect(text);
            assert_eq!(parsed, expected);
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn rejects_malformed_addresses_with_a_reason() {
        for bad in [
            "",
            "/run/agents.sock",
            "unix:",
            "tcp:host",
            "tcp::9090",
            "tcp:host:0",
            "tcp:host:99999",
            "tcp:::1:9090",
            "http:host:80",
        ] {
            let err = bad.parse::<ProxyAddr>().expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[tokio::test]
    async fn tls_without_settings_is_refused_before_connecting() {
        let addr: ProxyAddr = "tls:127.0.0.1:9".parse().unwrap();
        assert!(addr.is_tls());
        let err = addr.dial(Duration::from_secs(1), None).await.err().unwrap();
        assert!(matches!(err, DialError::TlsNotConfigured(_)), "{err}");
        assert!(err.to_string().contains("--tls-ca"), "{err}");
    }
}
