//! [`Revocation`]: the revocation state of the gateway, and the answers it gives.
//!
//! What is read on the request path is memory only: the [`Snapshot`] (CRLs by issuer, the deny
//! list), swapped whole through `ArcSwap`, and the per-certificate OCSP cache (moka, bounded).
//! Missing or expired answers are fetched off to the side: concurrent askers for one certificate
//! (or one CRL URL) share one fetch, failures are remembered for a short while so a dead
//! responder is not hammered, and a background task refreshes recently used answers before they
//! end, reloads changed CRL and deny-list files, and refetches CRLs before their nextUpdate.
//!
//! Every change that can turn an accepted certificate into a refused one advances the
//! [generation](Revocation::generation); callers remember the generation they last checked
//! against, so noticing a change costs one comparison.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use rustls_pki_types::UnixTime;
use tokio::sync::watch;

use crate::crl::{Crl, CrlVerdict, Partition};
use crate::deny::{DenyEntry, DenyList};
use crate::fetch::{Fetch, FetchError, FetchRequest};
use crate::issuer::{Issuer, Subject};
use crate::ocsp::{self, OcspCertStatus, OcspRequest};
use crate::policy::{OcspMethod, Policies, Policy, Source, UnknownStatus};
use crate::{CertId, IssuerId, Status, UnknownCause};

/// Tuning of caches and fetches.
#[derive(Clone, Debug)]
pub struct Options {
    /// Most certificates with a cached OCSP answer.
    pub max_entries: u64,
    /// An answer is used no longer than this after it was fetched (nor past its nextUpdate);
    /// also the lifetime of answers and CRLs without nextUpdate.
    pub max_age: Duration,
    /// Refresh a recently used OCSP answer this long before it ends.
    pub refresh_before: Duration,
    /// "Recently used": within this long.
    pub recently_seen: Duration,
    /// Deadline of one fetch.
    pub fetch_timeout: Duration,
    /// Largest OCSP response accepted.
    pub max_ocsp_response_bytes: usize,
    /// Largest CRL accepted.
    pub max_crl_bytes: usize,
    /// Tolerated clock difference with responders and CRL issuers.
    pub clock_skew: Duration,
    /// After a failed fetch, do not try the same source again for this long.
    pub retry_after_failure: Duration,
    /// Fetch a CRL this long before its nextUpdate.
    pub crl_refresh_before: Duration,
    /// How often files (CRLs, deny list) are checked for changes.
    pub file_poll_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_entries: 200_000,
            max_age: Duration::from_secs(3600),
            refresh_before: Duration::from_secs(300),
            recently_seen: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(5),
            max_ocsp_response_bytes: 64 * 1024,
            max_crl_bytes: 64 * 1024 * 1024,
            clock_skew: Duration::from_secs(300),
            retry_after_failure: Duration::from_secs(10),
            crl_refresh_before: Duration::from_secs(600),
            file_poll_interval: Duration::from_millis(250),
        }
    }
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerSource {
    /// An OCSP response.
    Ocsp,
    /// A CRL (with its delta, if any).
    Crl,
    /// The emergency deny list.
    DenyList,
}

impl AnswerSource {
    /// A stable label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            AnswerSource::Ocsp => "ocsp",
            AnswerSource::Crl => "crl",
            AnswerSource::DenyList => "deny_list",
        }
    }
}

/// The answer for one certificate at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status.
    pub status: Status,
    /// The source that decided it.
    pub source: Option<AnswerSource>,
    /// Until when (seconds since the epoch) a `Good` answer holds without asking again.
    pub valid_until: u64,
    /// A `Good` served from an expired answer under `ServeStaleFor`.
    pub stale: bool,
}

impl Answer {
    fn revoked(source: AnswerSource, at: Option<u64>) -> Self {
        Self {
            status: Status::Revoked { revoked_at: at.map(|s| UnixTime::since_unix_epoch(Duration::from_secs(s))) },
            source: Some(source),
            valid_until: 0,
            stale: false,
        }
    }

    fn good(source: AnswerSource, valid_until: u64) -> Self {
        Self { status: Status::Good, source: Some(source), valid_until, stale: false }
    }

    fn unknown(cause: UnknownCause) -> Self {
        Self { status: Status::Unknown(cause), source: None, valid_until: 0, stale: false }
    }
}

