//! TLS for `tls:host:port` proxies: the settings ([`TlsClientConfig`]: CA bundle, optional
//! client certificate for mutual TLS, server name override), loading them into a rustls client
//! configuration once when the runner is built, and the server name each dial checks the
//! proxy's certificate against. Nothing here logs or formats key material.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::DialError;

/// How the agent dials `tls:` proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClientConfig {
    /// PEM bundle of the CAs that may sign the proxy's certificate (`--tls-ca`). Required for
    /// `tls:` addresses: the SDK does not trust a system store implicitly.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS (`--tls-cert`), leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate (`--tls-key`).
    pub key_file: Option<PathBuf>,
    /// Name the proxy's certificate must carry (`--tls-server-name`); default: the host of
    /// the `tls:host:port` address.
    pub server_name: Option<String>,
}

/// Why the TLS settings cannot be used. Messages name files and flags, never key contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A `tls:` proxy is configured without a CA bundle.
    #[error("{0} needs a CA bundle to check the proxy's certificate: pass --tls-ca FILE")]
    MissingCa(String),
    /// Only one of certificate and key was given.
    #[error("a client certificate needs both --tls-cert and --tls-key")]
    IncompleteClientCert,
    /// A certificate, key or CA file cannot be used.
    #[error(transparent)]
    Pem(#[from] sentinel_tls::PemError),
    /// rustls has no protocol version it can offer (a build without TLS 1.2 and 1.3).
    #[error("no TLS protocol version is available: {0}")]
    Protocol(String),
    /// rustls refused the client certificate and key (for example, they do not match).
    #[error("--tls-cert {cert} with --tls-key {key} cannot be used: {reason}")]
    ClientCert {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
    /// The server name is neither a DNS name nor an IP address.
    #[error("{0:?} is not a valid TLS server name (a DNS name or an IP address)")]
    BadServerName(String),
}

/// The loaded TLS settings every `tls:` dial of a runner shares.
#[derive(Clone)]
pub(crate) struct TlsDialer {
    connector: TlsConnector,
    config: TlsClientConfig,
}

impl TlsDialer {
    /// Loads `config`'s files; `first_tls_proxy` names the address in a missing-CA error.
    pub(crate) fn new(
        config: &TlsClientConfig,
        first_tls_proxy: &str,
    ) -> Result<TlsDialer, TlsConfigError> {
        Ok(TlsDialer {
            connector: config.connector(first_tls_proxy)?,
            config: config.clone(),
        })
    }

    /// Runs the TLS handshake on `stream`, checking the proxy's certificate against the CA
    /// bundle and the server name for `host`.
    pub(crate) async fn handshake(
        &self,
        address: &str,
        host: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, DialError> {
        let name = self
            .config
            .server_name(host)
            .map_err(|source| DialError::ServerName {
                address: address.to_string(),
                source,
            })?;
        self.connector
            .connect(name, stream)
            .await
            .map_err(|source| DialError::Tls {
                address: address.to_string(),
                source,
            })
    }
}

impl TlsClientConfig {
    /// Checks what can be checked without reading files.
    pub(crate) fn check(&self, first_tls_proxy: Option<&str>) -> Result<(), TlsConfigError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(TlsConfigError::IncompleteClientCert);
        }
        match first_tls_proxy {
            Some(proxy) if self.ca_file.is_none() => {
                Err(TlsConfigError::MissingCa(proxy.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Reads the files and builds the connector every `tls:` dial uses.
    fn connector(&self, first_tls_proxy: &str) -> Result<TlsConnector, TlsConfigError> {
        let ca_file = self
            .ca_file
            .as_ref()
            .ok_or_else(|| TlsConfigError::MissingCa(first_tls_proxy.to_string()))?;
        let roots = sentinel_tls::read_roots(ca_file, "--tls-ca")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::Protocol(e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&self.cert_file, &self.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = sentinel_tls::read_certs(cert, "--tls-cert")?;
                let private = sentinel_tls::read_key(key, "--tls-key")?;
                builder.with_client_auth_cert(chain, private).map_err(|e| {
                    TlsConfigError::ClientCert {
                        cert: cert.clone(),
                        key: key.clone(),
                        reason: e.to_string(),
                    }
                })?
            }
            _ => return Err(TlsConfigError::IncompleteClientCert),
        };
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// The name the certificate of the proxy at `host` must carry.
    pub(crate) fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsConfigError> {
        let name = match &self.server_name {
            Some(name) => name.as_str(),
            None => host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host),
        };
        ServerName::try_from(name.to_string())
            .map_err(|_| TlsConfigError::BadServerName(name.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests write their fixture files")]
mod tests {
    use super::*;

    #[test]
    fn server_name_comes_from_the_host_unless_overridden() {
        let mut config = TlsClientConfig::default();
        assert_eq!(
            config.server_name("proxy.internal").unwrap().to_str(),
            "proxy.internal"
        );
        assert_eq!(config.server_name("[::1]").unwrap().to_str(), "::1");
        assert_eq!(config.server_name("10.0.0.1").unwrap().to_str(), "10.0.0.1");
        config.server_name = Some("sentinel.example".into());
        assert_eq!(
            config.server_name("10.0.0.1").unwrap().to_str(),
            "sentinel.example"
        );
        config.server_name = Some("not a name".into());
        assert!(matches!(
            config.server_name("x"),
            Err(TlsConfigError::BadServerName(_))
        ));
    }

    #[test]
    fn unusable_settings_are_refused_with_the_flag_to_fix() {
        let config = TlsClientConfig::default();
        let err = config.connector("tls:proxy:9443").err().unwrap();
        assert!(err.to_string().contains("--tls-ca"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not pem").unwrap();
        let config = TlsClientConfig {
            ca_file: Some(ca.clone()),
            ..TlsClientConfig::default()
        };
        let err = config.connector("tls:proxy:9443").err().unwrap();
        assert!(
            matches!(
                err,
                TlsConfigError::Pem(sentinel_tls::PemError::NoCertificate { .. })
            ),
            "{err}"
        );
        let config = TlsClientConfig {
            ca_file: Some(dir.path().join("missing.pem")),
            ..TlsClientConfig::default()
        };
        let err = config.connector("tls:proxy:9443").err().unwrap();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
