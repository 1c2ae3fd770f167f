//! `[limits]`: request sizes, timeouts and concurrency on the client listeners.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration, secs, unspanned};

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Most bytes of request headers (431 beyond).
    #[serde(default = "default_header_bytes")]
    pub max_request_header_bytes: Spanned<u64>,
    /// Most bytes of request body (413 beyond).
    #[serde(default = "default_body_bytes")]
    pub max_request_body_bytes: u64,
    /// Time allowed for a request head: from the handshake to the first request on any
    /// protocol (an HTTP/2 preface included), and on HTTP/1.1 from waiting for each request
    /// until its head is complete (so also the HTTP/1.1 keep-alive idle limit).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    /// An HTTP/2 or HTTP/3 connection with no request in flight is closed after this long.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Longest wait between two reads of a request body (nginx `client_body_timeout`); 408
    /// beyond.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout: HumanDuration,
    /// Least average request-body rate, bytes per second, once `body_read_timeout` has passed
    /// since the body began (Apache `mod_reqtimeout` `MinRate`); 0 for none; 408 below.
    #[serde(default = "default_min_body_rate")]
    pub min_body_rate: u64,
    /// Longest a write to the client may make no progress (nginx `send_timeout`) before the
    /// connection is closed.
    #[serde(default = "default_send_timeout")]
    pub send_timeout: HumanDuration,
    /// Most concurrent requests (streams) per HTTP/2 connection.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: Spanned<u64>,
    /// Time allowed for the TLS handshake.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: HumanDuration,
    /// Most concurrent connections per listener; more wait in the kernel's accept queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: Spanned<u64>,
}

/// `[limits]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of request headers.
    pub max_request_header_bytes: NonZeroUsize,
    /// Most bytes of request body.
    pub max_request_body_bytes: u64,
    /// Time allowed for a request head, and for the first request after the handshake.
    pub header_read_timeout: Duration,
    /// Idle keep-alive connections are closed after this long.
    pub idle_timeout: Duration,
    /// Longest wait between two reads of a request body.
    pub body_read_timeout: Duration,
    /// Least average request-body rate in bytes per second (0: none), enforced once
    /// `body_read_timeout` has passed since the body began.
    pub min_body_rate: u64,
    /// Longest a write to the client may make no progress.
    pub send_timeout: Duration,
    /// Most concurrent requests per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Most concurrent connections per listener.
    pub max_connections: NonZeroUsize,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_request_header_bytes: default_header_bytes(),
            max_request_body_bytes: default_body_bytes(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
            body_read_timeout: default_body_read_timeout(),
            min_body_rate: default_min_body_rate(),
            send_timeout: default_send_timeout(),
            max_concurrent_streams: default_max_concurrent_streams(),
            handshake_timeout: default_handshake_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_header_bytes() -> Spanned<u64> {
    unspanned(32 * 1024)
}
fn default_body_bytes() -> u64 {
    10 * 1024 * 1024
}
fn default_header_read_timeout() -> HumanDuration {
    secs(30)
}
fn default_idle_timeout() -> HumanDuration {
    secs(300)
}
fn default_body_read_timeout() -> HumanDuration {
    secs(30)
}
fn default_min_body_rate() -> u64 {
    500
}
fn default_send_timeout() -> HumanDuration {
    secs(30)
}
fn default_max_concurrent_streams() -> Spanned<u64> {
    unspanned(100)
}
fn default_handshake_timeout() -> HumanDuration {
    secs(10)
}

/// The default connection cap, per TCP listener here and per `[listener.http3]` endpoint.
pub(crate) fn default_max_connections() -> Spanned<u64> {
    unspanned(10_000)
}

/// `[limits]`, validated.
pub(crate) fn validate(ctx: &Ctx<'_>, l: &RawLimits) -> Result<Limits, ConfigError> {
    let limits = Limits {
        max_request_header_bytes: ctx.nonzero(&l.max_request_header_bytes, "max_request_header_bytes")?,
        max_request_body_bytes: l.max_request_body_bytes,
        header_read_timeout: ctx.positive(&l.header_read_timeout, "header_read_timeout")?,
        idle_timeout: ctx.positive(&l.idle_timeout, "idle_timeout")?,
        body_read_timeout: ctx.positive(&l.body_read_timeout, "body_read_timeout")?,
        min_body_rate: l.min_body_rate,
        send_timeout: ctx.positive(&l.send_timeout, "send_timeout")?,
        max_concurrent_streams: u32::try_from(*l.max_concurrent_streams.get_ref())
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ctx.invalid(l.max_concurrent_streams.span(), "max_concurrent_streams must be 1 to 1000"))?,
        handshake_timeout: l.handshake_timeout.0,
        max_connections: ctx.nonzero(&l.max_connections, "max_connections")?,
    };
    if limits.max_request_header_bytes.get() < 1024 {
        return Err(ctx.invalid(
            l.max_request_header_bytes.span(),
            "max_request_header_bytes below 1024 would refuse ordinary requests",
        ));
    }
    Ok(limits)
}
