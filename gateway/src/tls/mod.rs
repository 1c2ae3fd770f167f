//! TLS termination: one rustls `ServerConfig` per listener, on the aws-lc-rs provider — TLS 1.3
//! and 1.2, certificates chosen by SNI (and by what the client can verify), ALPN `h2` and
//! `http/1.1`, resumption by tickets or session ids, client certificates through
//! [`verifier::ClientVerifier`].

pub mod sni;
pub mod verifier;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, ProducesTickets, ServerSessionMemoryCache};
use rustls::{ServerConfig, SupportedProtocolVersion};
use spinegate_config::{Listener, SessionResumption, TlsVersion};

use crate::clock::{Clock, RustlsTime};
use crate::material::MaterialError;

/// The crypto provider every TLS object uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
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
