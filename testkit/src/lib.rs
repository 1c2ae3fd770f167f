//! # spinegate-testkit
//!
//! The client side that spinegate's tests and its load tester both need, written once: rustls
//! client settings that trust a CA and present a card ([`tls`]), HTTP/1.1 and HTTP/2 clients
//! chosen by ALPN and byte-for-byte raw HTTP/1.1 requests ([`http`]), an HTTP/3 client ([`h3`]),
//! the TLS alert a refused handshake ended with, and a count of
//! the session tickets a client offered.
//!
//! ## Layout
//! - [`tls`]: [`tls::ClientTls`], roots from PEM, QUIC client settings.
//! - [`http`]: [`http::Client`], [`http::Resp`], [`http::raw_http1`], [`http::handshake_alert`].
//! - [`h3`]: [`h3::H3`], an HTTP/3 connection from a quinn client endpoint.
//! - [`tickets`]: [`tickets::TicketCounter`], a session store that counts the tickets it offers.

pub mod h3;
pub mod http;
pub mod tickets;
pub mod tls;

/// Runs `f` with a deadline so a hang fails the test instead of stalling CI.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(secs), f).await.expect("timed out")
}
