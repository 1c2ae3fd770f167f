//! HTTP/3 over QUIC (quinn + h3) beside a TCP listener: the same port number over UDP, the same
//! certificates and client-certificate verifier (so the same chain cache and revocation checks),
//! and every request through the same [`crate::pipeline::handle`] as TCP — authentication, the
//! per-request certificate re-check, policy, audit and proxying (upstreams stay HTTP/1.1 or
//! HTTP/2).
//!
//! 0-RTT is off ([`crate::tls::quic_config`]). A resumed QUIC session carries the certificate the
//! original handshake verified; it is re-checked on every request like any other. Reloads hand
//! each endpoint the new TLS configuration ([`refresh`]); shutdown refuses new connections, sends
//! each connection GOAWAY, lets its requests finish and closes it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, header};
use http_body_util::{BodyExt, Either};
use spinegate_config::Http3;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

use super::lifecycle::{Handshake, Step, Timers};
use super::quic_body::RequestBody;
use crate::conn::{CLOSE_GRACE, CloseReason, Conn};
use crate::metrics as m;
use crate::peer::Peer;
use crate::pipeline;
use crate::runtime::{QuicEndpoint, Services, Shared};

/// HTTP/3 `H3_NO_ERROR`: the code a connection closes with after a graceful drain.
const H3_NO_ERROR: u32 = 0x100;

/// Why an HTTP/3 endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum H3Error {
    /// The UDP socket could not be made or bound.
    #[error("cannot listen for HTTP/3 on udp {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The transport settings are out of QUIC's range.
    #[error("[listener.http3]: {0}")]
    Transport(String),
}

/// Binds the UDP socket for listener `index` at `addr` with the configured buffer sizes and starts
/// serving HTTP/3 on it until `stopped`.
pub(crate) fn start(
    index: usize,
    addr: SocketAddr,
    settings: &Http3,
    shared: &Arc<Shared>,
    stopped: watch::Receiver<bool>,
    connections: TaskTracker,
) -> Result<SocketAddr, H3Error> {
    let socket = udp_socket(addr, settings).map_err(|source| H3Error::Bind { addr, source })?;
    let transport = Arc::new(transport(settings)?);
    let runtime = shared.services.runtime.load();
    let crypto =
        runtime.listeners[index].quic.clone().ok_or_else(|| H3Error::Transport("no QUIC configuration".into()))?;
    drop(runtime);
    let mut config = quinn::ServerConfig::with_crypto(crypto.quic);
    config.transport_config(Arc::clone(&transport));
    let endpoint =
        quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(config), socket, Arc::new(quinn::TokioRuntime))
            .map_err(|source| H3Error::Bind { addr, source })?;
    let bound = endpoint.local_addr().map_err(|source| H3Error::Bind { addr, source })?;
    shared.quic.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(QuicEndpoint {
        index,
        endpoint: endpoint.clone(),
        transport,
    });
    let slots = Arc::new(Semaphore::new(settings.max_connections.get()));
    tokio::spawn(accept_loop(endpoint, index, Arc::clone(&shared.services), stopped, connections, slots));
    Ok(bound)
}

/// Gives every HTTP/3 endpoint the current runtime's TLS configuration: new handshakes use it,
/// open connections keep theirs (their certificate is re-checked per request regardless).
pub(crate) fn refresh(shared: &Shared) {
    let runtime = shared.services.runtime.load();
    for h3 in shared.quic.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
        // A reload that removed [listener.http3] leaves the endpoint running until restart (a
        // start-up setting): it still gets the new certificates and trust.
        let listener = &runtime.listeners[h3.index];
        let crypto = listener.quic.clone().or_else(|| crate::tls::quic_config(&listener.tls).ok());
        if let Some(crypto) = crypto {
            let mut config = quinn::ServerConfig::with_crypto(crypto.quic);
            config.transport_config(Arc::clone(&h3.transport));
            h3.endpoint.set_server_config(Some(config));
        }
    }
}

fn udp_socket(addr: SocketAddr, settings: &Http3) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // The kernel may cap these (net.core.rmem_max / wmem_max); it is not an error if it does,
    // and the effective sizes are logged.
    socket.set_recv_buffer_size(settings.udp_receive_buffer)?;
    socket.set_send_buffer_size(settings.udp_send_buffer)?;
    socket.bind(&addr.into())?;
    tracing::debug!(
        %addr,
        receive_buffer = socket.recv_buffer_size().unwrap_or(0),
        send_buffer = socket.send_buffer_size().unwrap_or(0),
        "HTTP/3 socket bound"
    );
    Ok(socket.into())
}

