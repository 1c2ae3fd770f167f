//! `[[upstream]]`: the named clusters of patient-data service endpoints routes forward to, with
//! TLS towards them (`[upstream.tls]`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration, secs};

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

/// One upstream cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    /// PEM files of CAs for the upstream's certificate (non-empty).
    pub ca: Vec<PathBuf>,
    /// The gateway's client certificate chain and key, for mutual TLS.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Name to verify instead of the endpoint host.
    pub server_name: Option<String>,
}

impl Upstream {
    /// The files a reload depends on: the TLS CAs, then the client certificate chain and key.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.tls.iter().flat_map(|tls| {
            let identity = tls.client_identity.iter().flat_map(|(cert, key)| [cert.as_path(), key.as_path()]);
            tls.ca.iter().map(PathBuf::as_path).chain(identity)
        })
    }
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

/// Every `[[upstream]]`, validated: names distinct, endpoints of one scheme, TLS exactly for
/// `https`.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &[Spanned<RawUpstream>]) -> Result<Vec<Upstream>, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for spanned in raw {
        let u = spanned.get_ref();
        if !names.insert(u.name.get_ref().clone()) {
            return Err(ctx.invalid(u.name.span(), format!("upstream name {:?} is used twice", u.name.get_ref())));
        }
        if u.endpoints.get_ref().is_empty() {
            return Err(ctx.invalid(u.endpoints.span(), "endpoints is empty"));
        }
        let endpoints = u.endpoints.get_ref().iter().map(|e| endpoint(ctx, e)).collect::<Result<Vec<_>, _>>()?;
        let tls_endpoints = endpoints.iter().filter(|e| e.tls).count();
        if tls_endpoints != 0 && tls_endpoints != endpoints.len() {
            return Err(
                ctx.invalid(u.endpoints.span(), "endpoints mix http:// and https://; use one scheme per upstream")
            );
        }
        let tls = match (&u.tls, tls_endpoints != 0) {
            (Some(t), true) => Some(upstream_tls(ctx, t)?),
            (None, false) => None,
            (None, true) => {
                return Err(ctx.invalid(
                    u.endpoints.span(),
                    "https:// endpoints need an [upstream.tls] table naming the CA that signs them",
                ));
            }
            (Some(_), false) => {
                return Err(ctx.invalid(spanned.span(), "[upstream.tls] is set but the endpoints are http://"));
            }
        };
        out.push(Upstream {
            name: u.name.get_ref().clone(),
            endpoints,
            protocol: u.protocol,
            connect_timeout: u.connect_timeout.0,
            response_timeout: u.response_timeout.0,
            pool_idle_timeout: u.pool_idle_timeout.0,
            pool_max_idle_per_endpoint: usize::try_from(u.pool_max_idle_per_endpoint).unwrap_or(usize::MAX),
            host_header: u.host_header,
            tls,
        });
    }
    Ok(out)
}

fn endpoint(ctx: &Ctx<'_>, raw: &Spanned<String>) -> Result<Endpoint, ConfigError> {
    let bad = |why: &str| ctx.invalid(raw.span(), format!("endpoint {:?}: {why}", raw.get_ref()));
    let uri: http::Uri = raw.get_ref().parse().map_err(|_| bad("not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("scheme must be http:// or https://")),
    };
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err(bad("give only scheme, host and port; paths are not rewritten"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user information is not allowed"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    Ok(Endpoint { tls, host, port })
}

fn upstream_tls(ctx: &Ctx<'_>, raw: &RawUpstreamTls) -> Result<UpstreamTls, ConfigError> {
    if raw.ca.get_ref().is_empty() {
        return Err(ctx.invalid(raw.ca.span(), "ca is empty; name the CA that signs the upstream's certificate"));
    }
    let client_identity = match (&raw.client_certificate, &raw.client_key) {
        (Some(c), Some(k)) => Some((ctx.path(c)?, ctx.path(k)?)),
        (None, None) => None,
        (Some(c), None) => return Err(ctx.invalid(c.span(), "client_certificate needs client_key")),
        (None, Some(k)) => return Err(ctx.invalid(k.span(), "client_key needs client_certificate")),
    };
    Ok(UpstreamTls {
        ca: ctx.paths(raw.ca.get_ref())?,
        client_identity,
        server_name: match &raw.server_name {
            Some(s) if is_server_name(s.get_ref()) => Some(s.get_ref().clone()),
            Some(s) => return Err(ctx.invalid(s.span(), format!("{:?} is not a DNS name or IP address", s.get_ref()))),
            None => None,
        },
    })
}

/// A DNS name (letters, digits, hyphens, dots; labels of 1–63) or an IP literal.
fn is_server_name(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use crate::testing::{MINIMAL, parse};

    #[test]
    fn https_endpoint_without_tls_table_is_refused() {
        let text = MINIMAL.replace("http://127.0.0.1:9000", "https://pds.internal");
        assert!(parse(&text).unwrap_err().to_string().contains("[upstream.tls]"));
    }

    #[test]
    fn endpoint_with_path_is_refused() {
        let text = MINIMAL.replace("http://127.0.0.1:9000", "http://127.0.0.1:9000/fhir");
        assert!(parse(&text).unwrap_err().to_string().contains("paths are not rewritten"));
    }
}