/// Callbacks for metrics; the gateway publishes them under its own names.
pub trait Observer: Send + Sync + std::fmt::Debug + 'static {
    /// A fetch finished: `outcome` is `ok` or an error label.
    fn fetched(&self, source: Source, outcome: &'static str, elapsed: Duration);
    /// A check was answered.
    fn answered(&self, answer: &Answer);
}

/// An observer that records nothing.
#[derive(Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn fetched(&self, _: Source, _: &'static str, _: Duration) {}
    fn answered(&self, _: &Answer) {}
}

/// The wall clock, as a parameter.
pub type Clock = Arc<dyn Fn() -> UnixTime + Send + Sync>;

/// The CRLs of one issuer, by the source (URL or file) they came from.
#[derive(Debug, Default, Clone)]
struct IssuerCrls {
    bases: Vec<(Arc<str>, Arc<Crl>)>,
    deltas: Vec<(Arc<str>, Arc<Crl>)>,
}

/// CRLs and the deny list, swapped whole.
#[derive(Debug, Default)]
pub struct Snapshot {
    crls: HashMap<IssuerId, IssuerCrls>,
    deny: DenyList,
}

impl Snapshot {
    /// What the loaded CRLs say about `subject` at `now`: `None` when no current CRL covers it.
    fn crl_verdict(&self, subject: &Subject, now: u64, options: &Options) -> Option<CrlVerdict> {
        let crls = self.crls.get(&subject.cert.issuer)?;
        let mut good: Option<u64> = None;
        for (_, base) in crls.bases.iter().filter(|(_, b)| b.covers(&subject.distribution_points, subject.is_ca)) {
            let delta = crls
                .deltas
                .iter()
                .map(|(_, d)| d)
                .filter(|d| Partition::delta_applies(base, d))
                .max_by(|a, b| a.number().cmp(&b.number()))
                .cloned();
            let partition = Partition { base: Arc::clone(base), delta };
            match partition.verdict(&subject.cert.serial, now, options.clock_skew, options.max_age) {
                revoked @ CrlVerdict::Revoked(_) => return Some(revoked),
                CrlVerdict::NotListed { until } => good = Some(good.map_or(until, |g| g.max(until))),
                CrlVerdict::Stale => {}
            }
        }
        good.map(|until| CrlVerdict::NotListed { until })
    }

    /// The deny list in force.
    pub fn deny_list(&self) -> &DenyList {
        &self.deny
    }
}

/// A verified OCSP result kept for one certificate.
#[derive(Debug, Clone, Copy)]
struct OcspKnown {
    status: OcspCertStatus,
    /// When it was fetched.
    fetched_at: u64,
    /// When this answer stops being fresh.
    fresh_until: u64,
}

/// When to refresh something usable from `start` to `end`: `margin` before its end, but never
/// earlier than half-way, so a margin longer than the lifetime does not mean "refresh always".
fn refresh_point(start: u64, end: u64, margin: Duration) -> u64 {
    end.saturating_sub(margin.as_secs().min(end.saturating_sub(start) / 2))
}

#[derive(Debug)]
struct OcspEntry {
    subject: Arc<Subject>,
    known: Option<OcspKnown>,
    failed_at: Option<u64>,
    last_seen: AtomicU64,
}

#[derive(Debug)]
struct CrlSource {
    issuer: Arc<Issuer>,
    file: Option<PathBuf>,
    modified: Option<SystemTime>,
    /// (thisUpdate, nextUpdate) of the CRL loaded from here.
    loaded: Option<(u64, u64)>,
    failed_at: Option<u64>,
}

impl CrlSource {
    fn new(issuer: &Arc<Issuer>, file: Option<PathBuf>) -> Self {
        Self { issuer: Arc::clone(issuer), file, modified: None, loaded: None, failed_at: None }
    }

    /// Whether the CRL from here should be fetched again at `now`.
    fn due(&self, now: u64, margin: Duration) -> bool {
        self.loaded.is_none_or(|(this, next)| refresh_point(this, next, margin) <= now)
    }
}

/// Statistics for metrics.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Certificates with a cached OCSP answer.
    pub ocsp_entries: u64,
    /// Loaded CRLs.
    pub crls: Vec<CrlStats>,
    /// Deny-list entries in force.
    pub deny_entries: usize,
}

/// One loaded CRL.
#[derive(Debug, Clone)]
pub struct CrlStats {
    /// URL or file.
    pub source: String,
    /// Entries.
    pub entries: usize,
    /// thisUpdate.
    pub this_update: u64,
    /// nextUpdate.
    pub next_update: Option<u64>,
    /// Whether it is a delta CRL.
    pub delta: bool,
}