fn transport(settings: &Http3) -> Result<quinn::TransportConfig, H3Error> {
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(settings.transport_idle_timeout)
        .map_err(|e| H3Error::Transport(format!("transport_idle_timeout: {e}")))?;
    transport
        .max_idle_timeout(Some(idle))
        .max_concurrent_bidi_streams(settings.max_concurrent_streams.into())
        // Clients open three unidirectional streams (control, QPACK encoder and decoder); a few
        // more are harmless, many are not.
        .max_concurrent_uni_streams(8u32.into());
    Ok(transport)
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    index: usize,
    services: Arc<Services>,
    mut stopped: watch::Receiver<bool>,
    connections: TaskTracker,
    slots: Arc<Semaphore>,
) {
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => return,
            },
            _ = stopped.changed() => break,
        };
        // At the cap the client is refused at once and falls back to TCP.
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            Handshake::unfinished(&services.runtime.load().listeners[index].name, "refused", "quic");
            incoming.refuse();
            continue;
        };
        let services = Arc::clone(&services);
        let stopped = stopped.clone();
        connections.spawn(async move {
            serve_connection(incoming, index, services, stopped).await;
            drop(permit);
        });
    }
    // Draining: no new connections; those open finish their requests (their tasks are in
    // `connections`, which shutdown waits for), then the endpoint says goodbye.
    endpoint.set_server_config(None);
    connections.spawn(async move {
        endpoint.wait_idle().await;
    });
}

async fn serve_connection(
    incoming: quinn::Incoming,
    index: usize,
    services: Arc<Services>,
    stopped: watch::Receiver<bool>,
) {
    let remote = incoming.remote_address();
    let runtime = services.runtime.load_full();
    let listener_name = runtime.listeners[index].name.to_string();
    let limits = runtime.limits.clone();
    drop(runtime);
    let failed = |outcome: &'static str| Handshake::unfinished(&listener_name, outcome, "quic");

    let started = Instant::now();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => {
            failed("failed");
            tracing::debug!(client = %remote, error = %e, "QUIC connection not accepted");
            return;
        }
    };
    let connection = match tokio::time::timeout(limits.handshake_timeout, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            failed("failed");
            tracing::debug!(client = %remote, error = %e, "QUIC handshake failed");
            return;
        }
        Err(_) => {
            failed("timeout");
            return;
        }
    };
    // quinn does not say whether the TLS session was resumed.
    Handshake { listener: &listener_name, outcome: "ok", version: "1.3", resumed: "unknown", transport: "quic" }
        .count();
    metrics::histogram!(m::TLS_HANDSHAKE_DURATION, "listener" => listener_name.clone())
        .record(started.elapsed().as_secs_f64());
    let peer = connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>().ok())
        .and_then(|chain| Peer::new(&chain));

    let conn = Arc::new(Conn::new(services, index, remote, peer, None));
    let open = metrics::gauge!(m::CONNECTIONS_OPEN, "listener" => listener_name.clone());
    open.increment(1.0);
    let cap = u64::try_from(limits.max_request_header_bytes.get().saturating_mul(2)).unwrap_or(u64::MAX);
    // The control streams come first; a client that never opens them is as silent as one that
    // never sends a request.
    let mut builder = h3::server::builder();
    let setup = builder.max_field_section_size(cap).build(h3_quinn::Connection::new(connection.clone()));
    let closed = match tokio::time::timeout(limits.header_read_timeout, setup).await {
        Ok(Ok(h3)) => drive(h3, &conn, &connection, stopped, &limits).await,
        Ok(Err(e)) => {
            tracing::debug!(client = %remote, error = %e, "HTTP/3 connection setup failed");
            CloseReason::Error
        }
        Err(_) => {
            connection.close(H3_NO_ERROR.into(), b"");
            CloseReason::FirstRequestTimeout
        }
    };
    closed.record(&listener_name, "quic");
    open.decrement(1.0);
}

type H3Connection = h3::server::Connection<h3_quinn::Connection, Bytes>;

