//! The validated configuration: what the gateway reads. Every value here has been checked; paths
//! are absolute (or relative to the working directory when the text had no file).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use spinegate_cert_cache::Options as ChainCacheOptions;
pub use spinegate_revocation::{
    NoncePolicy, OcspMethod, OcspSettings, Options as RevocationOptions, Policy as RevocationPolicy, Source,
    UnknownStatus, ocsp::CertIdHash,
};
pub use spinegate_token::jose::Alg as TokenAlgorithm;
pub use spinegate_token::{IssuerOptions as TokenIssuerOptions, JwksOptions, KeySource, Options as TokenOptions};

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The admin listener.
    pub admin: Admin,
    /// Client-facing listeners (at least one).
    pub listeners: Vec<Listener>,
    /// Client certificate validation.
    pub client_auth: ClientAuth,
    /// The verified-chain cache.
    pub chain_cache: ChainCacheOptions,
    /// Request and connection limits.
    pub limits: Limits,
    /// Revocation caches, fetches and the deny list.
    pub revocation: Revocation,
    /// Bearer-token settings common to every issuer.
    pub tokens: Tokens,
    /// Accepted token issuers.
    pub token_issuers: Vec<TokenIssuer>,
    /// Upstream clusters, referred to by index from routes.
    pub upstreams: Vec<Upstream>,
    /// Routes in file order; the most specific match wins.
    pub routes: Vec<Route>,
    /// Headers removed from client requests beyond the built-in contract.
    pub request_headers: RequestHeaders,
    /// Logging.
    pub log: Log,
    /// Activity catalogue, baseline activities, organisation relations.
    pub authorization: crate::authz::Authorization,
    /// Where smartcard users' role profiles come from.
    pub role_directory: crate::authz::RoleDirectory,
    /// The audit log.
    pub audit: crate::authz::Audit,
    /// The signed identity assertion, when configured.
    pub identity_assertion: Option<crate::authz::IdentityAssertion>,
    /// What refusal pages and the identity page tell people.
    pub guidance: crate::guidance::Guidance,
}

/// `[admin]`.
#[derive(Clone, Debug)]
pub struct Admin {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
    /// Most concurrent admin connections.
    pub max_connections: NonZeroUsize,
    /// Time allowed for an admin request head.
    pub header_read_timeout: Duration,
}

/// A client-facing TLS listener.
#[derive(Clone, Debug)]
pub struct Listener {
    /// Name in logs and metrics.
    pub name: String,
    /// Bound address.
    pub listen: SocketAddr,
    /// Whether a client certificate is required.
    pub client_certificate: ClientCertificatePolicy,
    /// Offered TLS versions (non-empty, no duplicates).
    pub tls_versions: Vec<TlsVersion>,
    /// Offered ALPN protocols in preference order (non-empty).
    pub alpn: Vec<Alpn>,
    /// Session resumption mode.
    pub session_resumption: SessionResumption,
    /// What a trusted but expired, not yet valid or revoked client certificate gets.
    pub certificate_problems: CertificateProblems,
    /// Server certificates; at most one is the default (no server names).
    pub certificates: Vec<ServerCertificate>,
    /// HTTP/3 over QUIC on the same port number (UDP), when configured.
    pub http3: Option<Http3>,
}

/// `[listener.http3]`: HTTP/3 beside the TCP listener, same certificates, same client-certificate
/// rules, same request pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http3 {
    /// Most concurrent QUIC connections.
    pub max_connections: NonZeroUsize,
    /// Most concurrent requests per connection.
    pub max_concurrent_streams: u32,
    /// `SO_RCVBUF` of the UDP socket, bytes.
    pub udp_receive_buffer: usize,
    /// `SO_SNDBUF` of the UDP socket, bytes.
    pub udp_send_buffer: usize,
    /// QUIC max_idle_timeout.
    pub transport_idle_timeout: Duration,
    /// Whether TCP responses carry `Alt-Svc`.
    pub alt_svc: bool,
    /// `Alt-Svc` max age.
    pub alt_svc_max_age: Duration,
}

/// Whether a listener insists on a client certificate.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertificatePolicy {
    /// Handshakes without a client certificate fail.
    Require,
    /// A certificate is asked for; requests without one get 401 `client_certificate_required`
    /// unless they authenticate otherwise.
    Request,
}

/// What a listener does with a client certificate that chains to a trusted CA but is expired,
/// not yet valid or revoked. Untrusted, malformed or wrongly signed certificates fail the
/// handshake either way.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CertificateProblems {
    /// Complete the handshake and refuse every request on the connection with a page or body
    /// that says what happened and what to do (never proxied).
    Explain,
    /// Fail the handshake with the matching TLS alert.
    Alert,
}

