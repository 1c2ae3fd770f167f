//! A client-side TLS session store that counts the TLS 1.3 tickets it offers: how tests and the
//! load tester tell that a QUIC handshake resumed, which quinn does not report (a TLS 1.3 client
//! that offers a ticket the server accepts resumes).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rustls::NamedGroup;
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls_pki_types::ServerName;

/// An in-memory session store (as rustls's own) that remembers whether, and how often, it
/// handed out a ticket.
#[derive(Debug)]
pub struct TicketCounter {
    inner: ClientSessionMemoryCache,
    last: AtomicBool,
    total: AtomicUsize,
}

impl TicketCounter {
    /// A store holding sessions for at most `size` servers.
    pub fn new(size: usize) -> Self {
        Self { inner: ClientSessionMemoryCache::new(size), last: AtomicBool::new(false), total: AtomicUsize::new(0) }
    }

    /// Whether the most recent handshake that looked for a ticket found one to offer.
    pub fn last_offered(&self) -> bool {
        self.last.load(Ordering::Relaxed)
    }

    /// How many tickets have been offered.
    pub fn offered(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl ClientSessionStore for TicketCounter {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(name, group);
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(name)
    }
    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(name, value);
    }
    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.inner.remove_tls12_session(name);
    }
    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.inner.insert_tls13_ticket(name, value);
    }
    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        let ticket = self.inner.take_tls13_ticket(name);
        self.last.store(ticket.is_some(), Ordering::Relaxed);
        if ticket.is_some() {
            self.total.fetch_add(1, Ordering::Relaxed);
        }
        ticket
    }
}
