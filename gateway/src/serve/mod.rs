//! The connection service, for TCP and QUIC alike: the gateway's lifecycle ([`Gateway`]: build
//! the services, bind every listener, serve, drain on shutdown), the accept loops and drivers of
//! each transport, and what they share.
//!
//! ## Layout
//! - [`tcp`]: TLS over TCP, HTTP/1.1 or HTTP/2 by ALPN.
//! - [`quic`]: HTTP/3 over QUIC on the same port number (UDP); [`quic_body`] its request body.
//! - [`lifecycle`]: handshake counting and the timers that close connections, for both.

pub mod lifecycle;
pub mod quic;
pub mod quic_body;
mod tcp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use spinegate_config::Config;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

use crate::clock::{Clock, SystemClock};
use crate::metrics as m;
use crate::peer::Cache;
pub use crate::reload::Hangup;
use crate::reload::{ReloadError, Trigger};
use crate::runtime::{BuildError, Runtime, Services, Shared};
use crate::tls::{self, ResumptionState};

/// How the gateway is started, besides its configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// Wall-clock time for TLS and per-request checks.
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Self { clock: Arc::new(SystemClock) }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Something the configuration names is unusable.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS session ticket keys could not be made.
    #[error("cannot create TLS ticket keys: {0}")]
    Tickets(#[from] rustls::Error),
    /// The audit log cannot be opened.
    #[error("cannot open the audit log: {0}")]
    Audit(std::io::Error),
    /// An HTTP/3 endpoint cannot start.
    #[error(transparent)]
    Http3(#[from] quic::H3Error),
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    listeners: Vec<SocketAddr>,
    admin: SocketAddr,
    stop: watch::Sender<bool>,
    connections: TaskTracker,
}

impl Gateway {
    /// Loads material, binds every listener and the admin address, and starts serving.
    pub async fn start(config: Config, options: Options) -> Result<Self, StartError> {
        let provider = tls::provider();
        let cache = Arc::new(Cache::new(config.chain_cache));
        let revocation = crate::revocation::build(&config, Arc::clone(&options.clock)).map_err(BuildError::from)?;
        revocation.load_files().await;
        let resumption = config.listeners.iter().map(|_| ResumptionState::new()).collect::<Result<Vec<_>, _>>()?;
        let runtime = Runtime::build(&config, &cache, &revocation, &provider, &resumption, &options.clock)?;
        for warning in runtime.trust.anchor_warnings(options.clock.now()) {
            tracing::warn!("{warning}");
        }
        let tokens = Arc::new(crate::auth::tokens::build(&config, &provider).map_err(BuildError::from)?);
        let directory =
            Arc::new(crate::directory::Directory::build(&config.role_directory, &provider).map_err(BuildError::from)?);
        let audit = Arc::new(crate::audit::Audit::start(&config.audit).map_err(StartError::Audit)?);
        for warning in spinegate_config::lint(&config) {
            tracing::warn!("{warning}");
        }
        let services = Arc::new(Services {
            runtime: ArcSwap::from_pointee(runtime),
            cache,
            revocation,
            tokens,
            clock: options.clock,
            directory: ArcSwap::new(directory),
            audit,
        });
        let shared = Arc::new(Shared {
            services: Arc::clone(&services),
            provider,
            resumption,
            metrics: m::install(),
            ready: false.into(),
            admin_token: crate::runtime::admin_token(&config).map_err(BuildError::from)?,
            directory_config: std::sync::Mutex::new(config.role_directory.clone()),
            started: config.clone(),
            reload_status: std::sync::Mutex::default(),
            quic: std::sync::Mutex::default(),
        });
        crate::reload::loaded(&shared);

        let (stop, stopped) = watch::channel(false);
        let connections = TaskTracker::new();
        let mut bound = Vec::with_capacity(config.listeners.len());
        for (index, listener) in config.listeners.iter().enumerate() {
            let tcp = bind(listener.listen).await?;
            let addr = tcp.local_addr().map_err(|source| StartError::Bind { addr: listener.listen, source })?;
            bound.push(addr);
            // HTTP/3 on the same port number over UDP (the bound one, when the port was 0).
            let alt_svc = match &listener.http3 {
                Some(settings) => {
                    let udp = quic::start(index, addr, settings, &shared, stopped.clone(), connections.clone())?;
                    tracing::info!(listener = %listener.name, %udp, "serving HTTP/3");
                    settings.alt_svc.then(|| {
                        let value = format!("h3=\":{}\"; ma={}", udp.port(), settings.alt_svc_max_age.as_secs());
                        http::HeaderValue::from_str(&value).expect("a port and a number are a valid header value")
                    })
                }
                None => None,
            };
            tokio::spawn(tcp::accept_loop(
                tcp,
                index,
                Arc::clone(&services),
                stopped.clone(),
                connections.clone(),
                Arc::new(Semaphore::new(config.limits.max_connections.get())),
                alt_svc,
            ));
        }
        let admin_tcp = bind(config.admin.listen).await?;
        let admin = admin_tcp.local_addr().map_err(|source| StartError::Bind { addr: config.admin.listen, source })?;
        tokio::spawn(crate::admin::serve(admin_tcp, Arc::clone(&shared), config.admin.clone(), stopped.clone()));
        tokio::spawn(Arc::clone(&services.revocation).run(stopped.clone()));
        let current = move || services.directory.load_full();
        tokio::spawn(crate::directory::keep_current(current, stopped.clone()));
        shared.ready.store(true, Ordering::Release);
        tracing::info!(listeners = ?bound, %admin, "spinegate is serving");
        Ok(Self { shared, listeners: bound, admin, stop, connections })
    }

    /// The bound address of each listener, in configuration order.
    pub fn listener_addrs(&self) -> &[SocketAddr] {
        &self.listeners
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Applies `config` as a reload: see [`crate::reload`]. Requests in flight finish on the state
    /// they started with; a `config` that fails to load changes nothing.
    pub async fn reload(&self, config: &Config) -> Result<(), ReloadError> {
        crate::reload::reload(&self.shared, config, Trigger::Api).await
    }

    /// Reads the configuration file at `path` and applies it as a reload.
    pub async fn reload_from(&self, path: &std::path::Path) -> Result<(), ReloadError> {
        crate::reload::reload_from(&self.shared, path, Trigger::Api).await
    }

    /// Reloads from `path` on `hangup` (SIGHUP) and when it, or a file it names, changes, until
    /// shutdown.
    pub fn watch(&self, path: std::path::PathBuf, hangup: Hangup) {
        tokio::spawn(crate::reload::watch(Arc::clone(&self.shared), path, hangup, self.stop.subscribe()));
    }

    /// The audit log (tests flush it before reading the file).
    pub fn audit(&self) -> &crate::audit::Audit {
        &self.shared.services.audit
    }

    /// The verified-chain cache (for inspection by tests and benchmarks).
    pub fn chain_cache(&self) -> &Cache {
        &self.shared.services.cache
    }

    /// Stops accepting, lets in-flight requests finish for at most `deadline`, then returns.
    pub async fn shutdown(self, deadline: Duration) {
        self.shared.ready.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        self.connections.close();
        if tokio::time::timeout(deadline, self.connections.wait()).await.is_err() {
            tracing::warn!(?deadline, "drain deadline passed with connections still open");
        }
        let audit = Arc::clone(&self.shared.services.audit);
        let _ = tokio::task::spawn_blocking(move || audit.flush(Duration::from_secs(5))).await;
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
}
