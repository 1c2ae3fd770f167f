//! The file as written: serde structs with `deny_unknown_fields`, defaults filled in, nothing
//! resolved yet. [`crate::model`] is what the rest of spinegate reads.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::model::{
    CertificateProblems, ClientCertificatePolicy, CrossSite, EkuPolicy, HostHeader, LogFormat, PathParameters,
    RevocationDepth, SessionResumption, TokenBinding, UpstreamProtocol, UserIdField,
};

/// A duration written as `"30s"`, `"5m"`, `"90d"` (humantime syntax).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(HumanDuration).map_err(|e| {
            serde::de::Error::custom(format!("invalid duration {text:?}: {e} (write e.g. \"30s\", \"5m\", \"90d\")"))
        })
    }
}

fn secs(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(n))
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[admin]`.
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[[listener]]`.
    #[serde(default)]
    pub listener: Vec<Spanned<RawListener>>,
    /// `[client_auth]`.
    #[serde(default)]
    pub client_auth: RawClientAuth,
    /// `[chain_cache]`.
    #[serde(default)]
    pub chain_cache: RawChainCache,
    /// `[limits]`.
    #[serde(default)]
    pub limits: RawLimits,
    /// `[[upstream]]`.
    #[serde(default)]
    pub upstream: Vec<Spanned<RawUpstream>>,
    /// `[[route]]`.
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
    /// `[request_headers]`.
    #[serde(default)]
    pub request_headers: RawRequestHeaders,
    /// `[revocation]`.
    #[serde(default)]
    pub revocation: RawRevocation,
    /// `[tokens]`.
    #[serde(default)]
    pub tokens: RawTokens,
    /// `[[token_issuer]]`.
    #[serde(default)]
    pub token_issuer: Vec<Spanned<RawTokenIssuer>>,
    /// `[log]`.
    #[serde(default)]
    pub log: RawLog,
    /// `[authorization]`.
    #[serde(default)]
    pub authorization: crate::authz::RawAuthorization,
    /// `[role_directory]`.
    #[serde(default)]
    pub role_directory: crate::authz::RawRoleDirectory,
    /// `[audit]`.
    #[serde(default)]
    pub audit: crate::authz::RawAudit,
    /// `[identity_assertion]`.
    pub identity_assertion: Option<crate::authz::RawIdentityAssertion>,
    /// `[guidance]`.
    #[serde(default)]
    pub guidance: crate::guidance::RawGuidance,
}

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin listener (`/healthz`, `/readyz`, `/metrics`).
    #[serde(default = "default_admin_listen")]
    pub listen: Spanned<String>,
    /// Most concurrent admin connections; more are closed at once.
    #[serde(default = "default_admin_connections")]
    pub max_connections: Spanned<u64>,
    /// Time allowed for an admin request head (and idle keep-alive).
    #[serde(default = "default_admin_header_timeout")]
    pub header_read_timeout: HumanDuration,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            max_connections: default_admin_connections(),
            header_read_timeout: default_admin_header_timeout(),
        }
    }
}

fn default_admin_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:9901".to_owned())
}
fn default_admin_connections() -> Spanned<u64> {
    Spanned::new(0..0, 64)
}
fn default_admin_header_timeout() -> HumanDuration {
    secs(10)
}

/// `[[listener]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// Name used in logs and metrics.
    pub name: Spanned<String>,
    /// Socket address to bind.
    pub listen: Spanned<String>,
    /// `"require"` or `"request"`.
    #[serde(default = "default_client_certificate")]
    pub client_certificate: ClientCertificatePolicy,
    /// Subset of `"1.3"`, `"1.2"`.
    #[serde(default = "default_tls_versions")]
    pub tls_versions: Spanned<Vec<String>>,
    /// Subset of `"h2"`, `"http/1.1"`, in preference order.
    #[serde(default = "default_alpn")]
    pub alpn: Spanned<Vec<String>>,
    /// `"tickets"`, `"session_ids"` or `"off"`.
    #[serde(default = "default_session_resumption")]
    pub session_resumption: SessionResumption,
    /// `"explain"` or `"alert"`: what a certificate that chains to a trusted CA but is expired,
    /// not yet valid or revoked gets.
    #[serde(default = "default_certificate_problems")]
    pub certificate_problems: CertificateProblems,
    /// `[[listener.certificate]]`.
    #[serde(default)]
    pub certificate: Vec<Spanned<RawServerCertificate>>,
    /// `[listener.http3]`: also serve HTTP/3 over QUIC on the same port number (UDP).
    pub http3: Option<Spanned<RawHttp3>>,
}

