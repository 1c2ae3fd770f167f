//! The state requests read: [`Shared`] (lives as long as the gateway) and [`Runtime`] (built from
//! one configuration, published through `ArcSwap`, replaced whole on reload).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use spinegate_config::{ClientCertificatePolicy, Config, Limits};
use spinegate_revocation::Revocation;

use crate::clock::Clock;
use crate::material::MaterialError;
use crate::peer::Cache;
use crate::proxy::Cluster;
use crate::routing::RouteTable;
use crate::tls::{self, ResumptionState, verifier::ClientVerifier};
use crate::trust::TrustStore;

/// What a listener's connections need to know about it.
#[derive(Debug)]
pub struct ListenerInfo {
    /// Its name.
    pub name: Arc<str>,
    /// Whether it requires a client certificate.
    pub client_certificate: ClientCertificatePolicy,
    /// The address it was configured with.
    pub listen: std::net::SocketAddr,
}

/// Everything derived from one configuration.
#[derive(Debug)]
pub struct Runtime {
    /// Client-certificate trust.
    pub trust: Arc<TrustStore>,
    /// Routes.
    pub routes: RouteTable,
    /// The header names clients may not send upstream.
    pub header_filter: Arc<crate::proxy::headers::HeaderFilter>,
    /// Upstream clusters, by the index routes carry.
    pub clusters: Vec<Arc<Cluster>>,
    /// Request limits.
    pub limits: Limits,
    /// The expiry warning window.
    pub expiry_warning: Duration,
    /// Per listener, in configuration order.
    pub listeners: Vec<ListenerInfo>,
    /// Per listener, the TLS configuration new handshakes use.
    pub tls: Vec<Arc<ServerConfig>>,
    /// Per listener, the QUIC configuration new HTTP/3 handshakes use (HTTP/3 listeners only).
    pub quic: Vec<Option<tls::QuicConfig>>,
    /// Path of the back-channel logout endpoint.
    pub logout_path: String,
    /// Activity interning, baseline activities and organisation relations.
    pub policy: Arc<spinegate_authz::Policy>,
    /// The identity assertion signer, when configured.
    pub assertion: Option<Arc<crate::assertion::AssertionSigner>>,
    /// What refusal pages and the identity page say (`[guidance]`).
    pub guidance: Arc<crate::guidance::Guidance>,
}

/// Gateway-wide services that outlive configuration reloads.
#[derive(Debug)]
pub struct Shared {
    /// The current runtime.
    pub runtime: ArcSwap<Runtime>,
    /// Verified chains.
    pub cache: Arc<Cache>,
    /// Revocation snapshots.
    pub revocation: Arc<Revocation>,
    /// Bearer-token verification.
    pub tokens: Arc<crate::auth::tokens::Tokens>,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// The TLS crypto provider.
    pub provider: Arc<CryptoProvider>,
    /// Per listener, ticket keys and session cache.
    pub resumption: Vec<ResumptionState>,
    /// `/metrics` renderer.
    pub metrics: PrometheusHandle,
    /// False while starting and once draining: `/readyz` answers 503.
    pub ready: AtomicBool,
    /// Bearer token of the admin deny-list endpoint, when configured.
    pub admin_token: Option<Vec<u8>>,
    /// Role profiles of smartcard users (replaced when a reload changes its settings).
    pub directory: ArcSwap<crate::directory::Directory>,
    /// The settings the directory was built from.
    pub directory_config: std::sync::Mutex<spinegate_config::RoleDirectory>,
    /// The start-up-only settings the gateway runs with ([`crate::reload::restart_only`]).
    pub restart_only: std::sync::Mutex<Vec<(&'static str, String)>>,
    /// How the last reload went.
    pub reload_status: std::sync::Mutex<crate::reload::ReloadStatus>,
    /// The audit log.
    pub audit: Arc<crate::audit::Audit>,
    /// HTTP/3 endpoints, which a reload hands the new TLS configuration.
    pub h3: std::sync::Mutex<Vec<crate::http3::H3Endpoint>>,
}

impl Runtime {
    /// What a request body is held to.
    pub fn body_limits(&self) -> crate::proxy::body::BodyLimits {
        crate::proxy::body::BodyLimits {
            max_bytes: self.limits.max_request_body_bytes,
            read_timeout: self.limits.body_read_timeout,
            min_rate: self.limits.min_body_rate,
        }
    }

