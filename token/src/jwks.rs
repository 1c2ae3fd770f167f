//! An issuer's signing keys: fetched over HTTPS (or plain HTTP from localhost), directly from a
//! JWK Set URL or through OpenID discovery. Keys are used for `ttl`, then refreshed in the
//! background while the old ones keep serving; if the endpoint keeps failing, the last good
//! keys serve until `max_staleness` and then tokens are refused. A token with an unknown `kid`
//! causes at most one refetch per `refetch_interval`, so random `kid`s cannot make a fetch storm.
//! While the endpoint is down nothing piles up: at most one background refresh runs at a time,
//! none starts within `refetch_interval` of a failed attempt, and callers that wait for keys
//! share the attempt in progress (its outcome, success or failure) instead of each fetching.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::jose::{Alg, KeySet};
use crate::options::{JwksOptions, KeySource, Observer};

/// Fetches a document by URL: the verifier's only I/O, supplied by the caller (the gateway's
/// HTTPS client; tests and benchmarks serve keys from memory).
pub trait KeyFetch: Send + Sync + std::fmt::Debug + 'static {
    /// GETs `url` and returns the body of a 200 response.
    fn get(&self, url: &str) -> BoxFuture<'static, Result<Bytes, String>>;
}

/// Why no keys can be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    /// Never fetched successfully.
    #[error("signing keys are unavailable: {0}")]
    Unavailable(String),
    /// The last good keys are older than the maximum staleness.
    #[error("signing keys are stale")]
    Stale,
}

#[derive(Debug)]
struct Loaded {
    keys: Arc<KeySet>,
    fetched_at: u64,
    /// The document as fetched, to tell a changed key set from a refreshed one.
    document: Bytes,
    /// Advances whenever the fetched document differs from the previous one.
    generation: u64,
}

/// What a cached token needs to know about its issuer's keys at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyState {
    /// The key-set generation; a verification made under another one is stale.
    pub generation: u64,
    /// Whether the keys may still be used (within the staleness bound).
    pub usable: bool,
}

/// One issuer's keys.
#[derive(Debug)]
pub struct Jwks {
    name: Arc<str>,
    issuer: String,
    source: KeySource,
    allowed: Vec<Alg>,
    fetch: Arc<dyn KeyFetch>,
    options: JwksOptions,
    observer: Arc<dyn Observer>,
    state: ArcSwapOption<Loaded>,
    /// When the last refetch for an unknown `kid` started (0: never).
    last_kid_refetch: AtomicU64,
    fetching: tokio::sync::Mutex<()>,
    /// Whether a background refresh is running.
    refreshing: AtomicBool,
    /// Fetch attempts finished, and the last one's failure (when it failed): a caller that
    /// waited for another's attempt takes its outcome.
    attempts: AtomicU64,
    last_failure: std::sync::Mutex<Option<(u64, String)>>,
}

impl Jwks {
    /// Keys of `issuer` (for discovery's issuer check) from `source`.
    pub fn new(
        name: Arc<str>,
        issuer: String,
        source: KeySource,
        allowed: Vec<Alg>,
        fetch: Arc<dyn KeyFetch>,
        options: JwksOptions,
        observer: Arc<dyn Observer>,
    ) -> Self {
        Self {
            name,
            issuer,
            source,
            allowed,
            fetch,
            options,
            observer,
            state: ArcSwapOption::empty(),
            last_kid_refetch: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            attempts: AtomicU64::new(0),
            last_failure: std::sync::Mutex::new(None),
        }
    }

    /// Starts a refresh in the background unless one is running or the last attempt failed
    /// within `refetch_interval` (the endpoint is down: asking again per request would only
    /// pile up tasks and load it as it recovers).
    fn refresh_in_background(self: &Arc<Self>, now: u64) {
        let failed_recently = self
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|(at, _)| now.saturating_sub(*at) < self.options.refetch_interval.as_secs());
        if failed_recently || self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _ = this.fetch_now(now).await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// Keys usable at `now`. Within `ttl`: the cached keys. Past it but within `max_staleness`:
    /// the cached keys, with a refresh started in the background. Otherwise: fetched now.
    pub async fn keys(self: &Arc<Self>, now: u64) -> Result<Arc<KeySet>, KeysError> {
        if let Some(loaded) = self.state.load_full() {
            let age = now.saturating_sub(loaded.fetched_at);
            if age < self.options.ttl.as_secs() {
                return Ok(Arc::clone(&loaded.keys));
            }
            if age < self.options.max_staleness.as_secs() {
                self.refresh_in_background(now);
                return Ok(Arc::clone(&loaded.keys));
            }
        }
        match self.fetch_now(now).await {
            Ok(keys) => Ok(keys),
            Err(e) => match self.state.load_full() {
                Some(loaded) if now.saturating_sub(loaded.fetched_at) < self.options.max_staleness.as_secs() => {
                    Ok(Arc::clone(&loaded.keys))
                }
                Some(_) => Err(KeysError::Stale),
                None => Err(KeysError::Unavailable(e)),
            },
        }
    }

