//! `[[listener]]`: the client-facing TLS listeners, with their server certificates
//! (`[[listener.certificate]]`) and HTTP/3 beside them (`[listener.http3]`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::limits::default_max_connections;
use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration, secs, unspanned, yes};

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
    #[serde(default = "yes")]
    pub alt_svc: bool,
    /// `ma` of the `Alt-Svc` advertisement.
    #[serde(default = "default_alt_svc_max_age")]
    pub alt_svc_max_age: HumanDuration,
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

/// A client-facing TLS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// One server certificate of a listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCertificate {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// SNI names (lower case); empty for the default certificate.
    pub server_names: Vec<String>,
}

impl Listener {
    /// The files a reload depends on: each server certificate's chain, then its key.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.certificates.iter().flat_map(|c| [c.cert.as_path(), c.key.as_path()])
    }
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

fn default_h3_streams() -> Spanned<u64> {
    unspanned(100)
}
fn default_udp_buffer() -> Spanned<u64> {
    unspanned(4 * 1024 * 1024)
}
fn default_transport_idle_timeout() -> Spanned<HumanDuration> {
    unspanned(secs(30))
}
fn default_alt_svc_max_age() -> HumanDuration {
    secs(86_400)
}
fn default_client_certificate() -> ClientCertificatePolicy {
    ClientCertificatePolicy::Require
}
fn default_tls_versions() -> Spanned<Vec<String>> {
    unspanned(vec!["1.3".into(), "1.2".into()])
}
fn default_alpn() -> Spanned<Vec<String>> {
    unspanned(vec!["h2".into(), "http/1.1".into()])
}
fn default_session_resumption() -> SessionResumption {
    SessionResumption::Tickets
}
fn default_certificate_problems() -> CertificateProblems {
    CertificateProblems::Explain
}

/// Every `[[listener]]`, validated: at least one, names and addresses distinct.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &[Spanned<RawListener>]) -> Result<Vec<Listener>, ConfigError> {
    if raw.is_empty() {
        return Err(ctx.global("no [[listener]] is configured; spinegate needs at least one"));
    }
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for spanned in raw {
        let l = spanned.get_ref();
        if !names.insert(l.name.get_ref().clone()) {
            return Err(ctx.invalid(l.name.span(), format!("listener name {:?} is used twice", l.name.get_ref())));
        }
        let listen = ctx.addr(&l.listen)?;
        if !addrs.insert(listen) {
            return Err(ctx.invalid(l.listen.span(), format!("address {listen} is used by two listeners")));
        }
        out.push(Listener {
            name: l.name.get_ref().clone(),
            listen,
            client_certificate: l.client_certificate,
            tls_versions: tls_versions(ctx, &l.tls_versions)?,
            alpn: alpn(ctx, &l.alpn)?,
            session_resumption: l.session_resumption,
            certificate_problems: l.certificate_problems,
            certificates: server_certificates(ctx, spanned)?,
            http3: l.http3.as_ref().map(|h| http3(ctx, h, &l.tls_versions)).transpose()?,
        });
    }
    Ok(out)
}

fn http3(ctx: &Ctx<'_>, raw: &Spanned<RawHttp3>, tls_versions: &Spanned<Vec<String>>) -> Result<Http3, ConfigError> {
    if !tls_versions.get_ref().iter().any(|v| v == "1.3") {
        return Err(ctx.invalid(raw.span(), "[listener.http3] needs TLS 1.3 in tls_versions (QUIC is TLS 1.3 only)"));
    }
    let h = raw.get_ref();
    let streams = *h.max_concurrent_streams.get_ref();
    if !(1..=10_000).contains(&streams) {
        return Err(ctx.invalid(h.max_concurrent_streams.span(), "max_concurrent_streams must be 1 to 10000"));
    }
    let buffer = |n: &Spanned<u64>, what: &str| {
        usize::try_from(*n.get_ref())
            .ok()
            .filter(|b| (64 * 1024..=256 * 1024 * 1024).contains(b))
            .ok_or_else(|| ctx.invalid(n.span(), format!("{what} must be 64 KiB to 256 MiB")))
    };
    let idle = h.transport_idle_timeout.get_ref().0;
    if idle < Duration::from_secs(1) || idle > Duration::from_secs(3600) {
        return Err(ctx.invalid(h.transport_idle_timeout.span(), "transport_idle_timeout must be 1s to 1h"));
    }
    Ok(Http3 {
        max_connections: ctx.nonzero(&h.max_connections, "max_connections")?,
        max_concurrent_streams: u32::try_from(streams).expect("checked above"),
        udp_receive_buffer: buffer(&h.udp_receive_buffer, "udp_receive_buffer")?,
        udp_send_buffer: buffer(&h.udp_send_buffer, "udp_send_buffer")?,
        transport_idle_timeout: idle,
        alt_svc: h.alt_svc,
        alt_svc_max_age: h.alt_svc_max_age.0,
    })
}