/// `[listener.http3]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp3 {
    /// Most concurrent QUIC connections; more are refused (the client falls back to TCP).
    #[serde(default = "default_max_connections")]
    pub max_connections: Spanned<u64>,
    /// Most concurrent requests (bidirectional streams) per connection.
    #[serde(default = "default_h3_streams")]
    pub max_concurrent_streams: Spanned<u64>,
    /// `SO_RCVBUF` of the UDP socket, in bytes.
    #[serde(default = "default_udp_buffer")]
    pub udp_receive_buffer: Spanned<u64>,
    /// `SO_SNDBUF` of the UDP socket, in bytes.
    #[serde(default = "default_udp_buffer")]
    pub udp_send_buffer: Spanned<u64>,
    /// A connection that sends nothing for this long is gone (QUIC's max_idle_timeout).
    #[serde(default = "default_transport_idle_timeout")]
    pub transport_idle_timeout: Spanned<HumanDuration>,
    /// Advertise HTTP/3 with `Alt-Svc` on this listener's TCP responses.
    #[serde(default = "default_true")]
    pub alt_svc: bool,
    /// `ma` of the `Alt-Svc` advertisement.
    #[serde(default = "default_alt_svc_max_age")]
    pub alt_svc_max_age: HumanDuration,
}

fn default_h3_streams() -> Spanned<u64> {
    Spanned::new(0..0, 100)
}
fn default_udp_buffer() -> Spanned<u64> {
    Spanned::new(0..0, 4 * 1024 * 1024)
}
fn default_transport_idle_timeout() -> Spanned<HumanDuration> {
    Spanned::new(0..0, secs(30))
}
fn default_alt_svc_max_age() -> HumanDuration {
    secs(86_400)
}

fn default_client_certificate() -> ClientCertificatePolicy {
    ClientCertificatePolicy::Require
}
fn default_tls_versions() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["1.3".into(), "1.2".into()])
}
fn default_alpn() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["h2".into(), "http/1.1".into()])
}
fn default_session_resumption() -> SessionResumption {
    SessionResumption::Tickets
}
fn default_certificate_problems() -> CertificateProblems {
    CertificateProblems::Explain
}

/// `[[listener.certificate]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerCertificate {
    /// PEM chain, leaf first.
    pub cert: Spanned<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Spanned<String>,
    /// SNI names this certificate answers; empty makes it the default.
    #[serde(default)]
    pub server_names: Vec<Spanned<String>>,
}

/// `[client_auth]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientAuth {
    /// PEM files of trusted root certificates.
    #[serde(default)]
    pub trust_anchors: Vec<Spanned<String>>,
    /// PEM files of intermediate CA certificates to build paths with, besides those the client sends.
    #[serde(default)]
    pub intermediates: Vec<Spanned<String>>,
    /// Most certificates in a path, counting leaf and trust anchor.
    #[serde(default = "default_max_chain_length")]
    pub max_chain_length: Spanned<u64>,
    /// Most bytes the client may present in its certificate chain.
    #[serde(default = "default_max_chain_bytes")]
    pub max_chain_bytes: Spanned<u64>,
    /// `"require"` or `"require_if_present"`.
    #[serde(default = "default_client_auth_eku")]
    pub client_auth_eku: EkuPolicy,
    /// `"leaf"` or `"chain"`: which certificates of the path are checked for revocation.
    #[serde(default = "default_revocation_depth")]
    pub revocation_depth: RevocationDepth,
    /// How long before notAfter users are warned.
    #[serde(default = "default_expiry_warning")]
    pub expiry_warning: HumanDuration,
    /// The identity rule for issuers without their own.
    #[serde(default)]
    pub identity: RawIdentityRule,
    /// The revocation policy for issuers without their own.
    #[serde(default)]
    pub revocation: RawRevocationPolicy,
    /// `[[client_auth.issuer]]`.
    #[serde(default)]
    pub issuer: Vec<Spanned<RawIssuer>>,
}

