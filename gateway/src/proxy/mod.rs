//! Forwarding to upstream clusters: pooled keep-alive connections (hyper-util), HTTP/1.1 or
//! HTTP/2, plain or TLS with the gateway's own client certificate, bodies streamed both ways,
//! connect and response timeouts.

pub(crate) mod body;
pub(crate) mod headers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version, header};
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use spinegate_config::{HostHeader, Upstream, UpstreamProtocol};

use crate::material::{self, MaterialError};

/// The request body type sent upstream: the client's body, held to the limits.
pub(crate) type UpstreamBody = body::GuardedBody<crate::body::RequestBody>;

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No response headers within the response timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The client's body went over the limit while streaming.
    #[error("request body exceeded the limit")]
    BodyTooLarge,
    /// The client's body arrived too slowly (read timeout or minimum rate).
    #[error("request body arrived too slowly")]
    BodyTooSlow,
    /// The client's body stream broke (the client reset or went away).
    #[error("request body broke off")]
    ClientAborted,
    /// Connecting failed, or the exchange broke.
    #[error("upstream exchange failed: {0}")]
    Unavailable(#[source] hyper_util::client::legacy::Error),
}

impl ForwardError {
    /// The `kind` label of `spinegate_upstream_errors_total`, when the upstream is to blame (a
    /// body too large, too slow or broken off is the client's doing).
    pub fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            ForwardError::Timeout(_) => Some("timeout"),
            ForwardError::Unavailable(_) => Some("unavailable"),
            ForwardError::BodyTooLarge | ForwardError::BodyTooSlow | ForwardError::ClientAborted => None,
        }
    }
}

struct Target {
    scheme: Scheme,
    authority: Authority,
}

/// One upstream cluster with its connection pool.
pub struct Cluster {
    /// Name in logs and metrics.
    pub name: Arc<str>,
    targets: Box<[Target]>,
    next: AtomicUsize,
    client: Client<HttpsConnector<HttpConnector>, UpstreamBody>,
    response_timeout: Duration,
    host_header: HostHeader,
    version: Version,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Builds the cluster and its (empty) pool; loads TLS material for `https` endpoints.
    pub fn build(config: &Upstream, provider: &Arc<CryptoProvider>) -> Result<Self, MaterialError> {
        let tls = client_tls(config, provider)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);

        let mut builder = HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        if let Some(name) = config.tls.as_ref().and_then(|t| t.server_name.clone()) {
            let name = ServerName::try_from(name).expect("config validation admits only valid server names");
            builder = builder.with_server_name_resolver(FixedServerNameResolver::new(name));
        }
        let connector = match config.protocol {
            UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
            UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
            UpstreamProtocol::Negotiate => builder.enable_all_versions().wrap_connector(http),
        };

        let mut client = Client::builder(TokioExecutor::new());
        client
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_endpoint)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        if config.protocol == UpstreamProtocol::Http2 {
            // Prior knowledge on plain connections; on TLS, ALPN offers only h2.
            client.http2_only(true);
        }

        let targets = config
            .endpoints
            .iter()
            .map(|e| Target {
                scheme: if e.tls { Scheme::HTTPS } else { Scheme::HTTP },
                authority: e.authority().parse().expect("config validation only admits host:port endpoints"),
            })
            .collect();
        Ok(Self {
            name: config.name.as_str().into(),
            targets,
            next: AtomicUsize::new(0),
            client: client.build(connector),
            response_timeout: config.response_timeout,
            host_header: config.host_header,
            // The client's HTTP version says nothing about the upstream's. HTTP/1.1 requests are
            // carried over h2 when ALPN negotiates it ("negotiate").
            version: match config.protocol {
                UpstreamProtocol::Http2 => Version::HTTP_2,
                UpstreamProtocol::Http1 | UpstreamProtocol::Negotiate => Version::HTTP_11,
            },
        })
    }

    /// Sends `request` (whose URI carries only path and query) to the next endpoint, round-robin.
    /// `client_authority` is the authority the client named, canonical (lower case, no trailing
    /// dot), sent as `Host` under `host_header = "preserve"`: the same value routing judged.
    pub async fn forward(
        &self,
        mut request: Request<UpstreamBody>,
        client_authority: Option<&str>,
    ) -> Result<Response<Incoming>, ForwardError> {
        let target = &self.targets[self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len()];
        let path_and_query = request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::builder()
            .scheme(target.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .expect("scheme, authority and path are each valid");
        *request.version_mut() = self.version;
        if let (HostHeader::Preserve, Some(host)) = (self.host_header, client_authority.map(HeaderValue::from_str)) {
            request.headers_mut().insert(header::HOST, host.expect("a canonical authority is a valid header value"));
        }
        match tokio::time::timeout(self.response_timeout, self.client.request(request)).await {
            Err(_) => Err(ForwardError::Timeout(self.response_timeout)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(match body::body_error_in(&e) {
                Some(body::BodyError::TooLarge(_)) => ForwardError::BodyTooLarge,
                Some(body::BodyError::TooSlow { .. }) => ForwardError::BodyTooSlow,
                Some(body::BodyError::Client(_)) => ForwardError::ClientAborted,
                None => ForwardError::Unavailable(e),
            }),
        }
    }
}

fn client_tls(config: &Upstream, provider: &Arc<CryptoProvider>) -> Result<ClientConfig, MaterialError> {
    let builder = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default versions");
    let Some(tls) = &config.tls else {
        // Plain endpoints never use it, but the connector type wants one.
        return Ok(builder.with_root_certificates(RootCertStore::empty()).with_no_client_auth());
    };
    let builder = builder.with_root_certificates(material::ca_roots(&tls.ca)?);
    match &tls.client_identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = material::certificates(cert)?;
            let key_der = material::private_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| MaterialError::BadKey { path: key.clone(), reason: e.to_string() })
        }
    }
}