/// The revocation state; share it behind an `Arc`.
pub struct Revocation {
    options: Options,
    clock: Clock,
    fetcher: Arc<dyn Fetch>,
    observer: Arc<dyn Observer>,
    policies: ArcSwap<Policies>,
    snapshot: ArcSwap<Snapshot>,
    generation: AtomicU64,
    ocsp: moka::sync::Cache<CertId, Arc<OcspEntry>>,
    ocsp_inflight: Mutex<HashMap<CertId, watch::Receiver<bool>>>,
    crl_sources: Mutex<HashMap<Arc<str>, CrlSource>>,
    crl_inflight: Mutex<HashMap<Arc<str>, watch::Receiver<bool>>>,
    deny_file: Mutex<Option<(PathBuf, Option<SystemTime>, DenyList)>>,
    deny_api: Mutex<DenyList>,
}

impl std::fmt::Debug for Revocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocation")
            .field("generation", &self.generation())
            .field("ocsp_entries", &self.ocsp.entry_count())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Revocation {
    /// A revocation state with no answers yet. Register CRL files and URLs of configured issuers
    /// from `policies`; call [`Revocation::load_files`] before serving and spawn
    /// [`Revocation::run`] for background work.
    pub fn new(
        options: Options,
        policies: Policies,
        fetcher: Arc<dyn Fetch>,
        observer: Arc<dyn Observer>,
        clock: Clock,
    ) -> Arc<Self> {
        let ocsp = moka::sync::Cache::builder().max_capacity(options.max_entries).build();
        let this = Arc::new(Self {
            options,
            clock,
            fetcher,
            observer,
            policies: ArcSwap::from_pointee(Policies::default()),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            generation: AtomicU64::new(1),
            ocsp,
            ocsp_inflight: Mutex::new(HashMap::new()),
            crl_sources: Mutex::new(HashMap::new()),
            crl_inflight: Mutex::new(HashMap::new()),
            deny_file: Mutex::new(None),
            deny_api: Mutex::new(DenyList::default()),
        });
        this.set_policies(policies);
        this
    }

    /// A state that checks nothing (every CA's policy has no sources), for tools and tests.
    pub fn disabled() -> Arc<Self> {
        #[derive(Debug)]
        struct NoFetch;
        impl Fetch for NoFetch {
            fn fetch(&self, _: FetchRequest) -> futures_util::future::BoxFuture<'static, Result<Bytes, FetchError>> {
                Box::pin(async { Err(FetchError::Connect("fetching is disabled".into())) })
            }
        }
        let policies = Policies {
            default: Arc::new(Policy { sources: Vec::new(), ..Policy::default() }),
            issuers: HashMap::new(),
        };
        Self::new(Options::default(), policies, Arc::new(NoFetch), Arc::new(NoObserver), Arc::new(UnixTime::now))
    }

    /// Replaces the policies (on reload) and registers their CRL sources.
    pub fn set_policies(&self, policies: Policies) {
        {
            let mut sources = lock(&self.crl_sources);
            for (issuer, policy) in policies.issuers.values() {
                for file in &policy.crl_files {
                    let key: Arc<str> = file.display().to_string().into();
                    sources.entry(key).or_insert_with(|| CrlSource::new(issuer, Some(file.clone())));
                }
                for url in &policy.crl_urls {
                    sources.entry(url.as_str().into()).or_insert_with(|| CrlSource::new(issuer, None));
                }
            }
        }
        self.policies.store(Arc::new(policies));
        self.bump();
    }

    /// The current generation: it advances whenever a certificate may have become refused.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn now_secs(&self) -> u64 {
        (self.clock)().as_secs()
    }

    /// The current snapshot (CRLs and deny list).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// What is known now, without waiting: the handshake's question. When the answer is not
    /// known, a fetch is started in the background so the first request finds it (or joins it).
    pub fn peek(self: &Arc<Self>, subject: &Arc<Subject>, user_id: &str, now: UnixTime) -> Answer {
        let policies = self.policies.load();
        let policy = Arc::clone(policies.for_issuer(subject.cert.issuer));
        match self.local(subject, user_id, &policy, now.as_secs(), 0) {
            Local::Decided(answer) => answer,
            Local::Undecided { .. } => {
                // Warm the first source in policy order; the request falls back to the others.
                if let Some(&source) = policy.sources.first() {
                    let this = Arc::clone(self);
                    let subject = Arc::clone(subject);
                    tokio::spawn(async move { this.fetch_source(source, &subject, &policy).await });
                }
                Answer::unknown(UnknownCause::NotYetFetched)
            }
        }
    }

    /// The answer for a request: from memory when possible, else after the needed fetches (shared
    /// with every other asker), else by the CA's unknown-status policy.
    pub async fn check(self: &Arc<Self>, subject: &Arc<Subject>, user_id: &str, now: UnixTime) -> Answer {
        let answer = self.check_inner(subject, user_id, now).await;
        self.observer.answered(&answer);
        answer
    }

    async fn check_inner(self: &Arc<Self>, subject: &Arc<Subject>, user_id: &str, now: UnixTime) -> Answer {
        let policy = Arc::clone(self.policies.load().for_issuer(subject.cert.issuer));
        let now = now.as_secs();
        // Source i may vouch only once sources 0..i have been tried: a later source is a
        // fallback, not a shortcut.
        for (i, source) in policy.sources.iter().enumerate() {
            if let Local::Decided(answer) = self.local(subject, user_id, &policy, now, i) {
                return answer;
            }
            self.fetch_source(*source, subject, &policy).await;
            if let Local::Decided(answer) = self.local(subject, user_id, &policy, now, i) {
                return answer;
            }
        }
        let last = policy.sources.len().saturating_sub(1);
        match self.local(subject, user_id, &policy, now, last) {
            Local::Decided(answer) => answer,
            Local::Undecided { stale_good } => match (policy.unknown, stale_good) {
                (UnknownStatus::ServeStaleFor(window), Some((source, fresh_until)))
                    if now <= fresh_until.saturating_add(window.as_secs()) =>
                {
                    Answer {
                        status: Status::Good,
                        source: Some(source),
                        // Ask again on the next request: a refresh may have landed.
                        valid_until: now,
                        stale: true,
                    }
                }
                _ => Answer::unknown(UnknownCause::SourcesFailed),
            },
        }
    }

    /// Everything memory says: the deny list, then a revocation from any source, then a fresh
    /// good answer from one of the first `upto + 1` sources in policy order.
    fn local(&self, subject: &Subject, user_id: &str, policy: &Policy, now: u64, upto: usize) -> Local {
        let snapshot = self.snapshot.load();
        if snapshot.deny.denies_user(user_id) || snapshot.deny.denies_serial(&subject.cert.serial) {
            return Local::Decided(Answer::revoked(AnswerSource::DenyList, None));
        }
        if policy.sources.is_empty() {
            return Local::Decided(Answer {
                status: Status::NotChecked,
                source: None,
                valid_until: u64::MAX,
                stale: false,
            });
        }
        let ocsp = if policy.sources.contains(&Source::Ocsp) {
            self.ocsp.get(&subject.cert).inspect(|e| e.last_seen.store(now, Ordering::Relaxed))
        } else {
            None
        };
        let crl = if policy.sources.contains(&Source::Crl) {
            snapshot.crl_verdict(subject, now, &self.options)
        } else {
            None
        };
        if let Some(CrlVerdict::Revoked(entry)) = crl {
            return Local::Decided(Answer::revoked(AnswerSource::Crl, Some(entry.at)));
        }
        if let Some(OcspKnown { status: OcspCertStatus::Revoked { at, .. }, .. }) = ocsp.as_ref().and_then(|e| e.known)
        {
            return Local::Decided(Answer::revoked(AnswerSource::Ocsp, Some(at)));
        }
        let mut stale_good = None;
        for source in policy.sources.iter().take(upto + 1) {
            match source {
                Source::Ocsp => {
                    if let Some(OcspKnown { status: OcspCertStatus::Good, fresh_until, .. }) =
                        ocsp.as_ref().and_then(|e| e.known)
                    {
                        if now <= fresh_until {
                            return Local::Decided(Answer::good(AnswerSource::Ocsp, fresh_until));
                        }
                        stale_good = stale_good.or(Some((AnswerSource::Ocsp, fresh_until)));
                    }
                }
                Source::Crl => {
                    if let Some(CrlVerdict::NotListed { until }) = crl {
                        return Local::Decided(Answer::good(AnswerSource::Crl, until));
                    }
                }
            }
        }
        Local::Undecided { stale_good }
    }

    async fn fetch_source(self: &Arc<Self>, source: Source, subject: &Arc<Subject>, policy: &Arc<Policy>) {
        match source {
            Source::Ocsp => self.ocsp_coalesced(subject, policy).await,
            Source::Crl => {
                let urls: Vec<Arc<str>> =
                    policy.crl_urls.iter().chain(subject.crl_urls.iter()).map(|u| Arc::from(u.as_str())).collect();
                for url in urls {
                    self.register_crl_url(&url, &subject.issuer);
                    self.crl_coalesced(url).await;
                }
            }
        }
    }

    fn register_crl_url(&self, url: &Arc<str>, issuer: &Arc<Issuer>) {
        lock(&self.crl_sources).entry(Arc::clone(url)).or_insert_with(|| CrlSource::new(issuer, None));
    }

    /// Fetches the OCSP answer for `subject`, sharing the fetch with concurrent askers and
    /// skipping it when a fresh answer arrived meanwhile or a fetch failed moments ago.
    async fn ocsp_coalesced(self: &Arc<Self>, subject: &Arc<Subject>, policy: &Arc<Policy>) {
        let now = self.now_secs();
        if let Some(entry) = self.ocsp.get(&subject.cert) {
            let fresh = entry.known.is_some_and(|k| now <= k.fresh_until);
            if fresh || self.cooling(entry.failed_at, now) {
                return;
            }
        }
        let mut done = self.start_ocsp_fetch(subject, policy);
        let _ = done.wait_for(|finished| *finished).await;
    }

    /// Starts the shared OCSP fetch for `subject` unless one is running; the receiver turns true
    /// when it ends. The fetch is a task of its own, so a client that goes away does not cancel
    /// everyone's fetch.
    fn start_ocsp_fetch(self: &Arc<Self>, subject: &Arc<Subject>, policy: &Arc<Policy>) -> watch::Receiver<bool> {
        let mut inflight = lock(&self.ocsp_inflight);
        if let Some(rx) = inflight.get(&subject.cert) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(false);
        inflight.insert(subject.cert.clone(), rx.clone());
        let this = Arc::clone(self);
        let subject = Arc::clone(subject);
        let policy = Arc::clone(policy);
        tokio::spawn(async move {
            this.fetch_ocsp(&subject, &policy).await;
            lock(&this.ocsp_inflight).remove(&subject.cert);
            let _ = tx.send(true);
        });
        rx
    }

    fn cooling(&self, failed_at: Option<u64>, now: u64) -> bool {
        failed_at.is_some_and(|t| now < t.saturating_add(self.options.retry_after_failure.as_secs()))
    }

    async fn fetch_ocsp(&self, subject: &Arc<Subject>, policy: &Policy) {
        let started = Instant::now();
        let result = self.ocsp_exchange(subject, policy).await;
        let now = self.now_secs();
        let previous = self.ocsp.get(&subject.cert);
        let last_seen = previous.as_ref().map_or(now, |p| p.last_seen.load(Ordering::Relaxed));
        let entry = match result {
            Ok(answer) => {
                self.observer.fetched(Source::Ocsp, "ok", started.elapsed());
                let lifetime_end =
                    answer.next_update.unwrap_or(answer.this_update.saturating_add(self.options.max_age.as_secs()));
                let fresh_until = lifetime_end.min(now.saturating_add(self.options.max_age.as_secs()));
                let was_good =
                    previous.as_ref().and_then(|p| p.known).is_some_and(|k| k.status == OcspCertStatus::Good);
                if was_good && answer.status != OcspCertStatus::Good {
                    // A connection may be holding "good" for this certificate: make it look again.
                    self.bump();
                }
                OcspEntry {
                    subject: Arc::clone(subject),
                    known: Some(OcspKnown { status: answer.status, fetched_at: now, fresh_until }),
                    failed_at: None,
                    last_seen: AtomicU64::new(last_seen),
                }
            }
            Err(label) => {
                self.observer.fetched(Source::Ocsp, label, started.elapsed());
                OcspEntry {
                    subject: Arc::clone(subject),
                    known: previous.as_ref().and_then(|p| p.known),
                    failed_at: Some(now),
                    last_seen: AtomicU64::new(last_seen),
                }
            }
        };
        self.ocsp.insert(subject.cert.clone(), Arc::new(entry));
    }

    async fn ocsp_exchange(&self, subject: &Subject, policy: &Policy) -> Result<ocsp::OcspAnswer, &'static str> {
        let responder =
            policy.ocsp.responder.as_deref().or(subject.ocsp_urls.first().map(String::as_str)).ok_or("no_responder")?;
        let request =
            OcspRequest::new(subject, policy.ocsp.hash, policy.ocsp.nonce == crate::policy::NoncePolicy::Send);
        let get_url = request.get_url(responder);
        let use_get = match policy.ocsp.method {
            OcspMethod::Get => true,
            OcspMethod::Post => false,
            OcspMethod::Auto => get_url.len() <= 255,
        };
        let fetch = FetchRequest {
            url: if use_get { get_url } else { responder.to_owned() },
            post: (!use_get).then(|| (Bytes::copy_from_slice(request.der()), "application/ocsp-request")),
            max_bytes: self.options.max_ocsp_response_bytes,
            timeout: self.options.fetch_timeout,
        };
        let bytes = self.fetcher.fetch(fetch).await.map_err(|e| {
            tracing::info!(responder, error = %e, "OCSP fetch failed");
            e.label()
        })?;
        let answer =
            ocsp::evaluate(&bytes, &request, subject, (self.clock)(), self.options.clock_skew).map_err(|e| {
                tracing::info!(responder, error = %e, "OCSP response refused");
                e.label()
            })?;
        match answer.status {
            // The responder does not know the certificate: no answer, not a good one.
            OcspCertStatus::Unknown => Err("responder_unknown_cert"),
            _ => Ok(answer),
        }
    }

    /// Fetches one CRL URL unless it is loaded and current or failed moments ago; concurrent
    /// askers share the fetch.
    async fn crl_coalesced(self: &Arc<Self>, url: Arc<str>) {
        let now = self.now_secs();
        {
            let sources = lock(&self.crl_sources);
            let Some(source) = sources.get(&url) else { return };
            if !source.due(now, self.options.crl_refresh_before) || self.cooling(source.failed_at, now) {
                return;
            }
        }
        let mut done = self.start_crl_fetch(&url);
        let _ = done.wait_for(|finished| *finished).await;
    }

    fn start_crl_fetch(self: &Arc<Self>, url: &Arc<str>) -> watch::Receiver<bool> {
        let mut inflight = lock(&self.crl_inflight);
        if let Some(rx) = inflight.get(url) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(false);
        inflight.insert(Arc::clone(url), rx.clone());
        let this = Arc::clone(self);
        let url = Arc::clone(url);
        tokio::spawn(async move {
            this.fetch_crl(&url).await;
            lock(&this.crl_inflight).remove(&url);
            let _ = tx.send(true);
        });
        rx
    }

    async fn fetch_crl(self: &Arc<Self>, url: &Arc<str>) {
        let Some(issuer) = lock(&self.crl_sources).get(url).map(|s| Arc::clone(&s.issuer)) else { return };
        let started = Instant::now();
        let fetched = self
            .fetcher
            .fetch(FetchRequest {
                url: url.to_string(),
                post: None,
                max_bytes: self.options.max_crl_bytes,
                timeout: self.options.fetch_timeout.max(Duration::from_secs(30)),
            })
            .await;
        let outcome = match fetched {
            Ok(bytes) => self.install_crl(url, &issuer, bytes).await,
            Err(e) => Err(e.label()),
        };
        self.observer.fetched(Source::Crl, outcome.err().unwrap_or("ok"), started.elapsed());
        if let Err(label) = outcome {
            tracing::warn!(url = %url, error = label, "CRL fetch failed");
            if let Some(source) = lock(&self.crl_sources).get_mut(url) {
                source.failed_at = Some(self.now_secs());
            }
        }
    }

    /// Parses (off the async threads) and installs a CRL from `source`.
    async fn install_crl(
        self: &Arc<Self>,
        source: &Arc<str>,
        issuer: &Arc<Issuer>,
        der: Bytes,
    ) -> Result<(), &'static str> {
        let issuer_for_parse = Arc::clone(issuer);
        let crl = tokio::task::spawn_blocking(move || {
            // Files from `openssl ca -gencrl` are PEM unless converted; both are accepted.
            if der.starts_with(b"-----BEGIN") {
                use rustls_pki_types::pem::PemObject;
                let pem = rustls_pki_types::CertificateRevocationListDer::from_pem_slice(&der)
                    .map_err(|e| crate::crl::CrlError::Malformed(format!("PEM: {e}")))?;
                Crl::parse(pem.as_ref(), &issuer_for_parse)
            } else {
                Crl::parse(&der, &issuer_for_parse)
            }
        })
        .await
        .map_err(|_| "parse_panicked")?
        .map_err(|e| {
            tracing::warn!(source = %source, error = %e, "CRL refused");
            e.label()
        })?;
        self.install_parsed_crl(source, issuer, crl);
        Ok(())
    }

    fn install_parsed_crl(&self, source: &Arc<str>, issuer: &Arc<Issuer>, crl: Crl) {
        let crl = Arc::new(crl);
        let freshest: Vec<String> = crl.freshest_urls().to_vec();
        let lifetime = (
            crl.this_update(),
            crl.next_update().unwrap_or(crl.this_update().saturating_add(self.options.max_age.as_secs())),
        );
        let entries = crl.len();
        let old = self.snapshot.load_full();
        let mut crls = old.crls.clone();
        let slot = crls.entry(issuer.id()).or_default();
        let list = if crl.is_delta() { &mut slot.deltas } else { &mut slot.bases };
        list.retain(|(s, _)| s != source);
        list.push((Arc::clone(source), crl));
        self.snapshot.store(Arc::new(Snapshot { crls, deny: old.deny.clone() }));
        {
            let mut sources = lock(&self.crl_sources);
            if let Some(s) = sources.get_mut(source) {
                s.loaded = Some(lifetime);
                s.failed_at = None;
            }
            // Delta CRLs named by the base are fetched like any other CRL.
            for url in freshest {
                sources.entry(url.as_str().into()).or_insert_with(|| CrlSource::new(issuer, None));
            }
        }
        self.bump();
        tracing::info!(source = %source, entries, "CRL installed");
    }

    /// Loads every registered CRL file and the deny-list file now; the gateway calls this before
    /// it starts serving so the first requests already have them.
    pub async fn load_files(self: &Arc<Self>) {
        self.poll_files().await;
    }

    async fn poll_files(self: &Arc<Self>) {
        let files: Vec<WatchedFile> = lock(&self.crl_sources)
            .iter()
            .filter_map(|(k, s)| s.file.clone().map(|f| (Arc::clone(k), f, s.modified, Arc::clone(&s.issuer))))
            .collect();
        for (key, path, seen, issuer) in files {
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if modified.is_none() || modified == seen {
                continue;
            }
            if let Some(s) = lock(&self.crl_sources).get_mut(&key) {
                s.modified = modified;
            }
            let started = Instant::now();
            let outcome = match tokio::fs::read(&path).await {
                Ok(bytes) => self.install_crl(&key, &issuer, Bytes::from(bytes)).await,
                Err(_) => Err("read"),
            };
            self.observer.fetched(Source::Crl, outcome.err().unwrap_or("ok"), started.elapsed());
        }
        self.poll_deny_file();
    }

    /// Watches a deny-list file (hot-reloaded); a file that does not parse keeps the last good
    /// list and is logged.
    pub fn set_deny_file(&self, path: Option<PathBuf>) {
        *lock(&self.deny_file) = path.map(|p| (p, None, DenyList::default()));
        self.poll_deny_file();
    }

    fn poll_deny_file(&self) {
        let mut guard = lock(&self.deny_file);
        let Some((path, seen, list)) = guard.as_mut() else { return };
        let modified = std::fs::metadata(&*path).and_then(|m| m.modified()).ok();
        if modified == *seen {
            return;
        }
        *seen = modified;
        let parsed = match std::fs::read_to_string(&*path) {
            Ok(text) => DenyList::parse(&text).map_err(|e| e.to_string()),
            // A deleted file is an empty list: removing the file lifts the denials.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DenyList::default()),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(new) => {
                tracing::info!(path = %path.display(), entries = new.len(), "deny list loaded");
                *list = new;
                let combined = list.union(&lock(&self.deny_api));
                drop(guard);
                self.publish_deny(combined);
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "deny list refused; keeping the last good one")
            }
        }
    }

    fn publish_deny(&self, deny: DenyList) {
        let old = self.snapshot.load_full();
        self.snapshot.store(Arc::new(Snapshot { crls: old.crls.clone(), deny }));
        self.bump();
    }

    fn republish_deny(&self) {
        let file = lock(&self.deny_file).as_ref().map(|(_, _, l)| l.clone()).unwrap_or_default();
        let combined = file.union(&lock(&self.deny_api));
        self.publish_deny(combined);
    }

    /// Adds entries through the admin endpoint (this replica only; the file is the cluster-wide
    /// list). Effective for the next request on every connection.
    pub fn deny_add(&self, entries: impl IntoIterator<Item = DenyEntry>) {
        {
            let mut api = lock(&self.deny_api);
            for entry in entries {
                api.insert(entry);
            }
        }
        self.republish_deny();
    }

    /// Removes entries added through the admin endpoint.
    pub fn deny_remove(&self, entries: &[DenyEntry]) {
        {
            let mut api = lock(&self.deny_api);
            for entry in entries {
                api.remove(entry);
            }
        }
        self.republish_deny();
    }

    /// Installs a CRL given as bytes, checked against `issuer` (tests, tools).
    pub async fn install_crl_bytes(
        self: &Arc<Self>,
        source: &str,
        issuer: &Arc<Issuer>,
        der: Bytes,
    ) -> Result<(), &'static str> {
        let key: Arc<str> = source.into();
        lock(&self.crl_sources).entry(Arc::clone(&key)).or_insert_with(|| CrlSource::new(issuer, None));
        self.install_crl(&key, issuer, der).await
    }

    /// Background work until `stop` changes: file polling, OCSP refresh of recently used
    /// certificates before their answers end, CRL refetch before nextUpdate.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut files = tokio::time::interval(self.options.file_poll_interval);
        let mut refresh = tokio::time::interval(Duration::from_secs(1));
        files.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = files.tick() => self.poll_files().await,
                _ = refresh.tick() => {
                    self.refresh_ocsp();
                    self.refresh_crls();
                }
            }
        }
    }

    fn refresh_ocsp(self: &Arc<Self>) {
        // Bounded per round so a large cache does not burst the responder.
        const MAX_PER_ROUND: usize = 64;
        let now = self.now_secs();
        let policies = self.policies.load();
        let mut started = 0;
        for (_, entry) in self.ocsp.iter() {
            if started >= MAX_PER_ROUND {
                break;
            }
            let recently_used =
                now.saturating_sub(entry.last_seen.load(Ordering::Relaxed)) <= self.options.recently_seen.as_secs();
            let ending = entry
                .known
                .is_none_or(|k| refresh_point(k.fetched_at, k.fresh_until, self.options.refresh_before) <= now);
            if recently_used && ending && !self.cooling(entry.failed_at, now) {
                started += 1;
                let policy = Arc::clone(policies.for_issuer(entry.subject.cert.issuer));
                drop(self.start_ocsp_fetch(&entry.subject, &policy));
            }
        }
    }

    fn refresh_crls(self: &Arc<Self>) {
        let now = self.now_secs();
        let due: Vec<Arc<str>> = lock(&self.crl_sources)
            .iter()
            // Only URLs already loaded once: the first fetch is made by the request that needs it.
            .filter(|(_, s)| s.file.is_none() && s.loaded.is_some())
            .filter(|(_, s)| s.due(now, self.options.crl_refresh_before))
            .map(|(k, _)| Arc::clone(k))
            .collect();
        for url in due {
            let cooling = lock(&self.crl_sources).get(&url).is_some_and(|s| self.cooling(s.failed_at, now));
            if !cooling {
                drop(self.start_crl_fetch(&url));
            }
        }
    }

    /// Numbers for metrics.
    pub fn stats(&self) -> Stats {
        self.ocsp.run_pending_tasks();
        let snapshot = self.snapshot.load();
        let mut crls = Vec::new();
        for set in snapshot.crls.values() {
            for (source, crl) in set.bases.iter().chain(&set.deltas) {
                crls.push(CrlStats {
                    source: source.to_string(),
                    entries: crl.len(),
                    this_update: crl.this_update(),
                    next_update: crl.next_update(),
                    delta: crl.is_delta(),
                });
            }
        }
        Stats { ocsp_entries: self.ocsp.entry_count(), crls, deny_entries: snapshot.deny.len() }
    }
}

/// A CRL file to check: source key, path, last seen modification time, issuer.
type WatchedFile = (Arc<str>, PathBuf, Option<SystemTime>, Arc<Issuer>);

enum Local {
    Decided(Answer),
    Undecided { stale_good: Option<(AnswerSource, u64)> },
}
