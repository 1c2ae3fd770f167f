//! Every metric name the gateway publishes, in one place (DESIGN §6), and the Prometheus
//! recorder behind `/metrics`. Labels are bounded: listener, route, upstream, method, status,
//! reason, outcome — never a user id.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Declares each metric name once, with its documentation, which is also its Prometheus HELP
/// text (`describe`).
macro_rules! metrics {
    ($($(#[doc = $doc:expr])* $kind:ident $name:ident = $value:literal;)*) => {
        $($(#[doc = $doc])* pub const $name: &str = $value;)*

        /// HELP text for every metric (Prometheus shows it; `promtool check metrics` wants it).
        fn describe() {
            $(metrics!(@describe $kind $name concat!($($doc),*));)*
        }
    };
    (@describe counter $name:ident $help:expr) => { metrics::describe_counter!($name, $help.trim()) };
    (@describe gauge $name:ident $help:expr) => { metrics::describe_gauge!($name, $help.trim()) };
    (@describe histogram $name:ident $help:expr) => { metrics::describe_histogram!($name, $help.trim()) };
}

metrics! {
    /// Requests answered: `route`, `method`, `status`, `reason` (`ok` when proxied).
    counter REQUESTS = "spinegate_requests_total";
    /// Whole-request duration in seconds: `route`.
    histogram REQUEST_DURATION = "spinegate_request_duration_seconds";
    /// Requests being handled now.
    gauge REQUESTS_IN_FLIGHT = "spinegate_requests_in_flight";
    /// Upstream exchange duration to response headers: `upstream`.
    histogram UPSTREAM_DURATION = "spinegate_upstream_duration_seconds";
    /// Upstream failures: `upstream`, `kind` (`unavailable`, `timeout`).
    counter UPSTREAM_ERRORS = "spinegate_upstream_errors_total";
    /// Open client connections: `listener`.
    gauge CONNECTIONS_OPEN = "spinegate_connections_open";
    /// Admin connections closed at once because `[admin] max_connections` were open.
    counter ADMIN_CONNECTIONS_REFUSED = "spinegate_admin_connections_refused_total";
    /// Client connections closed after their handshake: `listener`, `transport` (`tcp`,
    /// `quic`), `reason` (`client`, `error`, `first_request_timeout`, `header_timeout`,
    /// `send_timeout`, `idle`, `refusal`, `drain`).
    counter CONNECTIONS_CLOSED = "spinegate_connections_closed_total";
    /// TLS handshakes: `listener`, `transport` (`tcp`, `quic`), `outcome` (`ok`, `failed`,
    /// `timeout`; `refused` when the QUIC connection cap is reached), `version` (`none` unless
    /// `ok`), `resumed` (`true`, `false`; `unknown` over QUIC).
    counter TLS_HANDSHAKES = "spinegate_tls_handshakes_total";
    /// TLS handshake duration in seconds: `listener`.
    histogram TLS_HANDSHAKE_DURATION = "spinegate_tls_handshake_duration_seconds";
    /// Client-certificate verifications: `result` (`ok` or a failure label such as `unknown_ca`).
    counter CLIENT_CERT_VERIFICATIONS = "spinegate_client_cert_verifications_total";
    /// Chain-cache lookups: `result` (`hit`, `miss_absent`, `miss_expired`, `miss_trust_changed`).
    counter CHAIN_CACHE_LOOKUPS = "spinegate_chain_cache_lookups_total";
    /// Chains in the cache.
    gauge CHAIN_CACHE_ENTRIES = "spinegate_chain_cache_entries";
    /// Revocation fetches: `source` (`ocsp`, `crl`), `outcome` (`ok` or an error label).
    counter REVOCATION_FETCHES = "spinegate_revocation_fetches_total";
    /// Revocation fetch duration (OCSP responder latency, CRL download) in seconds: `source`.
    histogram REVOCATION_FETCH_DURATION = "spinegate_revocation_fetch_duration_seconds";
    /// Revocation answers on the request path: `source` (`ocsp`, `crl`, `deny_list`, `none`),
    /// `status` (`good`, `revoked`, `unknown`, `not_checked`).
    counter REVOCATION_ANSWERS = "spinegate_revocation_answers_total";
    /// Good answers served stale under `serve_stale_for`: `source`.
    counter REVOCATION_STALE_SERVES = "spinegate_revocation_stale_serves_total";
    /// Certificates with a cached OCSP answer.
    gauge REVOCATION_OCSP_CACHE_ENTRIES = "spinegate_revocation_ocsp_cache_entries";
    /// The revocation generation (advances whenever a certificate may have become refused).
    gauge REVOCATION_GENERATION = "spinegate_revocation_generation";
    /// Entries of each loaded CRL: `source`, `kind` (`full`, `delta`).
    gauge CRL_ENTRIES = "spinegate_crl_entries";
    /// Seconds since each loaded CRL's thisUpdate: `source`, `kind`.
    gauge CRL_AGE = "spinegate_crl_age_seconds";
    /// Seconds until each loaded CRL's nextUpdate (negative when past): `source`, `kind`.
    gauge CRL_NEXT_UPDATE_IN = "spinegate_crl_next_update_in_seconds";
    /// Emergency deny-list entries in force.
    gauge DENY_LIST_ENTRIES = "spinegate_deny_list_entries";
    /// Bearer-token verifications: `issuer` (`unknown` when `iss` names none configured),
    /// `result` (`ok` or a refusal label).
    counter TOKEN_VERIFICATIONS = "spinegate_token_verifications_total";
    /// Signing-key fetches: `issuer`, `outcome` (`ok`, `failed`).
    counter JWKS_REFRESHES = "spinegate_jwks_refreshes_total";
    /// Unknown-`kid` refetches skipped because one happened within the refetch interval: `issuer`.
    counter JWKS_REFETCHES_SUPPRESSED = "spinegate_jwks_refetches_suppressed_total";
    /// Seconds since each issuer's signing keys were fetched: `issuer`.
    gauge JWKS_AGE = "spinegate_jwks_age_seconds";
    /// Back-channel logout requests: `result` (`ok` or why the logout token was refused).
    counter BACKCHANNEL_LOGOUTS = "spinegate_backchannel_logouts_total";
    /// Authorisation decisions: `route`, `decision` (`allow`/`deny`), `reason`.
    counter AUTHZ_DECISIONS = "spinegate_authz_decisions_total";
    /// Role directory lookups: `backend` (`file`/`ldap`), `result` (`hit`; `absent` for a user the
    /// file does not list; for LDAP `miss` when a search was made, `error`).
    counter DIRECTORY_LOOKUPS = "spinegate_role_directory_lookups_total";
    /// Role directory lookup time on a miss: `backend`.
    histogram DIRECTORY_LOOKUP_DURATION = "spinegate_role_directory_lookup_duration_seconds";
    /// Role directory file reloads: `result` (`ok`/`error`).
    counter DIRECTORY_RELOADS = "spinegate_role_directory_reloads_total";
    /// Users in the role directory file.
    gauge DIRECTORY_USERS = "spinegate_role_directory_users";
    /// Audit records written.
    counter AUDIT_RECORDS = "spinegate_audit_records_total";
    /// Audit records dropped because the queue was full.
    counter AUDIT_DROPPED = "spinegate_audit_records_dropped_total";
    /// Audit write failures.
    counter AUDIT_WRITE_ERRORS = "spinegate_audit_write_errors_total";
    /// Identity assertions signed: `route`.
    counter IDENTITY_ASSERTIONS = "spinegate_identity_assertions_total";
    /// Configuration reloads: `trigger` (`signal`, `file`, `api`), `result` (`ok`, `error`).
    counter CONFIG_RELOADS = "spinegate_config_reloads_total";
    /// When the configuration last loaded successfully (start or reload), Unix seconds.
    gauge CONFIG_LAST_RELOAD_SUCCESS = "spinegate_config_last_reload_success_timestamp_seconds";
    /// Whether the last reload attempt failed (1) — the previous configuration is still serving.
    gauge CONFIG_LAST_RELOAD_FAILED = "spinegate_config_last_reload_failed";
    /// Time left on each client certificate first seen (verified on a chain-cache miss), in seconds;
    /// buckets at 7, 14, 30, 60, 90, 180, 365 and 730 days show who is inside the renewal window.
    histogram CLIENT_CERT_REMAINING = "spinegate_client_certificate_remaining_seconds";
    /// Whether the gateway is ready (1) or not (0): started, not draining, trust and CRLs fresh.
    gauge READY = "spinegate_ready";
    /// Build information: `version`.
    gauge BUILD_INFO = "spinegate_build_info";
}

/// Histogram buckets for request-scale durations (seconds).
const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Buckets for certificate lifetimes left: 0, 7, 14, 30, 60, 90, 180, 365, 730 days.
const REMAINING_BUCKETS: &[f64] =
    &[0.0, 604_800.0, 1_209_600.0, 2_592_000.0, 5_184_000.0, 7_776_000.0, 15_552_000.0, 31_536_000.0, 63_072_000.0];

/// Series that exist from the start, so dashboards and alerts see zero rather than no data for
/// events that may not have happened yet.
fn initialise() {
    for trigger in ["signal", "file", "api"] {
        for result in ["ok", "error"] {
            metrics::counter!(CONFIG_RELOADS, "trigger" => trigger, "result" => result).increment(0);
        }
    }
    metrics::counter!(AUDIT_RECORDS).increment(0);
    metrics::counter!(AUDIT_DROPPED).increment(0);
    metrics::counter!(AUDIT_WRITE_ERRORS).increment(0);
    metrics::gauge!(REQUESTS_IN_FLIGHT).increment(0.0);
    metrics::gauge!(CONFIG_LAST_RELOAD_FAILED).set(0.0);
    for source in ["ocsp", "crl"] {
        metrics::counter!(REVOCATION_STALE_SERVES, "source" => source).increment(0);
    }
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds histogram samples into buckets every [`UPKEEP_INTERVAL`], on a thread of its own. The
/// recorder keeps every sample until then: without upkeep a gateway nobody scrapes grows by
/// about 8 bytes per request per histogram, and its first scrape pays for all of them at once.
fn upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new().name("spinegate-metrics".into()).spawn(move || {
        loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        }
    });
    if let Err(e) = started {
        tracing::error!(error = %e, "metrics upkeep thread not started: histograms fold only when scraped");
    }
}

/// Installs the process-wide Prometheus recorder once and returns its handle. Several gateways in
/// one process (tests) share it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
                .expect("bucket list is non-empty")
                .set_buckets_for_metric(Matcher::Full(CLIENT_CERT_REMAINING.into()), REMAINING_BUCKETS)
                .expect("bucket list is non-empty")
                .install_recorder()
                .unwrap_or_else(|_| {
                    // Another recorder is already installed (an embedding program's): keep
                    // rendering our own view so /metrics still answers.
                    PrometheusBuilder::new().build_recorder().handle()
                });
            describe();
            initialise();
            upkeep(handle.clone());
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// Handles of one labelled metric by a small key of the caller's, for series touched on every
/// request: the `metrics` macros build the crate's `Key` — an allocation per owned label value —
/// and look it up in the registry each time; a hit here is one read lock and a clone of the
/// handle. Series are never removed, as in the registry itself, and labels stay bounded (routes,
/// upstreams, methods, statuses, reasons).
pub(crate) struct Handles<K, H> {
    map: LazyLock<RwLock<HashMap<K, H>>>,
}

impl<K: Eq + Hash, H: Clone> Handles<K, H> {
    /// An empty cache, usable as a `static`.
    pub(crate) const fn new() -> Self {
        Self { map: LazyLock::new(|| RwLock::new(HashMap::new())) }
    }

    /// The handle for `key`, registered by `make` the first time. Before [`install`] there is
    /// no recorder, and the no-op handles `make` gives then are not kept.
    pub(crate) fn get(&self, key: K, make: impl FnOnce(&K) -> H) -> H {
        if HANDLE.get().is_none() {
            return make(&key);
        }
        if let Some(handle) = self.map.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return handle.clone();
        }
        self.map.write().unwrap_or_else(PoisonError::into_inner).entry(key).or_insert_with_key(make).clone()
    }
}

/// The series every proxied or refused request touches, with their handles cached.
pub(crate) mod request {
    use super::*;

    /// `(route, method, status, reason, protocol)`.
    type RequestKey = (Option<Arc<str>>, &'static str, u16, &'static str, &'static str);

    static REQUESTS_BY: Handles<RequestKey, Counter> = Handles::new();
    static DURATION_BY_ROUTE: Handles<Option<Arc<str>>, Histogram> = Handles::new();
    static UPSTREAM_DURATION_BY: Handles<Arc<str>, Histogram> = Handles::new();
    static DECISIONS_BY: Handles<(Option<Arc<str>>, bool, &'static str), Counter> = Handles::new();
    static IN_FLIGHT: Handles<(), Gauge> = Handles::new();

    fn route_label(route: &Option<Arc<str>>) -> String {
        route.as_deref().unwrap_or("none").to_owned()
    }

    /// `spinegate_requests_total` and `spinegate_request_duration_seconds` for one request.
    pub(crate) fn answered(
        route: &Option<Arc<str>>,
        method: &'static str,
        status: http::StatusCode,
        reason: &'static str,
        protocol: &'static str,
        seconds: f64,
    ) {
        REQUESTS_BY
            .get((route.clone(), method, status.as_u16(), reason, protocol), |(route, method, _, reason, protocol)| {
                metrics::counter!(
                    REQUESTS,
                    "route" => route_label(route),
                    "method" => *method,
                    "status" => status.as_str().to_owned(),
                    "reason" => *reason,
                    "protocol" => *protocol,
                )
            })
            .increment(1);
        DURATION_BY_ROUTE
            .get(route.clone(), |route| metrics::histogram!(REQUEST_DURATION, "route" => route_label(route)))
            .record(seconds);
    }

    /// `spinegate_upstream_duration_seconds` for one exchange with `upstream`.
    pub(crate) fn upstream_exchange(upstream: &Arc<str>, seconds: f64) {
        UPSTREAM_DURATION_BY
            .get(Arc::clone(upstream), |u| metrics::histogram!(UPSTREAM_DURATION, "upstream" => u.to_string()))
            .record(seconds);
    }

    /// `spinegate_authz_decisions_total` for one access decision.
    pub(crate) fn decided(route: &Option<Arc<str>>, allowed: bool, reason: &'static str) {
        DECISIONS_BY
            .get((route.clone(), allowed, reason), |(route, allowed, reason)| {
                let decision = if *allowed { "allow" } else { "deny" };
                metrics::counter!(AUTHZ_DECISIONS, "route" => route_label(route), "decision" => decision, "reason" => *reason)
            })
            .increment(1);
    }

    /// `spinegate_requests_in_flight`, moved by `delta`.
    pub(crate) fn in_flight(delta: f64) {
        IN_FLIGHT.get((), |_| metrics::gauge!(REQUESTS_IN_FLIGHT)).increment(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without upkeep, histogram samples pile up until a scrape (memory that grows with every
    /// request on a gateway nobody scrapes).
    #[cfg(target_os = "linux")]
    #[test]
    fn installing_the_recorder_starts_histogram_upkeep() {
        install();
        let threads = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // A new thread names itself once it runs: until then it shows its parent's name.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !threads().iter().any(|t| t == "spinegate-metri") && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(threads().iter().any(|t| t == "spinegate-metri"), "threads: {:?}", threads());
    }

    #[test]
    fn cached_handles_are_the_registered_series() {
        let handle = install();
        let route: Option<Arc<str>> = Some("handles-test".into());
        for _ in 0..3 {
            request::answered(&route, "GET", http::StatusCode::OK, "ok", "h2", 0.001);
        }
        let text = handle.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("spinegate_requests_total{") && l.contains("route=\"handles-test\""))
            .unwrap_or_else(|| panic!("no series in:\n{text}"));
        assert!(line.ends_with(" 3"), "{line}");
        assert!(line.contains("status=\"200\"") && line.contains("protocol=\"h2\""), "{line}");
    }
}
