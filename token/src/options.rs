//! What a [`crate::TokenVerifier`] is built from — settings common to every issuer and each
//! issuer's own — and the [`Observer`] it reports outcomes to.

use std::time::Duration;

use crate::jose::Alg;

/// Settings common to every issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Most verified tokens remembered.
    pub cache_entries: u64,
    /// Largest token accepted, bytes (checked before decoding).
    pub max_token_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { cache_entries: 100_000, max_token_bytes: 16 * 1024 }
    }
}

/// Where an issuer's keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A JWK Set URL.
    Jwks(String),
    /// An OpenID discovery document whose `jwks_uri` is used (and whose `issuer` must match).
    Discovery(String),
}

/// An issuer's key refresh and staleness settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JwksOptions {
    /// Keys are refreshed after this long.
    pub ttl: Duration,
    /// The last good keys serve at most this long after they were fetched.
    pub max_staleness: Duration,
    /// Least time between refetches for unknown `kid`s.
    pub refetch_interval: Duration,
}

/// One accepted issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerOptions {
    /// Name in logs and metrics.
    pub name: String,
    /// The exact `iss`.
    pub issuer: String,
    /// Where the keys come from.
    pub keys: KeySource,
    /// Accepted `aud` values (`azp` is not an audience).
    pub audiences: Vec<String>,
    /// Accepted algorithms (asymmetric only: there is no HMAC or `none` to ask for).
    pub algorithms: Vec<Alg>,
    /// Tolerated clock difference.
    pub clock_skew: Duration,
    /// Oldest acceptable `iat`, on every use.
    pub max_token_age: Duration,
    /// Claims that must be present.
    pub required_claims: Vec<String>,
    /// Key refresh and staleness.
    pub jwks: JwksOptions,
}

/// Receives what the verifier did, for metrics (the gateway records them; tests may count).
pub trait Observer: Send + Sync + std::fmt::Debug + 'static {
    /// A bearer token was judged: `issuer` when it was known, `result` `ok` or a refusal label.
    fn verified(&self, issuer: Option<&str>, result: &'static str);
    /// An issuer's key set was fetched (`ok`) or the fetch failed.
    fn keys_fetched(&self, issuer: &str, ok: bool);
    /// An unknown-`kid` refetch was skipped: one happened within the refetch interval.
    fn refetch_suppressed(&self, issuer: &str);
}

/// An observer that records nothing.
#[derive(Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn verified(&self, _: Option<&str>, _: &'static str) {}
    fn keys_fetched(&self, _: &str, _: bool) {}
    fn refetch_suppressed(&self, _: &str) {}
}