impl Default for RawClientAuth {
    fn default() -> Self {
        Self {
            trust_anchors: Vec::new(),
            intermediates: Vec::new(),
            max_chain_length: default_max_chain_length(),
            max_chain_bytes: default_max_chain_bytes(),
            client_auth_eku: default_client_auth_eku(),
            revocation_depth: default_revocation_depth(),
            expiry_warning: default_expiry_warning(),
            identity: RawIdentityRule::default(),
            revocation: RawRevocationPolicy::default(),
            issuer: Vec::new(),
        }
    }
}

fn default_max_chain_length() -> Spanned<u64> {
    Spanned::new(0..0, 4)
}
fn default_max_chain_bytes() -> Spanned<u64> {
    Spanned::new(0..0, 16 * 1024)
}
fn default_revocation_depth() -> RevocationDepth {
    RevocationDepth::Leaf
}
fn default_client_auth_eku() -> EkuPolicy {
    EkuPolicy::Require
}
fn default_expiry_warning() -> HumanDuration {
    secs(90 * 86_400)
}

/// How the user id is read from a certificate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityRule {
    /// `"subject_cn_prefix"`, `"subject_serial_number"` or `"subject_uid"`.
    #[serde(default = "default_user_id")]
    pub user_id: UserIdField,
    /// Separator after the user id in the CN (for `subject_cn_prefix`).
    #[serde(default = "default_separator")]
    pub separator: Spanned<String>,
    /// The subject must contain `OU=<this>`; empty string: no requirement.
    #[serde(default = "default_ou")]
    pub subject_ou: String,
    /// The subject must contain `O=<this>`; empty string: no requirement.
    #[serde(default = "default_o")]
    pub subject_o: String,
}

impl Default for RawIdentityRule {
    fn default() -> Self {
        Self {
            user_id: default_user_id(),
            separator: default_separator(),
            subject_ou: default_ou(),
            subject_o: default_o(),
        }
    }
}

fn default_user_id() -> UserIdField {
    UserIdField::SubjectCnPrefix
}
fn default_separator() -> Spanned<String> {
    Spanned::new(0..0, "_".to_owned())
}
fn default_ou() -> String {
    "People".to_owned()
}
fn default_o() -> String {
    "nhs".to_owned()
}

/// `[[client_auth.issuer]]`: settings for the certificates one CA issues.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// Name in logs and metrics.
    pub name: Spanned<String>,
    /// PEM file with the issuing CA's certificate.
    pub certificate: Spanned<String>,
    /// Identity rule for this CA's certificates; the `[client_auth.identity]` rule when absent.
    pub identity: Option<RawIdentityRule>,
    /// Revocation policy for this CA's certificates; unset keys come from
    /// `[client_auth.revocation]`.
    pub revocation: Option<RawRevocationPolicy>,
}