/// How TLS sessions are resumed.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionResumption {
    /// Stateless session tickets (TLS 1.3 and 1.2).
    Tickets,
    /// A server-side session cache.
    SessionIds,
    /// No resumption: every handshake is full.
    Off,
}

/// A TLS protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// An ALPN protocol the gateway speaks to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alpn {
    /// HTTP/2.
    H2,
    /// HTTP/1.1.
    Http11,
}

impl Alpn {
    /// The ALPN identifier.
    pub fn id(self) -> &'static [u8] {
        match self {
            Alpn::H2 => b"h2",
            Alpn::Http11 => b"http/1.1",
        }
    }
}

/// One server certificate of a listener.
#[derive(Clone, Debug)]
pub struct ServerCertificate {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// SNI names (lower case); empty for the default certificate.
    pub server_names: Vec<String>,
}

/// `[client_auth]`: how client certificates are validated and read.
#[derive(Clone, Debug)]
pub struct ClientAuth {
    /// PEM files of trust anchors. None: every client certificate is refused.
    pub trust_anchors: Vec<PathBuf>,
    /// PEM files of intermediates to build paths with.
    pub intermediates: Vec<PathBuf>,
    /// Most certificates in a path, leaf and anchor included (at least 2).
    pub max_chain_length: NonZeroUsize,
    /// Most bytes of certificates a client may present.
    pub max_chain_bytes: NonZeroUsize,
    /// EKU requirement on the leaf.
    pub client_auth_eku: EkuPolicy,
    /// Which certificates of the path are checked for revocation.
    pub revocation_depth: RevocationDepth,
    /// Warn users this long before their certificate ends.
    pub expiry_warning: Duration,
    /// Identity rule for certificates from CAs without their own.
    pub identity: IdentityRule,
    /// Revocation policy for certificates from CAs without their own.
    pub revocation: RevocationPolicy,
    /// Per-issuing-CA settings.
    pub issuers: Vec<Issuer>,
}

/// Extended key usage policy for client certificates.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EkuPolicy {
    /// The leaf must carry EKU clientAuth.
    Require,
    /// A leaf without an EKU extension is accepted; one with it must list clientAuth.
    RequireIfPresent,
}

/// Which certificates of a client's path are checked for revocation.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RevocationDepth {
    /// The client certificate only (as nginx's `ssl_ocsp leaf`).
    Leaf,
    /// The client certificate and every intermediate CA, each under its issuer's policy.
    Chain,
}

/// Which subject attribute carries the user id.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UserIdField {
    /// The CN up to the separator: `CN=<user id>_<Surname>_<Forename>`.
    SubjectCnPrefix,
    /// The subject serialNumber attribute (2.5.4.5).
    SubjectSerialNumber,
    /// The subject UID attribute (0.9.2342.19200300.100.1.1).
    SubjectUid,
}

/// Where the user id comes from, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserIdSource {
    /// The CN up to `separator`.
    SubjectCnPrefix {
        /// The separator (one character).
        separator: char,
    },
    /// The subject serialNumber attribute.
    SubjectSerialNumber,
    /// The subject UID attribute.
    SubjectUid,
}

/// How to read a user's identity from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRule {
    /// Where the 12-digit user id is.
    pub user_id: UserIdSource,
    /// The subject must contain this OU.
    pub require_ou: Option<String>,
    /// The subject must contain this O.
    pub require_o: Option<String>,
}

/// Settings for one issuing CA.
#[derive(Clone, Debug)]
pub struct Issuer {
    /// Name in logs and metrics.
    pub name: String,
    /// PEM file of the CA certificate (also used to build paths).
    pub certificate: PathBuf,
    /// How its certificates carry identity.
    pub identity: IdentityRule,
    /// How its certificates are checked for revocation.
    pub revocation: RevocationPolicy,
}

/// `[revocation]`.
#[derive(Clone, Debug)]
pub struct Revocation {
    /// Cache and fetch tuning.
    pub options: RevocationOptions,
    /// The emergency deny-list file.
    pub deny_list: Option<PathBuf>,
    /// The admin endpoint's bearer-token file.
    pub admin_token_file: Option<PathBuf>,
}

/// `[limits]`.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most bytes of request headers.
    pub max_request_header_bytes: NonZeroUsize,
    /// Most bytes of request body.
    pub max_request_body_bytes: u64,
    /// Time allowed for a request head, and for the first request after the handshake.
    pub header_read_timeout: Duration,
    /// Idle keep-alive connections are closed after this long.
    pub idle_timeout: Duration,
    /// Longest wait between two reads of a request body.
    pub body_read_timeout: Duration,
    /// Least average request-body rate in bytes per second (0: none), enforced once
    /// `body_read_timeout` has passed since the body began.
    pub min_body_rate: u64,
    /// Longest a write to the client may make no progress.
    pub send_timeout: Duration,
    /// Most concurrent requests per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Most concurrent connections per listener.
    pub max_connections: NonZeroUsize,
}

