//! The OCSP source: answers cached per certificate, one shared fetch per certificate, failures
//! remembered for `retry_after_failure`, and recently used answers refreshed before they end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use spinegate_flight::Boarding;

use super::{OcspEntry, OcspKnown, Revocation, refresh_point};
use crate::fetch::FetchRequest;
use crate::issuer::Subject;
use crate::ocsp::{self, OcspCertStatus, OcspRequest};
use crate::policy::{OcspMethod, Policy, Source};

impl Revocation {
    /// Fetches the OCSP answer for `subject`, sharing the fetch with concurrent askers and
    /// skipping it when a fresh answer arrived meanwhile or a fetch failed moments ago.
    pub(super) async fn ocsp_coalesced(self: &Arc<Self>, subject: &Arc<Subject>, policy: &Arc<Policy>) {
        let now = self.now_secs();
        if let Some(entry) = self.ocsp.get(&subject.cert) {
            let fresh = entry.known.is_some_and(|k| now <= k.fresh_until);
            if fresh || self.cooling(entry.failed_at, now) {
                return;
            }
        }
        if let Boarding::Joined(flight) | Boarding::Started(flight) = self.start_ocsp_fetch(subject, policy) {
            flight.landed().await;
        }
    }

    /// Starts the shared OCSP fetch for `subject` unless one is running. The fetch is a task of
    /// its own, so a client that goes away does not cancel everyone's fetch.
    fn start_ocsp_fetch(self: &Arc<Self>, subject: &Arc<Subject>, policy: &Arc<Policy>) -> Boarding<()> {
        let (this, subject_for_fetch, policy) = (Arc::clone(self), Arc::clone(subject), Arc::clone(policy));
        self.ocsp_flights.join_or_start(
            subject.cert.clone(),
            || None,
            move || async move {
                this.fetch_ocsp(&subject_for_fetch, &policy).await;
            },
        )
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

    pub(super) fn refresh_ocsp(self: &Arc<Self>) {
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
}
