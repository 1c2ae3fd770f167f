//! The verifier: issuers chosen by `iss`, the verified-token cache, and back-channel logout.

use std::sync::Arc;
use std::time::Duration;

use crate::claims::{self, ClaimError, Claims, Rules};
use crate::jose::{self, Alg, JwsError, Limits, TokenUse};
use crate::json;
use crate::jwks::{Jwks, KeyFetch, KeysError};
use crate::logout::{self, LogoutError, Logouts};
use crate::options::{IssuerOptions, Observer, Options};

/// A token that passed every check, with what the caller attaches to it (`X`: the gateway keeps
/// the token's role profiles resolved under its current policy there, filled on first use), which
/// lives as long as the cached token.
#[derive(Debug)]
pub struct VerifiedToken<X = ()> {
    /// The configured issuer's name.
    pub issuer_name: Arc<str>,
    /// Its claims.
    pub claims: Claims,
    /// The issuer's key-set generation the signature was checked under.
    key_generation: u64,
    /// The caller's data for this token.
    pub extension: X,
}

/// Why a token is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The JWS itself (format, header, algorithm, key, signature).
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// The claims.
    #[error(transparent)]
    Claims(#[from] ClaimError),
    /// No configured issuer has this `iss`.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// The issuer's keys cannot be had.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// Its session or user logged out after it was issued.
    #[error("the session was logged out")]
    LoggedOut,
    /// A logout token that is not one.
    #[error(transparent)]
    Logout(#[from] LogoutError),
}

impl TokenError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            TokenError::Jws(e) => e.label(),
            TokenError::Claims(e) => e.label(),
            TokenError::UnknownIssuer => "unknown_issuer",
            TokenError::Keys(KeysError::Unavailable(_)) => "keys_unavailable",
            TokenError::Keys(KeysError::Stale) => "keys_stale",
            TokenError::LoggedOut => "logged_out",
            TokenError::Logout(LogoutError::Replay) => "logout_replay",
            TokenError::Logout(LogoutError::Invalid(_)) => "logout_invalid",
        }
    }

    /// Whether the refusal is "expired" (`token_expired`) rather than "invalid".
    pub fn is_expiry(&self) -> bool {
        matches!(self, TokenError::Claims(ClaimError::Expired { .. }))
    }
}

/// The refusal a token error is: `token_expired`, or `invalid_token` for anything else.
impl From<&TokenError> for spinegate_vocab::Reason {
    fn from(e: &TokenError) -> Self {
        if e.is_expiry() { spinegate_vocab::Reason::TokenExpired } else { spinegate_vocab::Reason::InvalidToken }
    }
}

/// One configured issuer.
#[derive(Debug)]
struct TrustedIssuer {
    name: Arc<str>,
    rules: Rules,
    allowed: Vec<Alg>,
    jwks: Arc<Jwks>,
}

/// Verifies bearer tokens and logout tokens for every configured issuer.
pub struct TokenVerifier<X = ()> {
    issuers: Vec<Arc<TrustedIssuer>>,
    cache: moka::sync::Cache<u64, Arc<Cached<X>>>,
    /// Secret seed of the cache index hash, fresh per process.
    seed: u64,
    logouts: Logouts,
    limits: Limits,
    observer: Arc<dyn Observer>,
}

impl<X> std::fmt::Debug for TokenVerifier<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").field("issuers", &self.issuers).finish_non_exhaustive()
    }
}

/// A verified token as cached: the exact token string, compared in full on every hit, so the
/// index hash only has to be fast — a hit is never decided by a hash.
struct Cached<X> {
    token: Box<str>,
    verified: Arc<VerifiedToken<X>>,
}

impl<X: std::fmt::Debug> std::fmt::Debug for Cached<X> {
    /// Never the token itself: it is a bearer credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").field("token_bytes", &self.token.len()).field("verified", &self.verified).finish()
    }
}

struct UntilExpiry;

impl<X> moka::Expiry<u64, Arc<Cached<X>>> for UntilExpiry {
    fn expire_after_create(&self, _: &u64, value: &Arc<Cached<X>>, _: std::time::Instant) -> Option<Duration> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Some(Duration::from_secs(value.verified.claims.expires.saturating_sub(now)))
    }
}