/// `[client_auth.revocation]` and `[client_auth.issuer.revocation]`. Every key is optional: an
/// issuer's unset keys come from `[client_auth.revocation]`, whose unset keys have the defaults.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRevocationPolicy {
    /// Subset of `"ocsp"`, `"crl"`, in the order asked; `[]` turns checking off for the CA.
    pub sources: Option<Spanned<Vec<Spanned<String>>>>,
    /// `"refuse"` or `{ serve_stale_for = "4h" }`.
    pub unknown: Option<RawUnknown>,
    /// OCSP responder URL overriding the certificates' AIA.
    pub ocsp_responder: Option<Spanned<String>>,
    /// `"send"` or `"omit"`.
    pub ocsp_nonce: Option<RawNonce>,
    /// `"sha256"` or `"sha1"`.
    pub ocsp_hash: Option<RawHash>,
    /// `"auto"`, `"get"` or `"post"`.
    pub ocsp_method: Option<RawMethod>,
    /// CRL files (issuer entries only).
    pub crl_files: Option<Spanned<Vec<Spanned<String>>>>,
    /// CRL URLs besides the certificates' distribution points (issuer entries only).
    pub crl_urls: Option<Spanned<Vec<Spanned<String>>>>,
}

/// What `Unknown` means.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawUnknown {
    /// Refuse (503).
    Refuse,
    /// Serve the last good answer this long after it went stale.
    ServeStaleFor(HumanDuration),
}

/// OCSP nonce policy.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawNonce {
    /// Send and check.
    Send,
    /// Send none.
    Omit,
}

/// OCSP CertID hash.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawHash {
    /// SHA-256.
    Sha256,
    /// SHA-1.
    Sha1,
}

/// OCSP HTTP method.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum RawMethod {
    /// GET when short enough, else POST.
    Auto,
    /// GET.
    Get,
    /// POST.
    Post,
}

/// `[revocation]`: caches, fetches and the deny list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevocation {
    /// Most certificates with a cached OCSP answer.
    #[serde(default = "default_revocation_entries")]
    pub max_entries: Spanned<u64>,
    /// Longest an OCSP answer is used after fetching (and the life of answers without
    /// nextUpdate).
    #[serde(default = "default_revocation_max_age")]
    pub max_age: HumanDuration,
    /// Refresh recently used answers this long before they end.
    #[serde(default = "default_refresh_before")]
    pub refresh_before: HumanDuration,
    /// "Recently used".
    #[serde(default = "default_recently_seen")]
    pub recently_seen: HumanDuration,
    /// Deadline of one OCSP fetch (CRL fetches get at least 30 s).
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout: HumanDuration,
    /// Largest OCSP response accepted, bytes.
    #[serde(default = "default_ocsp_bytes")]
    pub max_ocsp_response_bytes: u64,
    /// Largest CRL accepted, bytes.
    #[serde(default = "default_crl_bytes")]
    pub max_crl_bytes: u64,
    /// Tolerated clock difference with responders and CRL issuers.
    #[serde(default = "default_skew")]
    pub clock_skew: HumanDuration,
    /// After a failed fetch, do not ask the same source again for this long.
    #[serde(default = "default_retry_after_failure")]
    pub retry_after_failure: HumanDuration,
    /// Fetch a CRL this long before its nextUpdate.
    #[serde(default = "default_crl_refresh_before")]
    pub crl_refresh_before: HumanDuration,
    /// Emergency deny-list file, hot-reloaded.
    pub deny_list: Option<Spanned<String>>,
    /// File holding the bearer token for the admin deny-list endpoint; the endpoint is off
    /// without it.
    pub admin_token_file: Option<Spanned<String>>,
}

impl Default for RawRevocation {
    fn default() -> Self {
        Self {
            max_entries: default_revocation_entries(),
            max_age: default_revocation_max_age(),
            refresh_before: default_refresh_before(),
            recently_seen: default_recently_seen(),
            fetch_timeout: default_fetch_timeout(),
            max_ocsp_response_bytes: default_ocsp_bytes(),
            max_crl_bytes: default_crl_bytes(),
            clock_skew: default_skew(),
            retry_after_failure: default_retry_after_failure(),
            crl_refresh_before: default_crl_refresh_before(),
            deny_list: None,
            admin_token_file: None,
        }
    }
}

