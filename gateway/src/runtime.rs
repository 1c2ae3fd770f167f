//! The gateway's state, in three parts:
//!
//! - [`Runtime`]: everything derived from one configuration (trust, routes, policy, upstreams,
//!   listeners' TLS), published through `ArcSwap` and replaced whole on reload;
//! - [`Services`]: what requests read for as long as the gateway runs — the current runtime,
//!   the chain cache, revocation, tokens, the role directory, the audit log, the clock;
//! - [`Shared`]: the control plane around them — what start-up, reloads, readiness and the admin
//!   listener keep. Connections hold only the [`Services`].

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use spinegate_config::{ClientCertificatePolicy, Config, Limits};
use spinegate_revocation::Revocation;

use crate::audit::Audit;
use crate::auth::tokens::Tokens;
use crate::clock::Clock;
use crate::directory::{Directory, DirectorySetupError};
use crate::material::MaterialError;
use crate::peer::Cache;
use crate::proxy::Cluster;
use crate::proxy::body::BodyLimits;
use crate::proxy::headers::HeaderFilter;
use crate::routing::RouteTable;
use crate::tls::{self, QuicConfig, ResumptionState, verifier::ClientVerifier};
use crate::trust::TrustStore;
use spinegate_guidance::{Guidance, GuidanceError};

/// One listener as a configuration makes it: what its connections need to know, and the TLS
/// (and QUIC) configuration new handshakes use.
#[derive(Debug)]
pub struct ListenerRuntime {
    /// Its name.
    pub name: Arc<str>,
    /// Whether it requires a client certificate.
    pub client_certificate: ClientCertificatePolicy,
    /// The address it was configured with.
    pub listen: std::net::SocketAddr,
    /// The TLS configuration new handshakes use.
    pub tls: Arc<ServerConfig>,
    /// The QUIC configuration new HTTP/3 handshakes use (HTTP/3 listeners only).
    pub quic: Option<QuicConfig>,
}

/// Everything derived from one configuration.
#[derive(Debug)]
pub struct Runtime {
    /// Client-certificate trust.
    pub trust: Arc<TrustStore>,
    /// Routes.
    pub routes: RouteTable,
    /// The header names clients may not send upstream.
    pub header_filter: Arc<HeaderFilter>,
    /// Upstream clusters, by the index routes carry.
    pub clusters: Vec<Arc<Cluster>>,
    /// Request limits.
    pub limits: Limits,
    /// The expiry warning window.
    pub expiry_warning: Duration,
    /// Per listener, in configuration order.
    pub listeners: Vec<ListenerRuntime>,
    /// Path of the back-channel logout endpoint.
    pub logout_path: String,
    /// Activity interning, baseline activities and organisation relations.
    pub policy: Arc<spinegate_authz::Policy>,
    /// The identity assertion signer, when configured.
    pub assertion: Option<Arc<crate::assertion::AssertionSigner>>,
    /// What refusal pages and the identity page say (`[guidance]`).
    pub guidance: Arc<Guidance>,
}

/// Why a runtime, or the gateway's services, could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A certificate, key or CA file is unusable.
    #[error(transparent)]
    Material(#[from] MaterialError),
    /// The role directory cannot be used.
    #[error(transparent)]
    RoleDirectory(#[from] DirectorySetupError),
    /// A `[guidance]` template cannot be read or parsed.
    #[error("[guidance] {0}")]
    Guidance(#[from] GuidanceError),
}

/// What requests read, for as long as the gateway runs.
#[derive(Debug)]
pub struct Services {
    /// The current runtime.
    pub runtime: ArcSwap<Runtime>,
    /// Verified chains.
    pub cache: Arc<Cache>,
    /// Revocation snapshots.
    pub revocation: Arc<Revocation>,
    /// Bearer-token verification.
    pub tokens: Arc<Tokens>,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// Role profiles of smartcard users (replaced when a reload changes its settings).
    pub directory: ArcSwap<Directory>,
    /// The audit log.
    pub audit: Arc<Audit>,
}

/// The control plane: the services, and what start-up, reloads, readiness and the admin
/// listener keep beside them.
#[derive(Debug)]
pub struct Shared {
    /// What requests read.
    pub services: Arc<Services>,
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
    /// The settings the role directory was built from.
    pub directory_config: Mutex<spinegate_config::RoleDirectory>,
    /// The configuration the process started with: a reload compares its start-up settings
    /// with this (`reload::restart_needed`).
    pub started: Config,
    /// How the last reload went.
    pub reload_status: Mutex<ReloadStatus>,
    /// HTTP/3 endpoints, which a reload hands the new TLS configuration.
    pub quic: Mutex<Vec<QuicEndpoint>>,
}

/// The outcome of the last reload attempt, for `/readyz`.
#[derive(Clone, Debug, Default)]
pub struct ReloadStatus {
    /// When the configuration last loaded (start or reload), Unix seconds.
    pub last_success: u64,
    /// The last attempt's failure, if it failed: when and why.
    pub last_failure: Option<(u64, String)>,
}

/// A QUIC endpoint serving listener `index`, kept so a reload can hand it new TLS configuration.
#[derive(Debug)]
pub struct QuicEndpoint {
    /// The listener.
    pub index: usize,
    /// The endpoint.
    pub endpoint: quinn::Endpoint,
    /// Its transport settings (start-up only), reused with each new TLS configuration.
    pub transport: Arc<quinn::TransportConfig>,
}

impl Runtime {
    /// What a request body is held to.
    pub fn body_limits(&self) -> BodyLimits {
        BodyLimits {
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
    ) -> Result<Self, BuildError> {
        let trust = Arc::new(TrustStore::load(&config.client_auth, provider.signature_verification_algorithms.all)?);
        let clusters = config
            .upstreams
            .iter()
            .map(|u| Cluster::build(u, provider).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let mut listeners = Vec::with_capacity(config.listeners.len());
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
            let tls = tls::server_config(listener, verifier, resumption, provider, Arc::clone(clock))?;
            let quic = listener.http3.as_ref().map(|_| tls::quic_config(&tls)).transpose()?;
            listeners.push(ListenerRuntime {
                name,
                client_certificate: listener.client_certificate,
                listen: listener.listen,
                tls,
                quic,
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
            header_filter: Arc::new(HeaderFilter::new(&config.request_headers.remove)),
            policy: Arc::new(policy),
            assertion,
            clusters,
            limits: config.limits.clone(),
            expiry_warning: config.client_auth.expiry_warning,
            listeners,
            logout_path: config.tokens.backchannel_logout_path.clone(),
            guidance: Arc::new(Guidance::build(&config.guidance)?),
        })
    }
}

/// Loads and checks every file `config` names, as [`Runtime::build`] would, without binding.
/// Returns warnings about material that loads but deserves attention.
pub fn check_material(config: &Config) -> Result<Vec<String>, BuildError> {
    let provider = tls::provider();
    let cache = Arc::new(Cache::new(config.chain_cache));
    // Policies name issuer certificates: load them as the gateway would.
    crate::revocation::policies(config)?;
    admin_token(config)?;
    crate::auth::tokens::build(config, &provider)?;
    Directory::build(&config.role_directory, &provider)?;
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
