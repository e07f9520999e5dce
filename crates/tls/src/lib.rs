//! Reading TLS material from PEM files: certificate chains, private keys and CA bundles, with
//! errors that name the setting and the file so an operator knows what to fix. Both the proxy
//! (reverse listener) and the agent SDK (`tls:` dials) load their files through here, so a PEM
//! quirk is handled once. Building rustls server or client configurations from the material is
//! left to each side: their policies (client verification, server names) differ.
//!
//! Nothing here logs or formats key material: a key that does not parse is reported by file
//! name only, because a parser's detail could quote the file.
// No unwrap/expect on what can fail at run time; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a PEM file cannot be used. `what` is the setting or flag that named the file
/// (`cert-file`, `--tls-ca`, …), so the message says where to fix it.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// The setting or flag that named the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no PEM certificate.
    #[error("{what} {path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate {
        /// The setting or flag that named the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file holds no PEM private key.
    #[error(
        "{what} {path} holds no PEM private key \
         (expected PKCS#8, PKCS#1 or SEC1: -----BEGIN PRIVATE KEY-----)"
    )]
    NoKey {
        /// The setting or flag that named the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A certificate of a CA bundle was refused as a trust anchor.
    #[error("{what} {path} cannot be used as a CA bundle: {reason}")]
    BadCa {
        /// The setting or flag that named the file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl PemError {
    /// The setting or flag that named the file, to point a configuration error at its line.
    pub fn setting(&self) -> &'static str {
        match self {
            PemError::Read { what, .. }
            | PemError::NoCertificate { what, .. }
            | PemError::NoKey { what, .. }
            | PemError::BadCa { what, .. } => what,
        }
    }
}

/// Reads every certificate of the PEM file at `path` (a chain, leaf first, or a bundle).
/// Blocks on file I/O: call it where configuration is loaded, not per request.
pub fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = read(path, what)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(PemError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of the PEM file at `path`.
pub fn read_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, PemError> {
    let pem = read(path, what)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| PemError::NoKey {
        what,
        path: path.to_path_buf(),
    })
}

/// Reads a CA bundle into a trust store: every certificate of the file must be a usable
/// trust anchor.
pub fn read_roots(path: &Path, what: &'static str) -> Result<RootCertStore, PemError> {
    let mut roots = RootCertStore::empty();
    for ca in read_certs(path, what)? {
        roots.add(ca).map_err(|e| PemError::BadCa {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

#[allow(
    clippy::disallowed_methods,
    reason = "TLS files are read when configuration is loaded or reloaded, never per request"
)]
fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests write their PEM fixtures, no runtime"
)]
mod tests {
    use super::*;

    fn pki() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["proxy.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (dir, cert_path, key_path)
    }

    #[test]
    fn reads_certificates_keys_and_roots() {
        let (_dir, cert, key) = pki();
        assert_eq!(read_certs(&cert, "cert-file").unwrap().len(), 1);
        assert!(read_key(&key, "key-file").is_ok());
        assert_eq!(read_roots(&cert, "ca-file").unwrap().len(), 1);
    }

    #[test]
    fn errors_name_the_setting_and_the_file_but_not_the_contents() {
        let (dir, cert, key) = pki();
        let err = read_certs(&key, "cert-file").unwrap_err();
        assert!(matches!(err, PemError::NoCertificate { .. }), "{err}");
        assert_eq!(err.setting(), "cert-file");
        assert!(err.to_string().contains("key.pem"), "{err}");

        let err = read_key(&cert, "--tls-key").unwrap_err();
        assert!(matches!(err, PemError::NoKey { .. }), "{err}");
        assert!(err.to_string().starts_with("--tls-key "), "{err}");
        assert!(
            !err.to_string().contains("BEGIN CERTIFICATE-----\nMII"),
            "{err}"
        );

        let missing = dir.path().join("missing.pem");
        let err = read_roots(&missing, "client-ca-file").unwrap_err();
        assert!(matches!(err, PemError::Read { .. }), "{err}");
        assert!(err.to_string().contains("client-ca-file"), "{err}");
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
