//! # spinegate-cert-cache
//!
//! The verified-chain cache. A client certificate chain that passed path validation once is
//! remembered under the SHA-256 of the chain as presented, so the next handshake (or the first
//! request on a resumed TLS session) with the same chain costs one hash and one map read instead of
//! path building and signature checks.
//!
//! The cache is deliberately ignorant of X.509 and of I/O: the gateway verifies, this crate
//! remembers. What it guarantees is about *staleness*:
//!
//! - an entry never outlives the leaf's notAfter (checked on every lookup against the caller's
//!   clock, not only by background expiry);
//! - an entry never survives a change of trust anchors: the cache carries a [`TrustEpoch`], entries
//!   record the epoch they were verified under, and advancing the epoch retires them all;
//! - an entry records the revocation generation its status was last checked against, and until
//!   when that answer holds (DESIGN §2), so a revocation update is noticed by one comparison.
//!
//! Reads are lock-free (moka's concurrent hash table) and report [`Lookup::Hit`] or
//! [`Lookup::Miss`] with the reason.
//!
//! ## Layout
//! - [`fingerprint`]: [`ChainFingerprint`], the cache key.
//! - [`cache`]: [`ChainCache`], [`Entry`], [`Lookup`], [`Options`].

pub mod cache;
pub mod fingerprint;

pub use cache::{ChainCache, Entry, Lookup, MissReason, Options, TrustEpoch};
pub use fingerprint::ChainFingerprint;
