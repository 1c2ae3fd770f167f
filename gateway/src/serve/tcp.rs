//! Connections over TCP: accept (a semaphore caps them per listener), the TLS handshake with its
//! timeout, HTTP/1.1 or HTTP/2 by ALPN through the pipeline, and closing — gracefully on drain,
//! refusal or idleness, by force when a client holds a connection without using it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::HandshakeKind;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use super::lifecycle::{Handshake, Step, Timers};
use crate::conn::{self, CloseReason, Conn, SendTimeout};
use crate::metrics as m;
use crate::peer::Peer;
use crate::pipeline;
use crate::runtime::Services;

/// Accepts TLS connections on listener `index` until `stopped`, at most `slots` at a time.
pub(super) async fn accept_loop(
    listener: TcpListener,
    index: usize,
    services: Arc<Services>,
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
        let services = Arc::clone(&services);
        let stopped = stopped.clone();
        let alt_svc = alt_svc.clone();
        connections.spawn(async move {
            serve_connection(stream, remote, index, services, stopped, alt_svc).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    index: usize,
    services: Arc<Services>,
    stopped: watch::Receiver<bool>,
    alt_svc: Option<http::HeaderValue>,
) {
    let runtime = services.runtime.load_full();
    let listener_name = runtime.listeners[index].name.to_string();
    let limits = runtime.limits.clone();
    let acceptor = TlsAcceptor::from(Arc::clone(&runtime.listeners[index].tls));
    drop(runtime);

    let started = Instant::now();
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream).into_fallible()).await {
        Ok(Ok(tls)) => tls,
        Ok(Err((e, stream))) => {
            Handshake::unfinished(&listener_name, "failed", "tcp");
            tracing::debug!(client = %remote, error = %e, "TLS handshake failed");
            linger(stream).await;
            return;
        }
        Err(_) => {
            Handshake::unfinished(&listener_name, "timeout", "tcp");
            return;
        }
    };
    let (_, session) = tls.get_ref();
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "other",
    };
    let resumed = if session.handshake_kind() == Some(HandshakeKind::Resumed) { "true" } else { "false" };
    Handshake { listener: &listener_name, outcome: "ok", version, resumed, transport: "tcp" }.count();
    metrics::histogram!(m::TLS_HANDSHAKE_DURATION, "listener" => listener_name.clone())
        .record(started.elapsed().as_secs_f64());
    let h2 = session.alpn_protocol() == Some(b"h2");
    let peer = session.peer_certificates().and_then(Peer::new);

    let conn = Arc::new(Conn::new(services, index, remote, peer, alt_svc));
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
/// the connection, or when the timers say so; a connection on which no request began (an HTTP/2
/// client that never sends its preface: hyper would wait for it before it could send GOAWAY), or
/// a closing one with nothing in flight past its grace, is dropped ([`Timers`]).
async fn drive(
    connection: impl Graceful,
    conn: &Conn,
    mut stopped: watch::Receiver<bool>,
    limits: &spinegate_config::Limits,
) -> CloseReason {
    let mut connection = pin!(connection);
    let mut timers = Timers::new(limits.header_read_timeout, limits.idle_timeout);
    loop {
        let begin = tokio::select! {
            result = connection.as_mut() => return ended(conn, result, timers.closing()),
            _ = stopped.changed(), if timers.closing().is_none() => CloseReason::Drain,
            () = conn.close.notified(), if timers.closing().is_none() => CloseReason::Refusal,
            () = timers.tick() => match timers.step(&conn.traffic) {
                Step::Continue => continue,
                Step::Begin(why) => why,
                Step::End(why) => {
                    tracing::debug!(client = %conn.remote, reason = why.label(), "connection dropped by its timers");
                    return why;
                }
            },
        };
        timers.closing_for(begin);
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