fn default_revocation_entries() -> Spanned<u64> {
    Spanned::new(0..0, 200_000)
}
fn default_revocation_max_age() -> HumanDuration {
    secs(3600)
}
fn default_refresh_before() -> HumanDuration {
    secs(300)
}
fn default_recently_seen() -> HumanDuration {
    secs(3600)
}
fn default_fetch_timeout() -> HumanDuration {
    secs(5)
}
fn default_ocsp_bytes() -> u64 {
    64 * 1024
}
fn default_crl_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_skew() -> HumanDuration {
    secs(300)
}
fn default_retry_after_failure() -> HumanDuration {
    secs(10)
}
fn default_crl_refresh_before() -> HumanDuration {
    secs(600)
}

/// `[chain_cache]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChainCache {
    /// Most verified chains remembered.
    #[serde(default = "default_cache_entries")]
    pub max_entries: Spanned<u64>,
    /// Longest a verification is reused.
    #[serde(default = "default_cache_ttl")]
    pub max_ttl: HumanDuration,
}

impl Default for RawChainCache {
    fn default() -> Self {
        Self { max_entries: default_cache_entries(), max_ttl: default_cache_ttl() }
    }
}

fn default_cache_entries() -> Spanned<u64> {
    Spanned::new(0..0, 100_000)
}
fn default_cache_ttl() -> HumanDuration {
    secs(3600)
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Most bytes of request headers (431 beyond).
    #[serde(default = "default_header_bytes")]
    pub max_request_header_bytes: Spanned<u64>,
    /// Most bytes of request body (413 beyond).
    #[serde(default = "default_body_bytes")]
    pub max_request_body_bytes: u64,
    /// Time allowed for a request head: from the handshake to the first request on any
    /// protocol (an HTTP/2 preface included), and on HTTP/1.1 from waiting for each request
    /// until its head is complete (so also the HTTP/1.1 keep-alive idle limit).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    /// An HTTP/2 or HTTP/3 connection with no request in flight is closed after this long.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Longest wait between two reads of a request body (nginx `client_body_timeout`); 408
    /// beyond.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout: HumanDuration,
    /// Least average request-body rate, bytes per second, once `body_read_timeout` has passed
    /// since the body began (Apache `mod_reqtimeout` `MinRate`); 0 for none; 408 below.
    #[serde(default = "default_min_body_rate")]
    pub min_body_rate: u64,
    /// Longest a write to the client may make no progress (nginx `send_timeout`) before the
    /// connection is closed.
    #[serde(default = "default_send_timeout")]
    pub send_timeout: HumanDuration,
    /// Most concurrent requests (streams) per HTTP/2 connection.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: Spanned<u64>,
    /// Time allowed for the TLS handshake.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: HumanDuration,
    /// Most concurrent connections per listener; more wait in the kernel's accept queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: Spanned<u64>,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_request_header_bytes: default_header_bytes(),
            max_request_body_bytes: default_body_bytes(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
            body_read_timeout: default_body_read_timeout(),
            min_body_rate: default_min_body_rate(),
            send_timeout: default_send_timeout(),
            max_concurrent_streams: default_max_concurrent_streams(),
            handshake_timeout: default_handshake_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_header_bytes() -> Spanned<u64> {
    Spanned::new(0..0, 32 * 1024)
}
fn default_body_bytes() -> u64 {
    10 * 1024 * 1024
}
fn default_header_read_timeout() -> HumanDuration {
    secs(30)
}
fn default_idle_timeout() -> HumanDuration {
    secs(300)
}
fn default_body_read_timeout() -> HumanDuration {
    secs(30)
}
fn default_min_body_rate() -> u64 {
    500
}
fn default_send_timeout() -> HumanDuration {
    secs(30)
}
fn default_max_concurrent_streams() -> Spanned<u64> {
    Spanned::new(0..0, 100)
}
fn default_handshake_timeout() -> HumanDuration {
    secs(10)
}
fn default_max_connections() -> Spanned<u64> {
    Spanned::new(0..0, 10_000)
}

/// `[[upstream]]`: one named cluster of patient-data service endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Name routes refer to.
    pub name: Spanned<String>,
    /// `http://host:port` or `https://host:port` URLs; requests are spread round-robin.
    pub endpoints: Spanned<Vec<Spanned<String>>>,
    /// `"http1"`, `"http2"` or `"negotiate"` (ALPN; HTTP/1.1 on plain connections).
    #[serde(default = "default_protocol")]
    pub protocol: UpstreamProtocol,
    /// Time allowed to open a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Time allowed from sending the request to receiving response headers.
    #[serde(default = "default_response_timeout")]
    pub response_timeout: HumanDuration,
    /// Pooled idle connections are closed after this long.
    #[serde(default = "default_pool_idle")]
    pub pool_idle_timeout: HumanDuration,
    /// Most idle pooled connections per endpoint.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_endpoint: u64,
    /// `"upstream"` (Host is the endpoint's authority) or `"preserve"` (the client's Host).
    #[serde(default = "default_host_header")]
    pub host_header: HostHeader,
    /// `[upstream.tls]` for `https://` endpoints.
    pub tls: Option<RawUpstreamTls>,
}

fn default_protocol() -> UpstreamProtocol {
    UpstreamProtocol::Http1
}
fn default_connect_timeout() -> HumanDuration {
    secs(2)
}
fn default_response_timeout() -> HumanDuration {
    secs(30)
}
fn default_pool_idle() -> HumanDuration {
    secs(90)
}
fn default_pool_max_idle() -> u64 {
    64
}
fn default_host_header() -> HostHeader {
    HostHeader::Upstream
}

/// `[upstream.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// PEM files of CAs that may sign the upstream's server certificate.
    pub ca: Spanned<Vec<Spanned<String>>>,
    /// The gateway's own client certificate chain (PEM) for mutual TLS.
    pub client_certificate: Option<Spanned<String>>,
    /// Its private key.
    pub client_key: Option<Spanned<String>>,
    /// Name to send in SNI and verify, instead of the endpoint's host.
    pub server_name: Option<Spanned<String>>,
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Name in logs and metrics.
    pub name: Spanned<String>,
    /// Host (without port) this route answers; any host when absent.
    pub host: Option<Spanned<String>>,
    /// Path prefix, matched on whole segments.
    pub path_prefix: Spanned<String>,
    /// Name of the `[[upstream]]` to forward to.
    pub upstream: Spanned<String>,
    /// `"if_present"` (default) or `"required"`: whether tokens must be certificate-bound.
    #[serde(default = "default_token_binding")]
    pub token_binding: TokenBinding,
    /// The path segment (1-based: `/Organization/A81001/…` has the ODS code in segment 2) that
    /// names the organisation a request acts for.
    pub organisation_segment: Option<Spanned<u64>>,
    /// Send the upstream a signed identity assertion.
    #[serde(default)]
    pub identity_assertion: bool,
    /// `"refuse"` (default) or `"allow"`: whether `;` path parameters may reach the route.
    #[serde(default = "default_path_parameters")]
    pub path_parameters: PathParameters,
    /// `"refuse"` (default) or `"allow"`: unsafe requests a card holder's browser sends from
    /// another site.
    #[serde(default = "default_cross_site")]
    pub cross_site_requests: CrossSite,
    /// `[[route.rule]]`: who may do what, first rule covering the method wins.
    #[serde(default)]
    pub rule: Vec<Spanned<crate::authz::RawRule>>,
}