impl<X: Default + Send + Sync + 'static> TokenVerifier<X> {
    /// The verifier for `issuers`, each fetching its keys with the fetcher at the same position,
    /// reporting to `observer`.
    pub fn new(
        options: &Options,
        issuers: &[IssuerOptions],
        fetchers: Vec<Arc<dyn KeyFetch>>,
        observer: Arc<dyn Observer>,
    ) -> Self {
        let mut longest = Duration::from_secs(3600);
        let issuers = issuers
            .iter()
            .zip(fetchers)
            .map(|(t, fetch)| {
                longest = longest.max(t.max_token_age + t.clock_skew);
                let name: Arc<str> = t.name.as_str().into();
                let jwks = Arc::new(Jwks::new(
                    Arc::clone(&name),
                    t.issuer.clone(),
                    t.keys.clone(),
                    t.algorithms.clone(),
                    fetch,
                    t.jwks,
                    Arc::clone(&observer),
                ));
                Arc::new(TrustedIssuer {
                    name,
                    rules: Rules {
                        issuer: t.issuer.as_str().into(),
                        audiences: t.audiences.clone(),
                        skew: t.clock_skew,
                        max_age: t.max_token_age,
                        required: t.required_claims.clone(),
                    },
                    allowed: t.algorithms.clone(),
                    jwks,
                })
            })
            .collect();
        Self {
            issuers,
            seed: {
                let mut seed = [0u8; 8];
                aws_lc_rs::rand::fill(&mut seed).expect("the system RNG is available");
                u64::from_le_bytes(seed)
            },
            cache: moka::sync::Cache::builder().max_capacity(options.cache_entries).expire_after(UntilExpiry).build(),
            logouts: Logouts::new(longest),
            limits: Limits { max_token_bytes: options.max_token_bytes, ..Limits::default() },
            observer,
        }
    }

    /// The largest token accepted, bytes.
    pub fn max_token_bytes(&self) -> usize {
        self.limits.max_token_bytes
    }

    /// Verifies a bearer token at `now` (seconds since the epoch).
    pub async fn verify(&self, token: &str, now: u64) -> Result<Arc<VerifiedToken<X>>, TokenError> {
        let outcome = self.verify_inner(token, now).await;
        match &outcome {
            Ok(t) => self.observer.verified(Some(&t.issuer_name), "ok"),
            Err(e) => self.observer.verified(None, e.label()),
        }
        outcome
    }

    async fn verify_inner(&self, token: &str, now: u64) -> Result<Arc<VerifiedToken<X>>, TokenError> {
        if token.len() > self.limits.max_token_bytes {
            return Err(JwsError::TooLarge.into());
        }
        let key = xxhash_rust::xxh3::xxh3_64_with_seed(token.as_bytes(), self.seed);
        if let Some(cached) = self.cache.get(&key)
            && *cached.token == *token
            && let hit = Arc::clone(&cached.verified)
            && let Some(issuer) = self.issuer_by_name(&hit.issuer_name)
        {
            let skew = issuer.rules.skew.as_secs();
            if now >= hit.claims.expires.saturating_add(skew) {
                self.cache.invalidate(&key);
                return Err(ClaimError::Expired { exp: hit.claims.expires }.into());
            }
            // The age limit holds on every use, not only the first: a token issued with a long
            // `exp` stops at max_token_age however often it was seen before.
            if now.saturating_sub(hit.claims.issued_at) > issuer.rules.max_age.as_secs().saturating_add(skew) {
                self.cache.invalidate(&key);
                return Err(ClaimError::TooOld.into());
            }
            let keys = issuer.jwks.state(now);
            if !keys.usable {
                return Err(KeysError::Stale.into());
            }
            if keys.generation == hit.key_generation {
                if self.logouts.covers(&hit.issuer_name, &hit.claims) {
                    return Err(TokenError::LoggedOut);
                }
                return Ok(hit);
            }
            // The issuer's keys changed since this token was verified (rotation, or a key
            // withdrawn): verify it again below.
            self.cache.invalidate(&key);
        }
        let verified = Arc::new(self.verify_uncached(token, now).await?);
        self.cache.insert(key, Arc::new(Cached { token: token.into(), verified: Arc::clone(&verified) }));
        Ok(verified)
    }

    /// The whole verification of a token, without consulting or filling the cache: what a cache
    /// miss costs (and what the benchmarks measure against a bare signature check).
    pub async fn verify_uncached(&self, token: &str, now: u64) -> Result<VerifiedToken<X>, TokenError> {
        let payload = self.payload_of(token)?;
        let payload = claims::parse_object(&payload)?;
        let (issuer, key_generation) = self.verify_signature(token, TokenUse::Access, &payload, now).await?;
        let claims = claims::check_object(&payload, &issuer.rules, now)?;
        if self.logouts.covers(&issuer.name, &claims) {
            return Err(TokenError::LoggedOut);
        }
        Ok(VerifiedToken { issuer_name: Arc::clone(&issuer.name), claims, key_generation, extension: X::default() })
    }

    /// The token's payload, decoded (the size cap first).
    fn payload_of(&self, token: &str) -> Result<Vec<u8>, TokenError> {
        if token.len() > self.limits.max_token_bytes {
            return Err(JwsError::TooLarge.into());
        }
        let (_, payload, _) = jose::split_compact(token)?;
        Ok(jose::b64_decode(payload).ok_or(JwsError::Malformed("payload is not base64url"))?)
    }

    /// Chooses the issuer by the payload's `iss` (the payload parsed strictly, once, by the
    /// caller), decodes the token under that issuer's header rules (its `typ` must fit `usage`),
    /// and verifies its signature
    /// with the issuer's keys (one rate-limited refetch for an unknown `kid`). Nothing in the
    /// payload but `iss` is looked at before the signature verifies. Returns the issuer and the
    /// key generation that verified the signature.
    async fn verify_signature(
        &self,
        token: &str,
        usage: TokenUse,
        payload: &json::Object<'_>,
        now: u64,
    ) -> Result<(&Arc<TrustedIssuer>, u64), TokenError> {
        let iss = payload.get("iss").and_then(json::Json::as_str).ok_or(ClaimError::Missing("iss".into()))?;
        let issuer = self.issuers.iter().find(|i| &*i.rules.issuer == iss).ok_or(TokenError::UnknownIssuer)?;
        let unverified = jose::decode(token, &issuer.allowed, self.limits)?;
        usage.check(unverified.typ.as_deref())?;
        let keys = issuer.jwks.keys(now).await?;
        let key_generation = issuer.jwks.state(now).generation;
        match unverified.check_signature(&keys) {
            Err(JwsError::UnknownKey(kid)) => match issuer.jwks.refetch_for_unknown_kid(now).await {
                Some(fresh) => {
                    unverified.check_signature(&fresh)?;
                    Ok((issuer, issuer.jwks.state(now).generation))
                }
                None => Err(JwsError::UnknownKey(kid).into()),
            },
            other => other.map(|()| (issuer, key_generation)).map_err(Into::into),
        }
    }

    /// Accepts a back-channel logout token: verified like any token of its issuer, then its
    /// session or user is logged out.
    pub async fn logout(&self, logout_token: &str, now: u64) -> Result<(), TokenError> {
        let payload = self.payload_of(logout_token)?;
        let payload = claims::parse_object(&payload)?;
        let (issuer, _) = self.verify_signature(logout_token, TokenUse::Logout, &payload, now).await?;
        let request = logout::check_object(
            &payload,
            &issuer.rules.issuer,
            &issuer.rules.audiences,
            issuer.rules.skew,
            issuer.rules.max_age,
            now,
        )?;
        self.logouts.record(&issuer.name, &request, now)?;
        tracing::info!(issuer = %issuer.name, sid = ?request.session, sub = ?request.subject, "back-channel logout");
        Ok(())
    }

    /// Issuers whose keys were fetched once but are now past their maximum staleness (their
    /// tokens are refused until a fetch succeeds), for readiness.
    pub fn stale_issuers(&self, now: u64) -> Vec<Arc<str>> {
        self.issuers
            .iter()
            .filter(|i| i.jwks.age(now).is_some_and(|age| age >= i.jwks.max_staleness().as_secs()))
            .map(|i| Arc::clone(&i.name))
            .collect()
    }

    /// Seconds since each issuer's keys were fetched, for metrics.
    pub fn key_ages(&self, now: u64) -> Vec<(Arc<str>, Option<u64>)> {
        self.issuers.iter().map(|i| (Arc::clone(&i.name), i.jwks.age(now))).collect()
    }

    fn issuer_by_name(&self, name: &str) -> Option<&Arc<TrustedIssuer>> {
        self.issuers.iter().find(|i| &*i.name == name)
    }
}
