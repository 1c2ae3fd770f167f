//! Time as a parameter. The gateway asks a [`Clock`] for "now" everywhere a decision depends on
//! it — TLS handshakes (through rustls' time provider), per-request certificate re-checks,
//! expiry warnings — so tests can move time instead of waiting for it.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustls_pki_types::UnixTime;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> UnixTime;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        UnixTime::now()
    }
}

/// A clock that tests move by hand. Starts at the system time when created.
#[derive(Debug)]
pub struct ManualClock {
    secs: AtomicU64,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock showing the current system time.
    pub fn new() -> Self {
        let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self { secs: AtomicU64::new(secs) }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.secs.fetch_add(by.as_secs(), Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(self.secs.load(Ordering::Acquire)))
    }
}

/// Adapts a [`Clock`] to rustls, so handshakes see the same time as the rest of the gateway.
#[derive(Debug)]
pub(crate) struct RustlsTime(pub(crate) Arc<dyn Clock>);

impl rustls::time_provider::TimeProvider for RustlsTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.0.now())
    }
}
