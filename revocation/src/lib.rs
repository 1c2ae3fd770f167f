//! # spinegate-revocation
//!
//! Revocation status of client certificates. The hot path asks one question per request,
//! [`Snapshot::status`], of an immutable [`Snapshot`] published through [`Revocation`]; the answer
//! is a map read. Sources (OCSP, CRLs, the emergency deny list) and the background refresher that
//! builds new snapshots live beside it and never run on the request path.
//!
//! Every snapshot carries a [`Generation`]. The gateway's chain cache remembers the generation a
//! chain's status was checked against, so a new snapshot is noticed by one comparison on open and
//! resumed connections alike (DESIGN §2).
//!
//! ## Layout
//! - [`status`]: [`CertId`], [`Serial`], [`Status`] and its parts.
//! - [`policy`]: per-issuing-CA [`Policy`]: which sources, and what `Unknown` means.
//! - [`snapshot`]: [`Snapshot`], [`Generation`] and the [`Revocation`] handle.

pub mod policy;
pub mod snapshot;
pub mod status;

pub use policy::{Policy, Source, UnknownStatus};
pub use snapshot::{Generation, Revocation, Snapshot};
pub use status::{CertId, IssuerId, Serial, SerialError, Status, UnknownCause};