    /// Loads the material `config` names and builds every derived object.
    pub fn build(
        config: &Config,
        cache: &Arc<Cache>,
        revocation: &Arc<Revocation>,
        provider: &Arc<CryptoProvider>,
        resumption: &[ResumptionState],
        clock: &Arc<dyn Clock>,
    ) -> Result<Self, MaterialError> {
        let trust = Arc::new(TrustStore::load(&config.client_auth, provider.signature_verification_algorithms.all)?);
        let clusters = config
            .upstreams
            .iter()
            .map(|u| Cluster::build(u, provider).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let mut listeners = Vec::with_capacity(config.listeners.len());
        let mut tls_configs = Vec::with_capacity(config.listeners.len());
        let mut quic_configs = Vec::with_capacity(config.listeners.len());
        for (listener, resumption) in config.listeners.iter().zip(resumption) {
            let name: Arc<str> = listener.name.as_str().into();
            let verifier = Arc::new(
                ClientVerifier::new(
                    Arc::clone(&trust),
                    Arc::clone(cache),
                    Arc::clone(revocation),
                    listener.client_certificate,
                    Arc::clone(provider),
                    Arc::clone(&name),
                )
                .certificate_problems(listener.certificate_problems),
            );
            let tcp = tls::server_config(listener, verifier, resumption, provider, Arc::clone(clock))?;
            quic_configs.push(listener.http3.as_ref().map(|_| tls::quic_config(&tcp)).transpose()?);
            tls_configs.push(tcp);
            listeners.push(ListenerInfo {
                name,
                client_certificate: listener.client_certificate,
                listen: listener.listen,
            });
        }
        let policy = spinegate_authz::Policy::new(
            &config.authorization,
            config.routes.iter().flat_map(|r| &r.rules).flat_map(spinegate_authz::Rule::activities),
        );
        let assertion = config
            .identity_assertion
            .as_ref()
            .map(|a| crate::assertion::AssertionSigner::load(a).map(Arc::new))
            .transpose()?;
        Ok(Self {
            trust,
            routes: RouteTable::new(&config.routes, &policy),
            header_filter: Arc::new(crate::proxy::headers::HeaderFilter::new(&config.request_headers.remove)),
            policy: Arc::new(policy),
            assertion,
            clusters,
            limits: config.limits.clone(),
            expiry_warning: config.client_auth.expiry_warning,
            listeners,
            tls: tls_configs,
            quic: quic_configs,
            logout_path: config.tokens.backchannel_logout_path.clone(),
            guidance: Arc::new(crate::guidance::Guidance::build(&config.guidance)?),
        })
    }
}

/// Loads and checks every file `config` names, as [`Runtime::build`] would, without binding.
/// Returns warnings about material that loads but deserves attention.
pub fn check_material(config: &Config) -> Result<Vec<String>, MaterialError> {
    let provider = tls::provider();
    let cache = Arc::new(Cache::new(config.chain_cache));
    // Policies name issuer certificates: load them as the gateway would.
    crate::revocation::policies(config)?;
    admin_token(config)?;
    crate::auth::tokens::build(config, &provider)?;
    crate::directory::Directory::build(&config.role_directory, &provider)?;
    let revocation = Revocation::disabled();
    let resumption = config
        .listeners
        .iter()
        .map(|_| ResumptionState::new().expect("ticket keys can be generated"))
        .collect::<Vec<_>>();
    let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
    let runtime = Runtime::build(config, &cache, &revocation, &provider, &resumption, &clock)?;
    let mut warnings = runtime.trust.anchor_warnings(clock.now());
    warnings.extend(spinegate_config::lint(config));
    Ok(warnings)
}

/// The admin deny-list token, read from `admin_token_file` (surrounding whitespace trimmed).
pub fn admin_token(config: &Config) -> Result<Option<Vec<u8>>, MaterialError> {
    let Some(path) = &config.revocation.admin_token_file else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| MaterialError::BadKey {
        path: path.clone(),
        reason: format!("cannot read the admin token: {e}"),
    })?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(MaterialError::BadKey {
            path: path.clone(),
            reason: "the admin token must be at least 16 characters".into(),
        });
    }
    Ok(Some(token.as_bytes().to_vec()))
}
