//! One client connection as the request pipeline and both transports ([`crate::serve`]) see it:
//! who is on it, what it is doing, and the timers that bound every state it can sit in.
//!
//! | state | bound |
//! |---|---|
//! | TLS handshake | `handshake_timeout` |
//! | open, no request yet (HTTP/2 preface, QUIC without a stream, HTTP/1.1 head) | `header_read_timeout` |
//! | between requests | `idle_timeout` (HTTP/1.1: also hyper's header timer) |
//! | reading a request body | `body_read_timeout` between reads, `min_body_rate` overall ([`crate::proxy::body`]) |
//! | writing to the client (half-closed or not reading) | `send_timeout` without progress ([`SendTimeout`]) |
//! | closing (GOAWAY sent, nothing in flight) | [`CLOSE_GRACE`], then the socket is dropped |
//!
//! Every close is counted by why it happened ([`CloseReason`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::metrics as m;
use crate::peer::Peer;
use crate::runtime::Services;

/// How long a connection that is closing with nothing in flight may take to say goodbye (flush
/// GOAWAY, let the client close first) before its socket is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// One client connection, shared by its requests.
#[derive(Debug)]
pub struct Conn {
    /// What requests read.
    pub services: Arc<Services>,
    /// Index of the listener it arrived on.
    pub listener: usize,
    /// The client's address.
    pub remote: SocketAddr,
    /// The client certificate, when one was presented.
    pub peer: Option<Peer>,
    /// Its traffic, for the timers and drain.
    pub traffic: Traffic,
    /// Signalled when a response decided the connection must close.
    pub close: Notify,
    /// `Alt-Svc` for this connection's responses (TCP listeners that also serve HTTP/3).
    pub alt_svc: Option<HeaderValue>,
}

impl Conn {
    /// A connection just past its handshake, with no traffic yet.
    pub fn new(
        services: Arc<Services>,
        listener: usize,
        remote: SocketAddr,
        peer: Option<Peer>,
        alt_svc: Option<HeaderValue>,
    ) -> Self {
        Self { services, listener, remote, peer, traffic: Traffic::default(), close: Notify::new(), alt_svc }
    }
}

/// A connection's traffic: when it opened, requests started and in flight, and when it was last
/// active (for the first-request and idle timers and the drain). Not an RBAC activity.
#[derive(Debug)]
pub struct Traffic {
    opened: Instant,
    started: AtomicU64,
    in_flight: AtomicUsize,
    last_millis: AtomicU64,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            opened: Instant::now(),
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_millis: AtomicU64::new(0),
        }
    }
}

/// Why a connection closed: the `reason` label of `spinegate_connections_closed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed it (or finished its requests and said goodbye).
    Client,
    /// A protocol or I/O error.
    Error,
    /// No request began within `header_read_timeout` of the handshake (a silent HTTP/2
    /// connection that never sends its preface, a QUIC connection without a stream).
    FirstRequestTimeout,
    /// An HTTP/1.1 request head did not arrive within `header_read_timeout`.
    HeaderTimeout,
    /// A write to the client made no progress for `send_timeout`.
    SendTimeout,
    /// No request for `idle_timeout`.
    Idle,
    /// A refusal that closes the connection (a revoked card, an oversized request …).
    Refusal,
    /// The gateway is draining.
    Drain,
}

impl CloseReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Error => "error",
            CloseReason::FirstRequestTimeout => "first_request_timeout",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::SendTimeout => "send_timeout",
            CloseReason::Idle => "idle",
            CloseReason::Refusal => "refusal",
            CloseReason::Drain => "drain",
        }
    }

    /// Counts one close on `listener` over `transport` (`tcp`, `quic`).
    pub fn record(self, listener: &str, transport: &'static str) {
        metrics::counter!(m::CONNECTIONS_CLOSED, "listener" => listener.to_owned(), "transport" => transport, "reason" => self.label())
            .increment(1);
    }
}

impl Traffic {
    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has had no request in flight (zero while one is).
    pub fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(last)
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether a timer says the connection must close now: no request began within
    /// `first_request` of opening, or none has been in flight for `idle`.
    pub fn expired(&self, first_request: Duration, idle: Duration) -> Option<CloseReason> {
        if self.started.load(Ordering::Relaxed) == 0 {
            return (self.opened.elapsed() >= first_request).then_some(CloseReason::FirstRequestTimeout);
        }
        (self.idle_for() >= idle).then_some(CloseReason::Idle)
    }
}

/// How often a connection's timers are looked at: a fraction of the shortest, within reason.
pub fn timer_tick(first_request: Duration, idle: Duration) -> Duration {
    (first_request.min(idle) / 8).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

/// A request in flight on a connection, for as long as it lives.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Traffic);

impl<'a> InFlight<'a> {
    /// Marks a request as begun.
    pub fn begin(traffic: &'a Traffic) -> Self {
        traffic.started.fetch_add(1, Ordering::Relaxed);
        traffic.in_flight.fetch_add(1, Ordering::Relaxed);
        traffic.touch();
        m::request::in_flight(1.0);
        Self(traffic)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        m::request::in_flight(-1.0);
    }
}

/// A client stream whose writes must make progress: a write, flush or shutdown that stays
/// pending for `timeout` fails with [`SendTimedOut`], so a client that stops reading (or
/// half-closes and never reads) cannot hold the connection and its buffers.
#[derive(Debug)]
pub struct SendTimeout<S> {
    inner: S,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

/// The error a stalled write ends with.
#[derive(Debug, thiserror::Error)]
#[error("no write progress to the client within the send timeout")]
pub struct SendTimedOut;

impl<S> SendTimeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self { inner, timeout, stalled: None }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Passes a poll's result on, arming the timer while it is pending and failing once the
    /// timer fires.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, SendTimedOut))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

/// Whether an error chain ends in a [`SendTimedOut`].
pub fn is_send_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if err.is::<SendTimedOut>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<SendTimedOut>())
        {
            return true;
        }
        cause = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_times_the_write_out() {
        // A 1 KiB pipe nobody reads: the second write stays pending.
        let (client, _server_end_never_read) = tokio::io::duplex(1024);
        let mut stream = SendTimeout::new(client, Duration::from_secs(30));
        stream.write_all(&[0u8; 1024]).await.unwrap();
        let started = Instant::now();
        let err = stream.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(is_send_timeout(&err));
        assert_eq!(started.elapsed().as_secs(), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_resets_the_send_timer() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut stream = SendTimeout::new(client, Duration::from_secs(30));
        // The reader drains 1 KiB every 20 s: always within the timeout.
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 1024];
            let mut total = 0;
            while total < 4096 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                total += server.read(&mut buf).await.unwrap();
            }
        });
        stream.write_all(&[0u8; 4096]).await.unwrap();
        reader.await.unwrap();
    }

    #[test]
    fn a_connection_without_any_request_expires_after_the_first_request_bound() {
        let traffic = Traffic { opened: Instant::now() - Duration::from_secs(11), ..Traffic::default() };
        assert_eq!(
            traffic.expired(Duration::from_secs(10), Duration::from_secs(300)),
            Some(CloseReason::FirstRequestTimeout)
        );
        assert_eq!(traffic.expired(Duration::from_secs(20), Duration::from_secs(300)), None);
        let _request = InFlight::begin(&traffic);
        assert_eq!(traffic.expired(Duration::from_secs(10), Duration::from_secs(1)), None, "busy is not idle");
    }
}