fn tls_versions(ctx: &Ctx<'_>, raw: &Spanned<Vec<String>>) -> Result<Vec<TlsVersion>, ConfigError> {
    let mut out = Vec::new();
    for v in raw.get_ref() {
        let version = match v.as_str() {
            "1.3" => TlsVersion::Tls13,
            "1.2" => TlsVersion::Tls12,
            other => {
                return Err(
                    ctx.invalid(raw.span(), format!("unsupported TLS version {other:?}; use \"1.3\" and/or \"1.2\""))
                );
            }
        };
        if out.contains(&version) {
            return Err(ctx.invalid(raw.span(), format!("TLS version {v:?} is listed twice")));
        }
        out.push(version);
    }
    if out.is_empty() {
        return Err(ctx.invalid(raw.span(), "tls_versions is empty"));
    }
    Ok(out)
}

fn alpn(ctx: &Ctx<'_>, raw: &Spanned<Vec<String>>) -> Result<Vec<Alpn>, ConfigError> {
    let mut out = Vec::new();
    for v in raw.get_ref() {
        let proto = match v.as_str() {
            "h2" => Alpn::H2,
            "http/1.1" => Alpn::Http11,
            other => {
                return Err(ctx.invalid(
                    raw.span(),
                    format!("unsupported ALPN protocol {other:?}; use \"h2\" and/or \"http/1.1\""),
                ));
            }
        };
        if out.contains(&proto) {
            return Err(ctx.invalid(raw.span(), format!("ALPN protocol {v:?} is listed twice")));
        }
        out.push(proto);
    }
    if out.is_empty() {
        return Err(ctx.invalid(raw.span(), "alpn is empty"));
    }
    Ok(out)
}

fn server_certificates(ctx: &Ctx<'_>, listener: &Spanned<RawListener>) -> Result<Vec<ServerCertificate>, ConfigError> {
    let raw = &listener.get_ref().certificate;
    if raw.is_empty() {
        return Err(ctx.invalid(
            listener.span(),
            format!("listener {:?} has no [[listener.certificate]]", listener.get_ref().name.get_ref()),
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for c in raw {
        let c = c.get_ref();
        let mut server_names = Vec::with_capacity(c.server_names.len());
        for name in &c.server_names {
            let lower = name.get_ref().trim().to_ascii_lowercase();
            if lower.is_empty() || lower.contains(|ch: char| ch.is_whitespace() || ch == '/' || ch == ':') {
                return Err(ctx.invalid(name.span(), format!("{:?} is not a DNS name", name.get_ref())));
            }
            server_names.push(lower);
        }
        // Several certificates may serve one name (or be the default) when their key types
        // differ; the gateway checks that when it loads the keys.
        out.push(ServerCertificate { cert: ctx.path(&c.cert)?, key: ctx.path(&c.key)?, server_names });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::testing::{MINIMAL, parse};

    #[test]
    fn no_listener_is_refused() {
        let err = parse("[admin]\nlisten = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.to_string().contains("no [[listener]]"), "{err}");
    }

    #[test]
    fn http3_gets_defaults_and_refuses_what_quic_cannot_do() {
        let with = |table: &str| MINIMAL.replace("key = \"server.key\"\n", &format!("key = \"server.key\"\n{table}"));
        let c = parse(&with("[listener.http3]\n")).unwrap();
        let h3 = c.listeners[0].http3.as_ref().unwrap();
        assert_eq!((h3.max_concurrent_streams, h3.udp_receive_buffer, h3.alt_svc), (100, 4 << 20, true));
        assert_eq!(h3.transport_idle_timeout.as_secs(), 30);
        assert!(parse(MINIMAL).unwrap().listeners[0].http3.is_none(), "TCP only unless asked");

        let tls12 = with("[listener.http3]\n")
            .replace("listen = \"127.0.0.1:8443\"", "listen = \"127.0.0.1:8443\"\ntls_versions = [\"1.2\"]");
        assert!(parse(&tls12).unwrap_err().to_string().contains("needs TLS 1.3"));
        for (table, says) in [
            ("max_concurrent_streams = 0", "1 to 10000"),
            ("udp_receive_buffer = 1024", "64 KiB to 256 MiB"),
            ("transport_idle_timeout = \"0s\"", "1s to 1h"),
            ("max_connections = 0", "at least 1"),
            ("early_data = true", "unknown field"),
        ] {
            let err = parse(&with(&format!("[listener.http3]\n{table}\n"))).unwrap_err().to_string();
            assert!(err.contains(says), "{table}: {err}");
        }
    }
}