fn default_token_binding() -> TokenBinding {
    TokenBinding::IfPresent
}
fn default_path_parameters() -> PathParameters {
    PathParameters::Refuse
}
fn default_cross_site() -> CrossSite {
    CrossSite::Refuse
}

/// `[request_headers]`: what clients may not send to upstreams, beyond the built-in contract.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequestHeaders {
    /// Header names removed from every request before it is forwarded (compared in lower case
    /// with `_` read as `-`); a trailing `*` removes every name with that prefix.
    #[serde(default)]
    pub remove: Vec<Spanned<String>>,
}

/// `[tokens]`: bearer-token handling common to every issuer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    /// Most verified tokens remembered.
    #[serde(default = "default_token_cache")]
    pub cache_entries: u64,
    /// Largest token accepted, bytes (checked before decoding).
    #[serde(default = "default_token_bytes")]
    pub max_token_bytes: Spanned<u64>,
    /// Path of the OpenID Connect back-channel logout endpoint on the client listeners.
    #[serde(default = "default_logout_path")]
    pub backchannel_logout_path: Spanned<String>,
}

impl Default for RawTokens {
    fn default() -> Self {
        Self {
            cache_entries: default_token_cache(),
            max_token_bytes: default_token_bytes(),
            backchannel_logout_path: default_logout_path(),
        }
    }
}

