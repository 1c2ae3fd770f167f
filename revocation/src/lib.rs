//! # spinegate-revocation
//!
//! Revocation status of client certificates, for a gateway that must stop a cancelled smartcard
//! within a bounded time on every connection — new, long-lived or resumed.
//!
//! The request path asks [`Revocation::check`] (or, at the handshake, the non-waiting
//! [`Revocation::peek`]); the answer comes from memory — the emergency deny list, CRLs indexed by
//! serial, cached OCSP answers — unless it is missing, in which case one fetch is shared by
//! everyone asking. A background task ([`Revocation::run`]) keeps recently used answers fresh,
//! reloads CRL and deny-list files, and refetches CRLs before nextUpdate. Each issuing CA has a
//! [`Policy`]: which sources in which order, and what an `Unknown` means; the default fails
//! closed.
//!
//! Time and I/O are parameters: the clock is a function, fetching is the [`fetch::Fetch`] trait,
//! and OCSP and CRL judgements ([`ocsp::evaluate`], [`crl::Crl::parse`]) are pure functions of
//! bytes and time.
//!
//! ## Layout
//! - [`status`]: [`CertId`], [`Serial`], [`Status`].
//! - [`issuer`]: [`issuer::IssuingCa`] (name, key, CertID hashes) and [`issuer::Subject`] (what is
//!   checked: serial, issuer, AIA and CDP URLs).
//! - [`policy`]: [`Policy`] per CA and its parts.
//! - [`ocsp`]: requests and response validation.
//! - [`crl`]: CRL parsing, verification, indexing, deltas and partitions.
//! - [`deny`]: the deny list and its file format.
//! - [`signature`]: signature checks (SHA-1 refused).
//! - [`fetch`]: the fetch trait and the HTTP fetcher.
//! - [`checker`]: [`Revocation`], the state and its answers.

pub mod checker;
pub mod crl;
pub mod deny;
mod dp;
pub mod fetch;
pub mod issuer;
pub mod ocsp;
pub mod policy;
pub mod signature;
pub mod status;
mod tlv;

pub use checker::{Answer, AnswerSource, Observer, Options, Revocation, Snapshot, Stats};
pub use policy::{NoncePolicy, OcspMethod, OcspSettings, Policies, Policy, Source, UnknownStatus};
pub use status::{CertId, IssuerId, Serial, SerialError, Status, UnknownCause};
