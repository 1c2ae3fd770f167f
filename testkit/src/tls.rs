//! Client TLS settings: the CAs to trust, the card to present, the ALPN protocols and TLS
//! versions to offer; and the same settings for QUIC.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

/// The crypto provider every client here uses (aws-lc-rs, as the gateway does).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Every CA certificate in a PEM file, as trust roots.
pub fn roots_from_pem_file(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| format!("a certificate in {} is unusable: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no CA certificate", path.display()));
    }
    Ok(roots)
}

/// A chain and its key, read from PEM files (a card as `spinegate dev` writes it).
pub fn card_from_pem_files(
    chain: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = CertificateDer::pem_file_iter(chain)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", chain.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok((chain, key))
}

/// Client TLS settings under construction.
#[derive(Debug)]
pub struct ClientTls {
    roots: RootCertStore,
    card: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: Vec<Vec<u8>>,
    versions: Option<Vec<&'static SupportedProtocolVersion>>,
    provider: Arc<CryptoProvider>,
}

impl ClientTls {
    /// Settings trusting `roots`, presenting nothing, offering no ALPN, TLS 1.3 and 1.2.
    pub fn trusting(roots: RootCertStore) -> Self {
        Self { roots, card: None, alpn: Vec::new(), versions: None, provider: provider() }
    }

    /// Settings trusting one CA certificate.
    pub fn trusting_ca(ca: CertificateDer<'static>) -> Self {
        let mut roots = RootCertStore::empty();
        roots.add(ca).expect("a CA certificate the test made");
        Self::trusting(roots)
    }

    /// Presents `chain` (leaf first) with `key` when the server asks for a certificate.
    pub fn card(mut self, chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        self.card = Some((chain, key));
        self
    }

    /// Offers these ALPN protocols, in order.
    pub fn alpn(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Offers only these TLS versions.
    pub fn versions(mut self, versions: &[&'static SupportedProtocolVersion]) -> Self {
        self.versions = Some(versions.to_vec());
        self
    }

    /// Uses another crypto provider (to restrict signature schemes, say).
    pub fn provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = provider;
        self
    }

    /// The rustls settings.
    pub fn build(self) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(self.provider);
        let builder = match self.versions {
            Some(versions) => builder.with_protocol_versions(&versions),
            None => builder.with_safe_default_protocol_versions(),
        }
        .expect("the provider supports the versions asked for")
        .with_root_certificates(self.roots);
        let mut config = match self.card {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).expect("a usable card"),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        Arc::new(config)
    }
}

/// QUIC client settings from TLS settings (which should offer ALPN `h3`).
pub fn quic(config: Arc<ClientConfig>) -> quinn::ClientConfig {
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(config).expect("TLS 1.3 settings for QUIC");
    quinn::ClientConfig::new(Arc::new(quic))
}
