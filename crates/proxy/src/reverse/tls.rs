//! TLS on the TCP reverse listener: loading the server certificate, its key and the optional
//! client CA from PEM files into a rustls configuration ([`ReverseTls`]), the slot that lets a
//! reload swap it while the listener runs ([`TlsSlot`]), and reading the identity a client
//! certificate proves ([`ClientIdentity`]). The handshake itself runs in the per-connection
//! handshake task. Nothing here logs or formats key material.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// The files of a `tls { … }` block, as written in the configuration (relative paths already
/// resolved against the configuration file's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain the proxy presents, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM bundle of CAs whose client certificates are accepted; `None` means no client
    /// certificate is asked for.
    pub client_ca_file: Option<PathBuf>,
}

/// Why the TLS files cannot be used. Messages name files, never key contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file cannot be used.
    #[error(transparent)]
    Pem(#[from] sentinel_tls::PemError),
    /// rustls refused the certificate and key (for example, the key does not match).
    #[error("cert-file {cert} with key-file {key} cannot be used: {source}")]
    Certificate {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        source: rustls::Error,
    },
    /// The client CA bundle is unusable.
    #[error("client-ca-file {path} cannot be used: {reason}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A loaded TLS configuration for the reverse listener.
#[derive(Clone)]
pub struct ReverseTls {
    files: TlsFiles,
    config: Arc<ServerConfig>,
}

impl ReverseTls {
    /// Reads and checks every file of `files`.
    pub fn load(files: TlsFiles) -> Result<ReverseTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = sentinel_tls::read_certs(&files.cert_file, "cert-file")?;
        let key = sentinel_tls::read_key(&files.key_file, "key-file")?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Certificate {
                cert: files.cert_file.clone(),
                key: files.key_file.clone(),
                source,
            })?;
        let builder = match &files.client_ca_file {
            Some(path) => {
                let roots = sentinel_tls::read_roots(path, "client-ca-file")?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::ClientCa {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config =
            builder
                .with_single_cert(certs, key)
                .map_err(|source| TlsError::Certificate {
                    cert: files.cert_file.clone(),
                    key: files.key_file.clone(),
                    source,
                })?;
        Ok(ReverseTls {
            files,
            config: Arc::new(config),
        })
    }

    /// The files it was loaded from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Whether clients must present a certificate from the client CA (mutual TLS).
    pub fn is_mutual(&self) -> bool {
        self.files.client_ca_file.is_some()
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }
}

impl fmt::Debug for ReverseTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReverseTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ReverseTls {
    /// Equal when loaded from the same files (their contents may have changed since).
    fn eq(&self, other: &ReverseTls) -> bool {
        self.files == other.files
    }
}

/// The TLS configuration in force, swapped whole by a reload.
pub type TlsSlot = super::Reloadable<ReverseTls>;

/// What a verified client certificate says about who the client is: the DNS names of its
/// subject alternative names and its subject common name. An agent_id is bound to the
/// certificate when it equals one of them exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// `dNSName` entries of the subject alternative name extension.
    pub dns_names: Vec<String>,
    /// The subject's common name, if it has one that is valid UTF-8.
    pub common_name: Option<String>,
}

impl ClientIdentity {
    /// Reads the identity of a DER certificate. A certificate that cannot be parsed yields an
    /// identity naming nobody, so binding fails closed.
    pub fn from_der(der: &[u8]) -> ClientIdentity {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return ClientIdentity::default();
        };
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let dns_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        ClientIdentity {
            dns_names,
            common_name,
        }
    }

    /// Whether `agent_id` is one of the certificate's DNS names or its common name (exact,
    /// case-sensitive comparison; wildcard names match nothing).
    pub fn names(&self, agent_id: &str) -> bool {
        self.dns_names.iter().any(|name| name == agent_id)
            || self.common_name.as_deref() == Some(agent_id)
    }
}
