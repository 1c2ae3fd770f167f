//! spinegate-revocation wired into the gateway: per-CA policies from the configuration (CRL files
//! and URLs checked against the issuer's certificate), the HTTP fetcher, the gateway clock, and
//! the metrics the revocation state reports.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use spinegate_config::Config;
use spinegate_revocation::checker::{Answer, Observer};
use spinegate_revocation::fetch::HttpFetcher;
use spinegate_revocation::issuer::IssuingCa;
use spinegate_revocation::{Policies, Revocation, Source, Status};

use crate::clock::Clock;
use crate::material::{self, MaterialError};
use crate::metrics as m;

/// Every CA's policy: `[client_auth.revocation]` for the default, and each
/// `[[client_auth.issuer]]` with its certificate.
pub(crate) fn policies(config: &Config) -> Result<Policies, MaterialError> {
    let mut issuers = HashMap::new();
    for issuer in &config.client_auth.issuers {
        let der = material::certificates(&issuer.certificate)?.remove(0);
        let ca = IssuingCa::from_cert_der(&der)
            .map_err(|e| MaterialError::BadCertificate { path: issuer.certificate.clone(), reason: e.to_string() })?;
        issuers.insert(ca.id(), (Arc::new(ca), Arc::new(issuer.revocation.clone())));
    }
    Ok(Policies { default: Arc::new(config.client_auth.revocation.clone()), issuers })
}

/// The revocation state for `config`, fetching over HTTP, on the gateway's clock.
pub(crate) fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<Arc<Revocation>, MaterialError> {
    let revocation = Revocation::new(
        config.revocation.options.clone(),
        policies(config)?,
        Arc::new(HttpFetcher::new()),
        Arc::new(MetricsObserver),
        Arc::new(move || clock.now()),
    );
    revocation.set_deny_file(config.revocation.deny_list.clone());
    Ok(revocation)
}

/// Publishes revocation events as Prometheus metrics.
#[derive(Debug)]
pub(crate) struct MetricsObserver;

impl Observer for MetricsObserver {
    fn fetched(&self, source: Source, outcome: &'static str, elapsed: Duration) {
        metrics::counter!(m::REVOCATION_FETCHES, "source" => source.label(), "outcome" => outcome).increment(1);
        metrics::histogram!(m::REVOCATION_FETCH_DURATION, "source" => source.label()).record(elapsed.as_secs_f64());
    }

    fn answered(&self, answer: &Answer) {
        let status = match answer.status {
            Status::Good => "good",
            Status::Revoked { .. } => "revoked",
            Status::Unknown(_) => "unknown",
            Status::NotChecked => "not_checked",
        };
        let source = answer.source.map_or("none", |s| s.label());
        metrics::counter!(m::REVOCATION_ANSWERS, "source" => source, "status" => status).increment(1);
        if answer.stale {
            metrics::counter!(m::REVOCATION_STALE_SERVES, "source" => source).increment(1);
        }
    }
}

/// Sets the revocation gauges (called when `/metrics` is scraped).
pub(crate) fn publish_gauges(revocation: &Revocation, now: u64) {
    let stats = revocation.stats();
    metrics::gauge!(m::REVOCATION_OCSP_CACHE_ENTRIES).set(stats.ocsp_entries as f64);
    metrics::gauge!(m::DENY_LIST_ENTRIES).set(stats.deny_entries as f64);
    metrics::gauge!(m::REVOCATION_GENERATION).set(revocation.generation() as f64);
    for crl in stats.crls {
        let kind = if crl.delta { "delta" } else { "full" };
        metrics::gauge!(m::CRL_ENTRIES, "source" => crl.source.clone(), "kind" => kind).set(crl.entries as f64);
        metrics::gauge!(m::CRL_AGE, "source" => crl.source.clone(), "kind" => kind)
            .set(now.saturating_sub(crl.this_update) as f64);
        if let Some(next) = crl.next_update {
            metrics::gauge!(m::CRL_NEXT_UPDATE_IN, "source" => crl.source, "kind" => kind)
                .set(next as f64 - now as f64);
        }
    }
}
