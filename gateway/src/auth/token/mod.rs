//! Bearer tokens from Care Identity (and any configured OpenID provider), verified on every
//! request without ever trusting what the token says about how to verify it: the issuer is chosen
//! by `iss`, but the key comes from that issuer's key set and the algorithm from its allow-list;
//! headers that bring their own keys are refused, and `typ` must fit the use (an access token,
//! a logout token). Verified tokens are remembered until they expire (indexed by a seeded XXH3
//! of the token, compared in full on every hit); a hit is judged again for expiry, age, key
//! changes and logout.
//!
//! ## Layout
//! - [`jose`]: strict base64url, JWKs, compact JWS checks and verification.
//! - [`claims`]: registered and Care Identity claims.
//! - [`jwks`]: fetching and refreshing an issuer's keys.
//! - [`logout`]: back-channel logout.
//! - `json`: JSON that refuses duplicate members.

pub mod claims;
pub mod jose;
pub mod json;
pub mod jwks;
pub mod logout;

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use spinegate_config::Config;

use self::claims::{ClaimError, Claims, Rules};
use self::jose::{Alg, JwsError, Limits, TokenUse};
use self::jwks::{HttpsKeyFetch, Jwks, JwksOptions, KeyFetch, KeysError};
use self::logout::{LogoutError, Logouts};
use crate::material::MaterialError;
use crate::metrics as m;

/// A token that passed every check.
#[derive(Debug)]
pub struct VerifiedToken {
    /// The configured issuer's name.
    pub issuer_name: Arc<str>,
    /// Its claims.
    pub claims: Claims,
    /// The issuer's key-set generation the signature was checked under.
    key_generation: u64,
    /// The token's role profiles resolved under the current policy (filled on first use).
    pub roles: crate::authz::RoleSlot,
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

/// One configured issuer.
#[derive(Debug)]
struct Issuer {
    name: Arc<str>,
    rules: Rules,
    allowed: Vec<Alg>,
    jwks: Arc<Jwks>,
}

/// Verifies bearer tokens and logout tokens for every configured issuer.
#[derive(Debug)]
pub struct TokenVerifier {
    issuers: Vec<Arc<Issuer>>,
    cache: moka::sync::Cache<u64, Arc<Cached>>,
    /// Secret seed of the cache index hash, fresh per process.
    seed: u64,
    logouts: Logouts,
    limits: Limits,
}

/// A verified token as cached: the exact token string, compared in full on every hit, so the
/// index hash only has to be fast — a hit is never decided by a hash.
struct Cached {
    token: Box<str>,
    verified: Arc<VerifiedToken>,
}

impl std::fmt::Debug for Cached {
    /// Never the token itself: it is a bearer credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").field("token_bytes", &self.token.len()).field("verified", &self.verified).finish()
    }
}

struct UntilExpiry;

impl moka::Expiry<u64, Arc<Cached>> for UntilExpiry {
    fn expire_after_create(&self, _: &u64, value: &Arc<Cached>, _: std::time::Instant) -> Option<Duration> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Some(Duration::from_secs(value.verified.claims.expires.saturating_sub(now)))
    }
}

impl TokenVerifier {
    /// The verifier for `[[token_issuer]]` entries, fetching keys over HTTPS.
    pub fn build(config: &Config, provider: &Arc<CryptoProvider>) -> Result<Self, MaterialError> {
        let mut fetchers = Vec::with_capacity(config.token_issuers.len());
        for issuer in &config.token_issuers {
            fetchers.push(Arc::new(HttpsKeyFetch::new(&issuer.jwks_ca, provider)?) as Arc<dyn KeyFetch>);
        }
        Ok(Self::with_fetchers(config, fetchers))
    }

    /// The verifier with one key fetcher per issuer (tests inject their own).
    pub fn with_fetchers(config: &Config, fetchers: Vec<Arc<dyn KeyFetch>>) -> Self {
        let mut longest = Duration::from_secs(3600);
        let issuers = config
            .token_issuers
            .iter()
            .zip(fetchers)
            .map(|(t, fetch)| {
                longest = longest.max(t.max_token_age + t.clock_skew);
                let allowed: Vec<Alg> = t.algorithms.iter().filter_map(|a| Alg::from_name(a)).collect();
                let name: Arc<str> = t.name.as_str().into();
                let jwks = Arc::new(Jwks::new(
                    Arc::clone(&name),
                    t.issuer.clone(),
                    t.keys.clone(),
                    allowed.clone(),
                    fetch,
                    JwksOptions {
                        ttl: t.jwks_ttl,
                        max_staleness: t.jwks_max_staleness,
                        refetch_interval: t.jwks_refetch_interval,
                    },
                ));
                Arc::new(Issuer {
                    name,
                    rules: Rules {
                        issuer: t.issuer.as_str().into(),
                        audiences: t.audiences.clone(),
                        skew: t.clock_skew,
                        max_age: t.max_token_age,
                        required: t.required_claims.clone(),
                    },
                    allowed,
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
            cache: moka::sync::Cache::builder()
                .max_capacity(config.tokens.cache_entries)
                .expire_after(UntilExpiry)
                .build(),
            logouts: Logouts::new(longest),
            limits: Limits { max_token_bytes: config.tokens.max_token_bytes, ..Limits::default() },
        }
    }

    /// The largest token accepted, bytes.
    pub fn max_token_bytes(&self) -> usize {
        self.limits.max_token_bytes
    }

    /// Whether any issuer is configured.
    pub fn is_enabled(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// Verifies a bearer token at `now` (seconds since the epoch).
    pub async fn verify(&self, token: &str, now: u64) -> Result<Arc<VerifiedToken>, TokenError> {
        let outcome = self.verify_inner(token, now).await;
        let (issuer, result): (metrics::SharedString, _) = match &outcome {
            Ok(t) => (Arc::clone(&t.issuer_name).into(), "ok"),
            Err(e) => (metrics::SharedString::const_str("unknown"), e.label()),
        };
        metrics::counter!(m::TOKEN_VERIFICATIONS, "issuer" => issuer, "result" => result).increment(1);
        outcome
    }

    async fn verify_inner(&self, token: &str, now: u64) -> Result<Arc<VerifiedToken>, TokenError> {
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
    pub async fn verify_uncached(&self, token: &str, now: u64) -> Result<VerifiedToken, TokenError> {
        let payload = self.payload_of(token)?;
        let payload = claims::parse_object(&payload)?;
        let (issuer, key_generation) = self.verify_signature(token, TokenUse::Access, &payload, now).await?;
        let claims = claims::check_object(&payload, &issuer.rules, now)?;
        if self.logouts.covers(&issuer.name, &claims) {
            return Err(TokenError::LoggedOut);
        }
        Ok(VerifiedToken {
            issuer_name: Arc::clone(&issuer.name),
            claims,
            key_generation,
            roles: crate::authz::RoleSlot::default(),
        })
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
    ) -> Result<(&Arc<Issuer>, u64), TokenError> {
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

    fn issuer_by_name(&self, name: &str) -> Option<&Arc<Issuer>> {
        self.issuers.iter().find(|i| &*i.name == name)
    }
}
