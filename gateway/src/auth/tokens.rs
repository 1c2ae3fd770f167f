//! The gateway's side of bearer tokens ([`spinegate_token`] does the verifying): the HTTPS key
//! fetcher the verifier is given, the metrics it reports through, and the verifier built from
//! the configuration, carrying each token's role profiles resolved under the current policy.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::crypto::CryptoProvider;
use spinegate_authz::{RoleData, RoleSlot};
use spinegate_config::Config;
use spinegate_token::claims::RoleClaim;
use spinegate_token::{KeyFetch, Observer, TokenVerifier, VerifiedToken};

use crate::material::{self, MaterialError};
use crate::metrics as m;

/// The verifier as the gateway runs it: each verified token carries its role profiles, resolved
/// once per policy generation.
pub(crate) type Tokens = TokenVerifier<RoleSlot>;
/// A token the gateway verified.
pub(crate) type Verified = VerifiedToken<RoleSlot>;

/// The verifier for the configuration's `[tokens]` and `[[token_issuer]]`, fetching keys over
/// HTTPS with each issuer's CAs.
pub(crate) fn build(config: &Config, provider: &Arc<CryptoProvider>) -> Result<Tokens, MaterialError> {
    let mut fetchers = Vec::with_capacity(config.token_issuers.len());
    for issuer in &config.token_issuers {
        fetchers.push(Arc::new(HttpsKeyFetch::new(&issuer.jwks_ca, provider)?) as Arc<dyn KeyFetch>);
    }
    let issuers: Vec<_> = config.token_issuers.iter().map(|i| i.options.clone()).collect();
    Ok(TokenVerifier::new(&config.tokens.options, &issuers, fetchers, Arc::new(TokenMetrics)))
}

/// A role profile as a token's `nhsid_nrbac_roles[]` entry gives it.
pub(crate) fn role_data(claim: &RoleClaim) -> RoleData {
    RoleData {
        id: claim.person_roleid.as_str().into(),
        org: claim.org_code.to_ascii_uppercase().into(),
        role_code: claim.role_code.as_str().into(),
        activity_codes: claim.activity_codes.iter().map(|c| c.as_str().into()).collect(),
        workgroups: claim.workgroups_codes.iter().map(|c| c.as_str().into()).collect(),
    }
}

/// Token outcomes as Prometheus series.
#[derive(Debug)]
pub(crate) struct TokenMetrics;

impl Observer for TokenMetrics {
    fn verified(&self, issuer: Option<&str>, result: &'static str) {
        let issuer = issuer.map_or(metrics::SharedString::const_str("unknown"), |i| i.to_owned().into());
        metrics::counter!(m::TOKEN_VERIFICATIONS, "issuer" => issuer, "result" => result).increment(1);
    }

    fn keys_fetched(&self, issuer: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        metrics::counter!(m::JWKS_REFRESHES, "issuer" => issuer.to_owned(), "outcome" => outcome).increment(1);
    }

    fn refetch_suppressed(&self, issuer: &str) {
        metrics::counter!(m::JWKS_REFETCHES_SUPPRESSED, "issuer" => issuer.to_owned()).increment(1);
    }
}

/// HTTPS (and loopback HTTP) fetching with the issuer's CAs.
#[derive(Debug, Clone)]
pub(crate) struct HttpsKeyFetch {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

/// Largest key-set or discovery document accepted.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Deadline of one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

impl HttpsKeyFetch {
    /// A client trusting the CAs in `ca_files` for https URLs.
    pub(crate) fn new(ca_files: &[std::path::PathBuf], provider: &Arc<CryptoProvider>) -> Result<Self, MaterialError> {
        let roots = material::ca_roots(ca_files)?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::clone(provider))
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.enforce_http(false);
        let connector =
            HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self { client })
    }
}

impl KeyFetch for HttpsKeyFetch {
    fn get(&self, url: &str) -> BoxFuture<'static, Result<Bytes, String>> {
        let client = self.client.clone();
        let uri: Result<http::Uri, _> = url.parse();
        Box::pin(async move {
            let uri = uri.map_err(|e| format!("bad URL: {e}"))?;
            let exchange = async {
                let response = client.get(uri).await.map_err(|e| format!("fetch failed: {e}"))?;
                if response.status() != http::StatusCode::OK {
                    return Err(format!("HTTP status {}", response.status()));
                }
                Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .map_err(|e| format!("body: {e}"))
            };
            tokio::time::timeout(FETCH_TIMEOUT, exchange).await.map_err(|_| "timed out".to_owned())?
        })
    }
}
