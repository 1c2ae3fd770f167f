//! The immutable view the hot path reads, and the handle that publishes it.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use rustls_pki_types::UnixTime;

use crate::{CertId, Status};

/// Version of a snapshot; strictly increasing per [`Revocation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u64);

/// Everything known about revocation at one moment.
#[derive(Debug)]
pub struct Snapshot {
    generation: Generation,
}

impl Snapshot {
    /// The snapshot's generation.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Status of `cert` at `now`.
    ///
    /// No sources are wired yet, so every certificate is [`Status::NotChecked`]; the gateway
    /// already calls this on every request so that sources only have to fill the snapshot.
    pub fn status(&self, _cert: &CertId, _now: UnixTime) -> Status {
        Status::NotChecked
    }
}

/// The published revocation state: one [`Snapshot`] at a time, swapped whole.
#[derive(Debug)]
pub struct Revocation {
    current: ArcSwap<Snapshot>,
}

impl Default for Revocation {
    fn default() -> Self {
        Self::new()
    }
}

impl Revocation {
    /// Starts at generation 1.
    pub fn new() -> Self {
        Self { current: ArcSwap::from_pointee(Snapshot { generation: Generation(1) }) }
    }

    /// The current snapshot; cheap (no reference-count traffic on the fast path).
    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.current.load()
    }
}
