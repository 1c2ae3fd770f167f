//! Starting and stopping the gateway: bind listeners, accept connections (bounded), terminate TLS,
//! serve HTTP/1.1 or HTTP/2 by ALPN, close idle connections, drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::HandshakeKind;
use spinegate_config::Config;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::clock::{Clock, SystemClock};
use crate::conn::{self, Activity, CloseReason, Conn, SendTimeout};
use crate::material::MaterialError;
use crate::metrics as m;
use crate::peer::{Cache, Peer};
use crate::pipeline;
use crate::reload::{ReloadError, Trigger};
use crate::runtime::{Runtime, Shared};
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
    /// A certificate, key or CA file is unusable.
    #[error(transparent)]
    Material(#[from] MaterialError),
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
    Http3(#[from] crate::http3::H3Error),
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
        let revocation = crate::revocation::build(&config, Arc::clone(&options.clock))?;
        revocation.load_files().await;
        let resumption = config.listeners.iter().map(|_| ResumptionState::new()).collect::<Result<Vec<_>, _>>()?;
        let runtime = Runtime::build(&config, &cache, &revocation, &provider, &resumption, &options.clock)?;
        for warning in runtime.trust.anchor_warnings(options.clock.now()) {
            tracing::warn!("{warning}");
        }
        let tokens = Arc::new(crate::auth::tokens::build(&config, &provider)?);
        let directory = Arc::new(
            crate::directory::Directory::build(&config.role_directory, &provider).map_err(MaterialError::from)?,
        );
        let audit = Arc::new(crate::audit::Audit::start(&config.audit).map_err(StartError::Audit)?);
        for warning in spinegate_config::lint(&config) {
            tracing::warn!("{warning}");
        }
        let shared = Arc::new(Shared {
            runtime: arc_swap::ArcSwap::from_pointee(runtime),
            cache,
            revocation,
            clock: options.clock,
            provider,
            resumption,
            metrics: m::install(),
            ready: false.into(),
            admin_token: crate::runtime::admin_token(&config)?,
            tokens,
            directory: arc_swap::ArcSwap::new(directory),
            directory_config: std::sync::Mutex::new(config.role_directory.clone()),
            restart_only: std::sync::Mutex::new(crate::reload::restart_only(&config)),
            reload_status: std::sync::Mutex::default(),
            audit,
            h3: std::sync::Mutex::default(),
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
                    let udp =
                        crate::http3::start(index, addr, settings, &shared, stopped.clone(), connections.clone())?;
                    tracing::info!(listener = %listener.name, %udp, "serving HTTP/3");
                    settings.alt_svc.then(|| {
                        let value = format!("h3=\":{}\"; ma={}", udp.port(), settings.alt_svc_max_age.as_secs());
                        http::HeaderValue::from_str(&value).expect("a port and a number are a valid header value")
                    })
                }
                None => None,
            };
            tokio::spawn(accept_loop(
                tcp,
                index,
                Arc::clone(&shared),
                stopped.clone(),
                connections.clone(),
                Arc::new(Semaphore::new(config.limits.max_connections.get())),
                alt_svc,
            ));
        }
        let admin_tcp = bind(config.admin.listen).await?;
        let admin = admin_tcp.local_addr().map_err(|source| StartError::Bind { addr: config.admin.listen, source })?;
        tokio::spawn(crate::admin::serve(admin_tcp, Arc::clone(&shared), config.admin.clone(), stopped.clone()));
        tokio::spawn(Arc::clone(&shared.revocation).run(stopped.clone()));
        tokio::spawn(crate::directory::keep_current(Arc::clone(&shared), stopped.clone()));
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

    /// Reloads from `path` on SIGHUP and when it, or a file it names, changes, until shutdown.
    pub fn watch(&self, path: std::path::PathBuf) {
        tokio::spawn(crate::reload::watch(Arc::clone(&self.shared), path, self.stop.subscribe()));
    }

    /// The audit log (tests flush it before reading the file).
    pub fn audit(&self) -> &crate::audit::Audit {
        &self.shared.audit
    }

    /// The verified-chain cache (for inspection by tests and benchmarks).
    pub fn chain_cache(&self) -> &Cache {
        &self.shared.cache
    }

    /// Stops accepting, lets in-flight requests finish for at most `deadline`, then returns.
    pub async fn shutdown(self, deadline: Duration) {
        self.shared.ready.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        self.connections.close();
        if tokio::time::timeout(deadline, self.connections.wait()).await.is_err() {
            tracing::warn!(?deadline, "drain deadline passed with connections still open");
        }
        let audit = Arc::clone(&self.shared.audit);
        let _ = tokio::task::spawn_blocking(move || audit.flush(Duration::from_secs(5))).await;
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
}

async fn accept_loop(
    listener: TcpListener,
    index: usize,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    connections: TaskTracker,
    slots: Arc<Semaphore>,
    alt_svc: Option<http::HeaderValue>,
) {
    loop {
        // Take a slot first: at the connection cap, new clients wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stopped.changed() => return,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let stopped = stopped.clone();
        let alt_svc = alt_svc.clone();
        connections.spawn(async move {
            serve_connection(stream, remote, index, shared, stopped, alt_svc).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    index: usize,
    shared: Arc<Shared>,
    stopped: watch::Receiver<bool>,
    alt_svc: Option<http::HeaderValue>,
) {
    let runtime = shared.runtime.load_full();
    let listener_name = runtime.listeners[index].name.to_string();
    let limits = runtime.limits.clone();
    let acceptor = TlsAcceptor::from(Arc::clone(&runtime.tls[index]));
    drop(runtime);

    let started = Instant::now();
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream).into_fallible()).await {
        Ok(Ok(tls)) => tls,
        Ok(Err((e, stream))) => {
            metrics::counter!(m::TLS_HANDSHAKES, "listener" => listener_name, "outcome" => "failed", "version" => "none", "resumed" => "false", "transport" => "tcp").increment(1);
            tracing::debug!(client = %remote, error = %e, "TLS handshake failed");
            linger(stream).await;
            return;
        }
        Err(_) => {
            metrics::counter!(m::TLS_HANDSHAKES, "listener" => listener_name, "outcome" => "timeout", "version" => "none", "resumed" => "false", "transport" => "tcp").increment(1);
            return;
        }
    };
    let (_, session) = tls.get_ref();
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "other",
    };
    let resumed = session.handshake_kind() == Some(HandshakeKind::Resumed);
    metrics::counter!(m::TLS_HANDSHAKES, "listener" => listener_name.clone(), "outcome" => "ok", "version" => version, "resumed" => if resumed { "true" } else { "false" }, "transport" => "tcp").increment(1);
    metrics::histogram!(m::TLS_HANDSHAKE_DURATION, "listener" => listener_name.clone())
        .record(started.elapsed().as_secs_f64());
    let h2 = session.alpn_protocol() == Some(b"h2");
    let peer = session.peer_certificates().and_then(Peer::new);

    let conn = Arc::new(Conn {
        shared,
        listener: index,
        remote,
        peer,
        activity: Activity::default(),
        close: tokio::sync::Notify::new(),
        alt_svc,
    });
    let open = metrics::gauge!(m::CONNECTIONS_OPEN, "listener" => listener_name.clone());
    open.increment(1.0);
    let service = {
        let conn = Arc::clone(&conn);
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            pipeline::handle(Arc::clone(&conn), req.map(http_body_util::Either::Left))
        })
    };
    let io = TokioIo::new(SendTimeout::new(tls, limits.send_timeout));
    let closed = if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(hard_header_cap(&limits))
            .max_concurrent_streams(limits.max_concurrent_streams)
            .keep_alive_interval(Some(Duration::from_secs(60)))
            .keep_alive_timeout(Duration::from_secs(20));
        drive(builder.serve_connection(io, service), &conn, stopped, &limits).await
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(hard_header_cap(&limits) as usize);
        drive(builder.serve_connection(io, service), &conn, stopped, &limits).await
    };
    closed.record(&listener_name, "tcp");
    open.decrement(1.0);
}

