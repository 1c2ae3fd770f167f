//! TLS termination: one rustls `ServerConfig` per listener, on the aws-lc-rs provider — TLS 1.3
//! and 1.2, certificates chosen by SNI (and by what the client can verify), ALPN `h2` and
//! `http/1.1`, resumption by tickets or session ids, client certificates through
//! [`verifier::ClientVerifier`]. HTTP/3 listeners get a QUIC variant of the same configuration
//! ([`quic_config`]).

pub mod sni;
pub mod verifier;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, ProducesTickets, ServerSessionMemoryCache};
use rustls::{ServerConfig, SupportedProtocolVersion};
use spinegate_config::{Listener, SessionResumption, TlsVersion};

use crate::clock::{Clock, RustlsTime};
use crate::material::MaterialError;

/// The crypto provider every TLS object uses: aws-lc-rs's, with the AES-128-GCM suites first.
/// Listeners choose by their own order (`ignore_client_order`), and rustls's default puts
/// AES-256-GCM with SHA-384 first: SHA-384 has no hardware instructions on x86-64, and the
/// handshake's transcript hash and key schedule in SHA-384 were 7 % of a login's CPU; with
/// SHA-256 they run on the SHA extensions. AES-128-GCM is among the suites the NCSC's TLS
/// guidance names; clients that offer only AES-256 or ChaCha20 still get them.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // A stable sort: AES-128-GCM suites (TLS 1.3, then TLS 1.2) move to the front, and
    // everything else keeps the provider's order.
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(provider)
}

/// Session-resumption state that outlives configuration reloads, so a reload does not force every
/// client into a full handshake.
#[derive(Debug, Clone)]
pub struct ResumptionState {
    ticketer: Arc<dyn ProducesTickets>,
    cache: Arc<ServerSessionMemoryCache>,
}

impl ResumptionState {
    /// Fresh ticket keys (rotated by rustls every 6 hours) and an empty session cache.
    pub fn new() -> Result<Self, rustls::Error> {
        Ok(Self { ticketer: rustls::crypto::aws_lc_rs::Ticketer::new()?, cache: ServerSessionMemoryCache::new(10_000) })
    }
}

/// Builds a listener's server configuration.
pub fn server_config(
    listener: &Listener,
    verifier: Arc<verifier::ClientVerifier>,
    resumption: &ResumptionState,
    provider: &Arc<CryptoProvider>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<ServerConfig>, MaterialError> {
    let versions: Vec<&'static SupportedProtocolVersion> = listener
        .tls_versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls13 => &rustls::version::TLS13,
            TlsVersion::Tls12 => &rustls::version::TLS12,
        })
        .collect();
    let resolver = sni::SniResolver::load(&listener.certificates, provider)?;
    let mut config = ServerConfig::builder_with_details(Arc::clone(provider), Arc::new(RustlsTime(clock)))
        .with_protocol_versions(&versions)
        .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = listener.alpn.iter().map(|a| a.id().to_vec()).collect();
    config.ignore_client_order = true;
    match listener.session_resumption {
        SessionResumption::Tickets => {
            config.ticketer = Arc::clone(&resumption.ticketer);
            config.session_storage = Arc::clone(&resumption.cache) as _;
        }
        SessionResumption::SessionIds => {
            // Without a ticketer, TLS 1.3 tickets are ids into this cache (stateful).
            config.session_storage = Arc::clone(&resumption.cache) as _;
        }
        SessionResumption::Off => {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
    }
    Ok(Arc::new(config))
}

/// A listener's QUIC (HTTP/3) TLS configuration, and the rustls configuration inside it.
#[derive(Clone)]
pub struct QuicConfig {
    /// What quinn uses.
    pub quic: Arc<quinn::crypto::rustls::QuicServerConfig>,
    /// The rustls configuration it wraps.
    pub tls: Arc<ServerConfig>,
}

impl std::fmt::Debug for QuicConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicConfig").field("alpn", &self.tls.alpn_protocols).finish_non_exhaustive()
    }
}

/// The QUIC (HTTP/3) variant of a listener's configuration: the same certificates, client
/// verifier and resumption state, ALPN `h3`, TLS 1.3 only (QUIC has nothing else), and no 0-RTT
/// — early data would reach the pipeline before the client's certificate is proven, and could be
/// replayed.
pub fn quic_config(tcp: &ServerConfig) -> Result<QuicConfig, MaterialError> {
    let mut config = tcp.clone();
    config.alpn_protocols = vec![b"h3".to_vec()];
    config.max_early_data_size = 0;
    let tls = Arc::new(config);
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::clone(&tls))
        .map_err(|e| MaterialError::Tls(e.to_string()))?;
    Ok(QuicConfig { quic: Arc::new(quic), tls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_is_preferred_and_nothing_is_lost() {
        let ours = provider();
        let default = rustls::crypto::aws_lc_rs::default_provider();
        assert_eq!(ours.cipher_suites[0].suite(), rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let mut a: Vec<_> = ours.cipher_suites.iter().map(|s| s.suite()).collect();
        let mut b: Vec<_> = default.cipher_suites.iter().map(|s| s.suite()).collect();
        a.sort_by_key(|s| u16::from(*s));
        b.sort_by_key(|s| u16::from(*s));
        assert_eq!(a, b, "the same suites, only reordered");
    }

    #[test]
    fn quic_configs_speak_h3_only_and_refuse_early_data() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
        let mut tcp = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        tcp.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        tcp.max_early_data_size = 16_384;
        let quic = quic_config(&tcp).unwrap();
        assert_eq!(quic.tls.alpn_protocols, vec![b"h3".to_vec()]);
        assert_eq!(quic.tls.max_early_data_size, 0, "0-RTT must stay off");
    }
}
