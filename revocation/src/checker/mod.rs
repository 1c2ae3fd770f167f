//! [`Revocation`]: the revocation state of the gateway, and the answers it gives. The sources
//! that feed it each have a file: [`ocsp_source`] (cached answers, shared fetches, refreshes),
//! [`crl_source`] (files and distribution points, deltas, refetches) and [`deny_source`] (the
//! emergency deny list from its file and the admin endpoint).
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
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use rustls_pki_types::UnixTime;
use spinegate_flight::SingleFlight;
use tokio::sync::watch;

use crate::crl::{Crl, CrlVerdict, Partition};
use crate::deny::DenyList;
use crate::fetch::{Fetch, FetchError, FetchRequest};
use crate::issuer::{IssuingCa, Subject};
use crate::ocsp::OcspCertStatus;
use crate::policy::{Policies, Policy, Source, UnknownStatus};
use crate::{CertId, IssuerId, Status, UnknownCause};

pub mod crl_source;
pub mod deny_source;
pub mod ocsp_source;

/// Tuning of caches and fetches.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// When to refresh something usable from `start` to `end`: `margin` before its end, but never
/// earlier than half-way, so a margin longer than the lifetime does not mean "refresh always".
fn refresh_point(start: u64, end: u64, margin: Duration) -> u64 {
    end.saturating_sub(margin.as_secs().min(end.saturating_sub(start) / 2))
}

/// A verified OCSP result kept for one certificate.
#[derive(Debug, Clone, Copy)]
pub(super) struct OcspKnown {
    pub(super) status: OcspCertStatus,
    /// When it was fetched.
    pub(super) fetched_at: u64,
    /// When this answer stops being fresh.
    pub(super) fresh_until: u64,
}

/// What is known of one certificate from OCSP, and when it was last asked for.
#[derive(Debug)]
pub(super) struct OcspEntry {
    pub(super) subject: Arc<Subject>,
    pub(super) known: Option<OcspKnown>,
    pub(super) failed_at: Option<u64>,
    pub(super) last_seen: AtomicU64,
}

/// One place a CRL comes from (a URL, or a file).
#[derive(Debug)]
pub(super) struct CrlSource {
    pub(super) issuer: Arc<IssuingCa>,
    pub(super) file: Option<PathBuf>,
    pub(super) modified: Option<SystemTime>,
    /// (thisUpdate, nextUpdate) of the CRL loaded from here.
    pub(super) loaded: Option<(u64, u64)>,
    pub(super) failed_at: Option<u64>,
}

impl CrlSource {
    pub(super) fn new(issuer: &Arc<IssuingCa>, file: Option<PathBuf>) -> Self {
        Self { issuer: Arc::clone(issuer), file, modified: None, loaded: None, failed_at: None }
    }

    /// Whether the CRL from here should be fetched again at `now`.
    pub(super) fn due(&self, now: u64, margin: Duration) -> bool {
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
    ocsp_flights: Arc<SingleFlight<CertId, ()>>,
    crl_sources: Mutex<HashMap<Arc<str>, CrlSource>>,
    crl_flights: Arc<SingleFlight<Arc<str>, ()>>,
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
            ocsp_flights: Arc::new(SingleFlight::new()),
            crl_sources: Mutex::new(HashMap::new()),
            crl_flights: Arc::new(SingleFlight::new()),
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

    fn cooling(&self, failed_at: Option<u64>, now: u64) -> bool {
        failed_at.is_some_and(|t| now < t.saturating_add(self.options.retry_after_failure.as_secs()))
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

enum Local {
    Decided(Answer),
    Undecided { stale_good: Option<(AnswerSource, u64)> },
}
