//! Loading key material the configuration points at: PEM certificates and private keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Key material that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// Not readable, or not PEM.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// Readable PEM, but no certificate in it.
    #[error("{}: no CERTIFICATE in the file", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A trust anchor or CA certificate that cannot be parsed.
    #[error("{}: not a usable CA certificate: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// Two certificates with the same key type serve the same name: one would never be used.
    #[error("{}: another certificate with a {algorithm:?} key already serves {name}", path.display())]
    DuplicateCertificate {
        /// The later certificate.
        path: PathBuf,
        /// The server name, or "the default".
        name: String,
        /// The shared key algorithm.
        algorithm: rustls::SignatureAlgorithm,
    },
    /// The key cannot be used, or does not belong to the certificate.
    #[error("{}: {reason}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A TLS configuration cannot be made from otherwise valid material.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// Every certificate in a PEM file, in order. At least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, MaterialError> {
    let read_err = |source| MaterialError::Read { path: path.to_path_buf(), source };
    let certs =
        CertificateDer::pem_file_iter(path).map_err(read_err)?.collect::<Result<Vec<_>, _>>().map_err(read_err)?;
    if certs.is_empty() {
        return Err(MaterialError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

/// Trust roots for a TLS client: every certificate in each of `ca_files`. Empty for no files (a
/// client with it trusts nothing, never the system's roots).
pub fn ca_roots(ca_files: &[PathBuf]) -> Result<rustls::RootCertStore, MaterialError> {
    let mut roots = rustls::RootCertStore::empty();
    for path in ca_files {
        for cert in certificates(path)? {
            roots.add(cert).map_err(|e| MaterialError::BadCertificate { path: path.clone(), reason: e.to_string() })?;
        }
    }
    Ok(roots)
}

/// The private key in a PEM file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, MaterialError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| MaterialError::Read { path: path.to_path_buf(), source })
}

/// A certificate chain and its key, checked to belong together.
pub fn certified_key(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, MaterialError> {
    let chain = certificates(cert_path)?;
    let key = private_key(key_path)?;
    CertifiedKey::from_der(chain, key, provider).map(Arc::new).map_err(|e| MaterialError::BadKey {
        path: key_path.to_path_buf(),
        reason: format!("cannot use with {}: {e}", cert_path.display()),
    })
}