/// Accepts requests until the client goes, the gateway drains, a refusal closes the connection,
/// no request begins within `header_read_timeout`, or `idle_timeout` passes without one; then
/// sends GOAWAY, lets accepted requests finish and closes the connection. A stream whose
/// request headers do not arrive within `header_read_timeout` is dropped (it would otherwise
/// hold a stream slot, and the drain, for ever), and every write to the client is bounded by
/// `send_timeout`.
async fn drive(
    mut h3: H3Connection,
    conn: &Arc<Conn>,
    connection: &quinn::Connection,
    mut stopped: watch::Receiver<bool>,
    limits: &spinegate_config::Limits,
) -> CloseReason {
    let requests = TaskTracker::new();
    let mut timers = Timers::new(limits.header_read_timeout, limits.idle_timeout);
    let why = loop {
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    let conn = Arc::clone(conn);
                    let (head_timeout, send_timeout) = (limits.header_read_timeout, limits.send_timeout);
                    requests.spawn(async move {
                        match tokio::time::timeout(head_timeout, resolver.resolve_request()).await {
                            Ok(Ok((request, stream))) => serve_request(conn, request, stream, send_timeout).await,
                            Ok(Err(e)) => tracing::debug!(client = %conn.remote, error = %e, "HTTP/3 request unreadable"),
                            Err(_) => tracing::debug!(client = %conn.remote, "HTTP/3 request headers timed out; stream dropped"),
                        }
                    });
                }
                // The client sent GOAWAY (or closed) and every request is done.
                Ok(None) => break None,
                Err(e) => {
                    tracing::debug!(client = %conn.remote, error = %e, "HTTP/3 connection ended");
                    break Some(CloseReason::Error);
                }
            },
            _ = stopped.changed() => break Some(CloseReason::Drain),
            () = conn.close.notified() => break Some(CloseReason::Refusal),
            () = timers.tick() => match timers.step(&conn.traffic) {
                Step::Continue => {}
                // Both end in GOAWAY here: requests already accepted are bounded by their own
                // timers, so the drain below ends.
                Step::Begin(why) | Step::End(why) => break Some(why),
            },
        }
    };
    let graceful = matches!(
        why,
        Some(CloseReason::Drain | CloseReason::Refusal | CloseReason::Idle | CloseReason::FirstRequestTimeout)
    );
    if graceful {
        // GOAWAY naming the last accepted request: the client retries later ones elsewhere.
        if let Err(e) = h3.shutdown(0).await {
            tracing::debug!(client = %conn.remote, error = %e, "HTTP/3 GOAWAY not sent");
        }
    }
    requests.close();
    requests.wait().await;
    // A finished response may still be in flight, and closing the connection abandons unsent and
    // unacknowledged data: give the client (which has our GOAWAY) a moment to close first.
    let _ = tokio::time::timeout(CLOSE_GRACE, connection.closed()).await;
    connection.close(H3_NO_ERROR.into(), b"");
    why.unwrap_or(CloseReason::Client)
}

async fn serve_request(
    conn: Arc<Conn>,
    request: http::Request<()>,
    stream: h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>,
    send_timeout: Duration,
) {
    let remote = conn.remote;
    let (mut send, recv) = stream.split();
    let request = request.map(|()| Either::Right(RequestBody::new(recv)));
    let Ok(response) = pipeline::handle(conn, request).await;
    let (mut parts, mut body) = response.into_parts();
    // Connection-specific fields are malformed in HTTP/3 (RFC 9114 §4.2).
    parts.headers.remove(header::CONNECTION);
    // A client that stops reading (QUIC flow control closes) holds the stream no longer than
    // the send timeout per write.
    if let Err(e) = bounded(send_timeout, send.send_response(Response::from_parts(parts, ()))).await {
        tracing::debug!(client = %remote, error = %e, "HTTP/3 response not sent");
        send.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
        return;
    }
    while let Some(frame) = body.frame().await {
        let sent = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => bounded(send_timeout, send.send_data(data)).await,
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => bounded(send_timeout, send.send_trailers(trailers)).await,
                    Err(_) => Ok(()),
                },
            },
            Err(e) => {
                // The upstream broke mid-body: the client must not take a truncated body as whole.
                tracing::debug!(client = %remote, error = %e, "upstream body failed; HTTP/3 stream reset");
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return;
            }
        };
        if let Err(e) = sent {
            tracing::debug!(client = %remote, error = %e, "HTTP/3 client went away or stopped reading");
            send.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
            return;
        }
    }
    if let Err(e) = bounded(send_timeout, send.finish()).await {
        tracing::debug!(client = %remote, error = %e, "HTTP/3 stream not finished");
    }
}

/// Why a write to an HTTP/3 client failed.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Stream(#[from] h3::error::StreamError),
    #[error("no progress within the send timeout")]
    Stalled,
}

/// One write to the client, allowed `timeout` to complete.
async fn bounded(
    timeout: Duration,
    write: impl std::future::Future<Output = Result<(), h3::error::StreamError>>,
) -> Result<(), SendError> {
    match tokio::time::timeout(timeout, write).await {
        Ok(result) => result.map_err(SendError::from),
        Err(_) => Err(SendError::Stalled),
    }
}