    /// After a token named a `kid` the keys lack: fetch again unless a fetch started within
    /// `refetch_interval`. Returns the keys when a fetch happened.
    pub async fn refetch_for_unknown_kid(self: &Arc<Self>, now: u64) -> Option<Arc<KeySet>> {
        let last = self.last_kid_refetch.load(Ordering::Acquire);
        let due = last == 0 || now.saturating_sub(last) >= self.options.refetch_interval.as_secs();
        // One caller wins the slot; the others in the same interval are suppressed.
        if !due
            || self.last_kid_refetch.compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire).is_err()
        {
            self.observer.refetch_suppressed(&self.name);
            return None;
        }
        self.fetch_now(now).await.ok()
    }

    /// The keys' generation and usability at `now`, and a background refresh started when the
    /// keys are past their TTL: the cache-hit path's whole contact with the key source.
    pub fn state(self: &Arc<Self>, now: u64) -> KeyState {
        let Some(loaded) = self.state.load_full() else {
            return KeyState { generation: 0, usable: false };
        };
        let age = now.saturating_sub(loaded.fetched_at);
        if age >= self.options.ttl.as_secs() {
            self.refresh_in_background(now);
        }
        KeyState { generation: loaded.generation, usable: age < self.options.max_staleness.as_secs() }
    }

    /// How long the last good keys may serve while fetches fail.
    pub fn max_staleness(&self) -> Duration {
        self.options.max_staleness
    }

    /// Seconds since the keys were fetched.
    pub fn age(&self, now: u64) -> Option<u64> {
        self.state.load().as_ref().map(|l| now.saturating_sub(l.fetched_at))
    }

    /// Fetches, one attempt at a time; a caller that waited while another attempt ran takes
    /// that attempt's outcome rather than fetching again.
    async fn fetch_now(&self, now: u64) -> Result<Arc<KeySet>, String> {
        let seen = self.attempts.load(Ordering::Acquire);
        let _one_at_a_time = self.fetching.lock().await;
        if self.attempts.load(Ordering::Acquire) != seen {
            let failure = self.last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            return match (failure, self.state.load_full()) {
                (Some((_, error)), _) => Err(error),
                (None, Some(loaded)) => Ok(Arc::clone(&loaded.keys)),
                (None, None) => Err("no keys".into()),
            };
        }
        let outcome = self.fetch_and_store(now).await;
        *self.last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            outcome.as_ref().err().map(|e| (now, e.clone()));
        self.attempts.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    /// One fetch; on success the keys replace the cached ones.
    async fn fetch_and_store(&self, now: u64) -> Result<Arc<KeySet>, String> {
        let result = self
            .fetch_document()
            .await
            .and_then(|body| KeySet::parse(&body, &self.allowed).map(|keys| (keys, body)).map_err(|e| e.to_string()));
        match result {
            Ok((keys, document)) => {
                if !keys.skipped.is_empty() {
                    tracing::warn!(issuer = %self.name, skipped = ?keys.skipped, "JWK Set keys left out");
                }
                let keys = Arc::new(keys);
                let previous = self.state.load_full();
                let generation = match &previous {
                    Some(p) if p.document == document => p.generation,
                    Some(p) => p.generation + 1,
                    None => 1,
                };
                self.state.store(Some(Arc::new(Loaded {
                    keys: Arc::clone(&keys),
                    fetched_at: now,
                    document,
                    generation,
                })));
                self.observer.keys_fetched(&self.name, true);
                tracing::info!(issuer = %self.name, keys = keys.len(), "signing keys fetched");
                Ok(keys)
            }
            Err(e) => {
                self.observer.keys_fetched(&self.name, false);
                tracing::warn!(issuer = %self.name, error = %e, "signing keys could not be fetched");
                Err(e)
            }
        }
    }

    async fn fetch_document(&self) -> Result<Bytes, String> {
        match &self.source {
            KeySource::Jwks(url) => self.fetch.get(url).await,
            KeySource::Discovery(url) => {
                let doc = self.fetch.get(url).await?;
                let doc: serde_json::Value = serde_json::from_slice(&doc).map_err(|e| format!("discovery: {e}"))?;
                if doc.get("issuer").and_then(|i| i.as_str()) != Some(self.issuer.as_str()) {
                    return Err("discovery document names another issuer".into());
                }
                let jwks_uri =
                    doc.get("jwks_uri").and_then(|u| u.as_str()).ok_or("discovery document has no jwks_uri")?;
                if !jwks_uri.starts_with("https://") && !is_loopback_http(jwks_uri) {
                    return Err("jwks_uri is not https".into());
                }
                self.fetch.get(jwks_uri).await
            }
        }
    }
}

fn is_loopback_http(url: &str) -> bool {
    url.parse::<http::Uri>().is_ok_and(|u| {
        u.scheme_str() == Some("http")
            && u.host().is_some_and(|h| {
                h == "localhost"
                    || h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            })
    })
}