fn default_token_cache() -> u64 {
    100_000
}
fn default_token_bytes() -> Spanned<u64> {
    Spanned::new(0..0, 16 * 1024)
}
fn default_logout_path() -> Spanned<String> {
    Spanned::new(0..0, "/.spinegate/backchannel-logout".into())
}

/// `[[token_issuer]]`: an OpenID provider whose tokens are accepted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenIssuer {
    /// Name in logs and metrics.
    pub name: Spanned<String>,
    /// The exact `iss` value.
    pub issuer: Spanned<String>,
    /// Where the signing keys are (JWK Set).
    pub jwks_url: Option<Spanned<String>>,
    /// OpenID discovery document naming `jwks_uri` (instead of `jwks_url`).
    pub discovery_url: Option<Spanned<String>>,
    /// Accepted `aud` values: a token's `aud` must hold one (`azp` is not an audience).
    pub audiences: Spanned<Vec<String>>,
    /// Accepted algorithms.
    #[serde(default = "default_algorithms")]
    pub algorithms: Spanned<Vec<Spanned<String>>>,
    /// Tolerated clock difference.
    #[serde(default = "default_token_skew")]
    pub clock_skew: HumanDuration,
    /// Oldest acceptable `iat`.
    #[serde(default = "default_token_age")]
    pub max_token_age: HumanDuration,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// How long fetched keys are used before refreshing.
    #[serde(default = "default_jwks_ttl")]
    pub jwks_ttl: HumanDuration,
    /// How long the last good keys serve while the endpoint fails.
    #[serde(default = "default_jwks_staleness")]
    pub jwks_max_staleness: HumanDuration,
    /// Least time between refetches triggered by unknown `kid`s.
    #[serde(default = "default_jwks_refetch")]
    pub jwks_refetch_interval: HumanDuration,
    /// PEM files of CAs for an `https` JWKS or discovery URL.
    #[serde(default)]
    pub jwks_ca: Vec<Spanned<String>>,
}

fn default_algorithms() -> Spanned<Vec<Spanned<String>>> {
    Spanned::new(0..0, vec![Spanned::new(0..0, "RS256".into()), Spanned::new(0..0, "RS512".into())])
}
fn default_token_skew() -> HumanDuration {
    secs(60)
}
fn default_token_age() -> HumanDuration {
    secs(12 * 3600)
}
fn default_jwks_ttl() -> HumanDuration {
    secs(600)
}
fn default_jwks_staleness() -> HumanDuration {
    secs(24 * 3600)
}
fn default_jwks_refetch() -> HumanDuration {
    secs(30)
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `tracing` filter directive; `RUST_LOG` overrides it.
    #[serde(default = "default_level")]
    pub level: String,
    /// `"json"` or `"text"`.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
}

impl Default for RawLog {
    fn default() -> Self {
        Self { level: default_level(), format: default_log_format() }
    }
}

fn default_level() -> String {
    "info".to_owned()
}
fn default_log_format() -> LogFormat {
    LogFormat::Json
}

fn default_true() -> bool {
    true
}
