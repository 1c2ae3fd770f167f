//! The CRL source: files (polled for changes) and distribution points (fetched once for all
//! askers, refetched before nextUpdate), parsed off the async threads and installed into the
//! snapshot as bases and deltas.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use spinegate_flight::Boarding;

use super::{CrlSource, Revocation, Snapshot, lock};
use crate::crl::Crl;
use crate::fetch::FetchRequest;
use crate::issuer::IssuingCa;
use crate::policy::Source;

/// A CRL file to check: source key, path, last seen modification time, issuer.
type WatchedFile = (Arc<str>, PathBuf, Option<SystemTime>, Arc<IssuingCa>);

impl Revocation {
    pub(super) fn register_crl_url(&self, url: &Arc<str>, issuer: &Arc<IssuingCa>) {
        lock(&self.crl_sources).entry(Arc::clone(url)).or_insert_with(|| CrlSource::new(issuer, None));
    }

    /// Fetches one CRL URL unless it is loaded and current or failed moments ago; concurrent
    /// askers share the fetch.
    pub(super) async fn crl_coalesced(self: &Arc<Self>, url: Arc<str>) {
        let now = self.now_secs();
        {
            let sources = lock(&self.crl_sources);
            let Some(source) = sources.get(&url) else { return };
            if !source.due(now, self.options.crl_refresh_before) || self.cooling(source.failed_at, now) {
                return;
            }
        }
        if let Boarding::Joined(flight) | Boarding::Started(flight) = self.start_crl_fetch(&url) {
            flight.landed().await;
        }
    }

    /// Starts the shared fetch of `url` unless one is running.
    fn start_crl_fetch(self: &Arc<Self>, url: &Arc<str>) -> Boarding<()> {
        let (this, url_for_fetch) = (Arc::clone(self), Arc::clone(url));
        self.crl_flights.join_or_start(
            Arc::clone(url),
            || None,
            move || async move {
                this.fetch_crl(&url_for_fetch).await;
            },
        )
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
        issuer: &Arc<IssuingCa>,
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

    pub(super) fn install_parsed_crl(&self, source: &Arc<str>, issuer: &Arc<IssuingCa>, crl: Crl) {
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

    pub(super) async fn poll_files(self: &Arc<Self>) {
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

    /// Installs a CRL given as bytes, checked against `issuer` (tests, tools).
    pub async fn install_crl_bytes(
        self: &Arc<Self>,
        source: &str,
        issuer: &Arc<IssuingCa>,
        der: Bytes,
    ) -> Result<(), &'static str> {
        let key: Arc<str> = source.into();
        lock(&self.crl_sources).entry(Arc::clone(&key)).or_insert_with(|| CrlSource::new(issuer, None));
        self.install_crl(&key, issuer, der).await
    }

    pub(super) fn refresh_crls(self: &Arc<Self>) {
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
}
