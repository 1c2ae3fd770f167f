//! Every metric name the gateway publishes, in one place (DESIGN §6), and the Prometheus
//! recorder behind `/metrics`. Labels are bounded: listener, route, upstream, method, status,
//! reason, outcome — never a user id.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered: `route`, `method`, `status`, `reason` (`ok` when proxied).
pub const REQUESTS: &str = "spinegate_requests_total";
/// Whole-request duration in seconds: `route`.
pub const REQUEST_DURATION: &str = "spinegate_request_duration_seconds";
/// Requests being handled now.
pub const REQUESTS_IN_FLIGHT: &str = "spinegate_requests_in_flight";
/// Upstream exchange duration to response headers: `upstream`.
pub const UPSTREAM_DURATION: &str = "spinegate_upstream_duration_seconds";
/// Upstream failures: `upstream`, `kind` (`unavailable`, `timeout`).
pub const UPSTREAM_ERRORS: &str = "spinegate_upstream_errors_total";
/// Open client connections: `listener`.
pub const CONNECTIONS_OPEN: &str = "spinegate_connections_open";
/// TLS handshakes: `listener`, `outcome` (`ok`, `failed`, `timeout`), `version`, `resumed`.
pub const TLS_HANDSHAKES: &str = "spinegate_tls_handshakes_total";
/// TLS handshake duration in seconds: `listener`.
pub const TLS_HANDSHAKE_DURATION: &str = "spinegate_tls_handshake_duration_seconds";
/// Client-certificate verifications: `result` (`ok` or a failure label such as `unknown_ca`).
pub const CLIENT_CERT_VERIFICATIONS: &str = "spinegate_client_cert_verifications_total";
/// Chain-cache lookups: `result` (`hit`, `miss_absent`, `miss_expired`, `miss_trust_changed`).
pub const CHAIN_CACHE_LOOKUPS: &str = "spinegate_chain_cache_lookups_total";
/// Chains in the cache.
pub const CHAIN_CACHE_ENTRIES: &str = "spinegate_chain_cache_entries";
/// Revocation fetches: `source` (`ocsp`, `crl`), `outcome` (`ok` or an error label).
pub const REVOCATION_FETCHES: &str = "spinegate_revocation_fetches_total";
/// Revocation fetch duration (OCSP responder latency, CRL download) in seconds: `source`.
pub const REVOCATION_FETCH_DURATION: &str = "spinegate_revocation_fetch_duration_seconds";
/// Revocation answers on the request path: `source` (`ocsp`, `crl`, `deny_list`, `none`),
/// `status` (`good`, `revoked`, `unknown`, `not_checked`).
pub const REVOCATION_ANSWERS: &str = "spinegate_revocation_answers_total";
/// Good answers served stale under `serve_stale_for`: `source`.
pub const REVOCATION_STALE_SERVES: &str = "spinegate_revocation_stale_serves_total";
/// Certificates with a cached OCSP answer.
pub const REVOCATION_OCSP_CACHE_ENTRIES: &str = "spinegate_revocation_ocsp_cache_entries";
/// The revocation generation (advances whenever a certificate may have become refused).
pub const REVOCATION_GENERATION: &str = "spinegate_revocation_generation";
/// Entries of each loaded CRL: `source`, `kind` (`full`, `delta`).
pub const CRL_ENTRIES: &str = "spinegate_crl_entries";
/// Seconds since each loaded CRL's thisUpdate: `source`, `kind`.
pub const CRL_AGE: &str = "spinegate_crl_age_seconds";
/// Seconds until each loaded CRL's nextUpdate (negative when past): `source`, `kind`.
pub const CRL_NEXT_UPDATE_IN: &str = "spinegate_crl_next_update_in_seconds";
/// Emergency deny-list entries in force.
pub const DENY_LIST_ENTRIES: &str = "spinegate_deny_list_entries";
/// Bearer-token verifications: `issuer`, `result` (`ok` or a refusal label).
pub const TOKEN_VERIFICATIONS: &str = "spinegate_token_verifications_total";
/// Signing-key fetches: `issuer`, `outcome` (`ok`, `failed`).
pub const JWKS_REFRESHES: &str = "spinegate_jwks_refreshes_total";
/// Unknown-`kid` refetches skipped because one happened within the refetch interval: `issuer`.
pub const JWKS_REFETCHES_SUPPRESSED: &str = "spinegate_jwks_refetches_suppressed_total";
/// Seconds since each issuer's signing keys were fetched: `issuer`.
pub const JWKS_AGE: &str = "spinegate_jwks_age_seconds";
/// Back-channel logout requests: `result`.
pub const BACKCHANNEL_LOGOUTS: &str = "spinegate_backchannel_logouts_total";
/// Authorisation decisions: `route`, `decision` (`allow`/`deny`), `reason`.
pub const AUTHZ_DECISIONS: &str = "spinegate_authz_decisions_total";
/// Role directory lookups: `backend` (`file`/`ldap`), `result` (`hit`, `miss`, `error`).
pub const DIRECTORY_LOOKUPS: &str = "spinegate_role_directory_lookups_total";
/// Role directory lookup time on a miss: `backend`.
pub const DIRECTORY_LOOKUP_DURATION: &str = "spinegate_role_directory_lookup_duration_seconds";
/// Role directory file reloads: `result` (`ok`/`error`).
pub const DIRECTORY_RELOADS: &str = "spinegate_role_directory_reloads_total";
/// Users in the role directory file.
pub const DIRECTORY_USERS: &str = "spinegate_role_directory_users";
/// Audit records written.
pub const AUDIT_RECORDS: &str = "spinegate_audit_records_total";
/// Audit records dropped because the queue was full.
pub const AUDIT_DROPPED: &str = "spinegate_audit_records_dropped_total";
/// Audit write failures.
pub const AUDIT_WRITE_ERRORS: &str = "spinegate_audit_write_errors_total";
/// Identity assertions signed: `route`.
pub const IDENTITY_ASSERTIONS: &str = "spinegate_identity_assertions_total";
/// Build information: `version`.
pub const BUILD_INFO: &str = "spinegate_build_info";

/// Histogram buckets for request-scale durations (seconds).
const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle. Several gateways in
/// one process (tests) share it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
                .expect("bucket list is non-empty")
                .install_recorder()
                .unwrap_or_else(|_| {
                    // Another recorder is already installed (an embedding program's): keep
                    // rendering our own view so /metrics still answers.
                    PrometheusBuilder::new().build_recorder().handle()
                });
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}