/// One upstream cluster.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Name routes refer to.
    pub name: String,
    /// Endpoints (non-empty); all share a scheme.
    pub endpoints: Vec<Endpoint>,
    /// HTTP version spoken.
    pub protocol: UpstreamProtocol,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for response headers.
    pub response_timeout: Duration,
    /// Idle pooled connections close after this long.
    pub pool_idle_timeout: Duration,
    /// Most idle pooled connections per endpoint.
    pub pool_max_idle_per_endpoint: usize,
    /// Host header sent upstream.
    pub host_header: HostHeader,
    /// TLS settings; present exactly when the endpoints are `https`.
    pub tls: Option<UpstreamTls>,
}

/// An upstream endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` or not.
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// `host:port` as used in a URI authority.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// HTTP version spoken to an upstream.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (prior knowledge on plain connections, ALPN h2 on TLS).
    Http2,
    /// ALPN on TLS; HTTP/1.1 on plain connections.
    Negotiate,
}

/// Which Host header the upstream sees.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HostHeader {
    /// The endpoint's own authority.
    Upstream,
    /// The client's Host, unchanged.
    Preserve,
}

/// TLS towards an upstream.
#[derive(Clone, Debug)]
pub struct UpstreamTls {
    /// PEM files of CAs for the upstream's certificate (non-empty).
    pub ca: Vec<PathBuf>,
    /// The gateway's client certificate chain and key, for mutual TLS.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Name to verify instead of the endpoint host.
    pub server_name: Option<String>,
}

/// A route: host and path prefix to upstream.
#[derive(Clone, Debug)]
pub struct Route {
    /// Name in logs and metrics.
    pub name: String,
    /// Lower-case host without port; any host when `None`.
    pub host: Option<String>,
    /// Path prefix starting with `/`, without trailing `/` (except the root prefix `/`).
    pub path_prefix: String,
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// Whether tokens must be certificate-bound on this route.
    pub token_binding: TokenBinding,
    /// The 1-based path segment naming the organisation acted for, if any.
    pub organisation_segment: Option<std::num::NonZeroUsize>,
    /// Whether the upstream receives a signed identity assertion.
    pub identity_assertion: bool,
    /// Whether `;` path parameters may reach the route.
    pub path_parameters: PathParameters,
    /// Whether a card holder's browser may send unsafe requests here from another site.
    pub cross_site: CrossSite,
    /// Rules in file order; the first covering the method applies; none → refused.
    pub rules: Vec<crate::authz::Rule>,
}

/// `[request_headers]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    /// Canonical header names (lower case, `-` for `_`) removed from every client request; one
    /// ending in `*` is a prefix.
    pub remove: Vec<String>,
}

/// Whether `;` path parameters (`/Patient;jsessionid=…/…`) may reach a route. Routes are matched
/// on the path with parameters cut off, as servlet containers read it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PathParameters {
    /// 400 `invalid_path`.
    Refuse,
    /// Forwarded as sent (in canonical form).
    Allow,
}

/// What a route does with an unsafe request (not GET, HEAD, OPTIONS or TRACE) authenticated by a
/// smartcard that a browser sent from another site (`Sec-Fetch-Site`, else `Origin`): the card is
/// presented by the browser whatever page asks, so such a request may be forged.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CrossSite {
    /// 403 `cross_site_request`.
    Refuse,
    /// Let it through (a route other sites' pages post to on purpose).
    Allow,
}

/// Whether a route requires certificate-bound tokens (RFC 8705).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenBinding {
    /// A token carrying `cnf.x5t#S256` must match the connection's certificate; others pass.
    IfPresent,
    /// Every token must carry `cnf.x5t#S256` matching the connection's certificate.
    Required,
}

/// `[tokens]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    /// The verifier's settings common to every issuer.
    pub options: TokenOptions,
    /// Back-channel logout endpoint path.
    pub backchannel_logout_path: String,
}

/// `[[token_issuer]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenIssuer {
    /// The issuer as the verifier takes it.
    pub options: TokenIssuerOptions,
    /// CAs for https key URLs (the gateway's key fetcher reads them).
    pub jwks_ca: Vec<PathBuf>,
}

/// `[log]`.
#[derive(Clone, Debug)]
pub struct Log {
    /// `tracing` filter directive.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}