/// Closes a connection whose handshake failed without losing the alert already written: in TLS
/// 1.3 the client may have sent its first request before it reads our verdict, and closing a
/// socket with unread input makes the kernel send a reset that can discard the alert in flight.
/// So: send FIN, read and discard what arrives until the client closes, for at most a second and
/// 64 KiB, then close.
async fn linger(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut left = 64 * 1024usize;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// hyper's own cap, above ours so that oversized headers reach the pipeline and get a
/// problem+json 431 rather than a bare connection error.
fn hard_header_cap(limits: &spinegate_config::Limits) -> u32 {
    let ours = limits.max_request_header_bytes.get();
    u32::try_from(ours.saturating_mul(2).max(16 * 1024)).unwrap_or(u32::MAX)
}

/// A hyper server connection that can be asked to finish gracefully.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn begin_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> Graceful for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs a connection to completion and says why it ended. A graceful close (GOAWAY, or
/// `Connection: close` after the request in flight) starts on shutdown, on a refusal that closes
/// the connection, or after `idle_timeout` without a request. A connection on which no request
/// began within `header_read_timeout` (an HTTP/2 client that never sends its preface) is dropped
/// at once: there is nothing to say goodbye to, and hyper would wait for the preface before it
/// could send GOAWAY. A closing connection with nothing in flight is dropped after
/// [`conn::CLOSE_GRACE`], so no state a client can hold open is unbounded.
async fn drive(
    connection: impl Graceful,
    conn: &Conn,
    mut stopped: watch::Receiver<bool>,
    limits: &spinegate_config::Limits,
) -> CloseReason {
    let mut connection = pin!(connection);
    let mut closing: Option<(CloseReason, tokio::time::Instant)> = None;
    let mut timers = tokio::time::interval(conn::timer_tick(limits.header_read_timeout, limits.idle_timeout));
    timers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let begin = tokio::select! {
            result = connection.as_mut() => return ended(conn, result, closing.map(|(why, _)| why)),
            _ = stopped.changed(), if closing.is_none() => CloseReason::Drain,
            () = conn.close.notified(), if closing.is_none() => CloseReason::Refusal,
            _ = timers.tick() => match closing {
                None => match conn.activity.expired(limits.header_read_timeout, limits.idle_timeout) {
                    Some(CloseReason::FirstRequestTimeout) => {
                        tracing::debug!(client = %conn.remote, "no request within the header read timeout; closed");
                        return CloseReason::FirstRequestTimeout;
                    }
                    Some(why) => why,
                    None => continue,
                },
                Some((why, since)) => {
                    if conn.activity.in_flight() == 0 && since.elapsed() >= conn::CLOSE_GRACE {
                        return why;
                    }
                    continue;
                }
            },
        };
        closing = Some((begin, tokio::time::Instant::now()));
        connection.as_mut().begin_shutdown();
    }
}

/// Why a connection whose hyper future finished ended: the gateway's own reason when it was
/// closing it, else the client's doing or the error's kind.
fn ended(conn: &Conn, result: Result<(), hyper::Error>, closing: Option<CloseReason>) -> CloseReason {
    match (result, closing) {
        (Err(e), _) if conn::is_send_timeout(&e) => {
            tracing::debug!(client = %conn.remote, "client stopped reading; closed after the send timeout");
            CloseReason::SendTimeout
        }
        (Err(e), _) if e.is_timeout() => CloseReason::HeaderTimeout,
        (_, Some(why)) => why,
        (Ok(()), None) => CloseReason::Client,
        (Err(e), None) => {
            tracing::debug!(client = %conn.remote, error = %e, "connection ended with an error");
            CloseReason::Error
        }
    }
}
