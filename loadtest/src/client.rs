//! The loader's side of the wire: rustls client settings per session (the user's certificate
//! from the population with a pooled key, a session store of the session's own so a resumed
//! handshake is always the same user's), connections over HTTP/1.1, HTTP/2 or HTTP/3 (quinn +
//! h3), and requests whose failures are read down to the TLS alert that caused them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{AlertDescription, ClientConfig, HandshakeKind, SignatureScheme};
use spinegate_devpki::population::Population;
use spinegate_testkit::tickets::TicketCounter;
use spinegate_testkit::tls::ClientTls;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::expect::Outcome;
use crate::mix::Protocol;

/// What every session's client settings start from.
pub struct ClientBase {
    target: SocketAddr,
    server_name: ServerName<'static>,
    base: ClientConfig,
    provider: Arc<CryptoProvider>,
    keys: Vec<Arc<dyn SigningKey>>,
    /// One UDP socket for every HTTP/3 connection, made on first use (inside the runtime).
    quic: std::sync::OnceLock<quinn::Endpoint>,
}

impl std::fmt::Debug for ClientBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBase").field("target", &self.target).finish_non_exhaustive()
    }
}

impl ClientBase {
    /// Trusts the CA certificates in `server_ca` (PEM), connects to `target` as `server_name`,
    /// and loads the population's key pool once.
    pub fn new(
        population: &Population,
        server_ca: &Path,
        target: SocketAddr,
        server_name: &str,
    ) -> anyhow::Result<Self> {
        let provider = spinegate_testkit::tls::provider();
        let roots = spinegate_testkit::tls::roots_from_pem_file(server_ca).map_err(anyhow::Error::msg)?;
        let base = ClientTls::trusting(roots).provider(Arc::clone(&provider)).build().as_ref().clone();
        let server_name = ServerName::try_from(server_name.to_owned())
            .with_context(|| format!("{server_name:?} is not a DNS name or IP address"))?;
        let pool = population.file().key_pool;
        let keys = (0..pool)
            .map(|slot| {
                provider
                    .key_provider
                    .load_private_key(population.private_key(slot))
                    .with_context(|| format!("key {slot} of the population's key pool"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { target, server_name, base, provider, keys, quic: std::sync::OnceLock::new() })
    }

    /// Client settings for one session: its protocol, its own session store, and the user's
    /// chain with the pooled key for `index` when the user has a card.
    pub fn session_config(
        &self,
        card: Option<(Vec<CertificateDer<'static>>, usize)>,
        protocol: Protocol,
    ) -> SessionTls {
        let mut config = self.base.clone();
        config.alpn_protocols = vec![protocol.alpn().to_vec()];
        let tickets = Arc::new(TicketCounter::new(4));
        config.resumption = Resumption::store(Arc::clone(&tickets) as _);
        if let Some((chain, slot)) = card {
            let key = Arc::clone(&self.keys[slot % self.keys.len()]);
            config.client_auth_cert_resolver = Arc::new(OneCard(Arc::new(CertifiedKey::new(chain, key))));
        }
        SessionTls { config: Arc::new(config), tickets }
    }

    /// The crypto provider (aws-lc-rs).
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }
}

/// Presents one user's certificate whenever the server asks.
#[derive(Debug)]
struct OneCard(Arc<CertifiedKey>);

impl ResolvesClientCert for OneCard {
    fn resolve(&self, _hints: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.0.key.choose_scheme(schemes).map(|_| Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// One session's client settings and its session store.
#[derive(Clone, Debug)]
pub struct SessionTls {
    /// The rustls settings.
    pub config: Arc<ClientConfig>,
    tickets: Arc<TicketCounter>,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
    H3(h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>, quinn::Connection),
}

/// An established connection.
pub struct Connection {
    sender: Sender,
    driver: JoinHandle<Result<(), hyper::Error>>,
    /// Whether the TLS handshake resumed a session.
    pub resumed: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("resumed", &self.resumed).finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// One request of a session.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

/// Connects and shakes hands, within `limit`.
pub async fn connect(base: &ClientBase, tls: &SessionTls, limit: Duration) -> Result<Connection, Outcome> {
    if tls.config.alpn_protocols.first().is_some_and(|p| p == b"h3") {
        return tokio::time::timeout(limit, connect_quic(base, tls)).await.unwrap_or(Err(Outcome::Failed("timeout")));
    }
    let config = Arc::clone(&tls.config);
    let attempt = async {
        let tcp = TcpStream::connect(base.target).await.map_err(|e| classify(&e))?;
        let _ = tcp.set_nodelay(true);
        let tls = TlsConnector::from(config).connect(base.server_name.clone(), tcp).await.map_err(|e| classify(&e))?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.map_err(|e| classify(&e))?;
            Ok(Connection { sender: Sender::H2(send), driver: tokio::spawn(conn), resumed })
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| classify(&e))?;
            Ok(Connection { sender: Sender::H1(send), driver: tokio::spawn(conn), resumed })
        }
    };
    tokio::time::timeout(limit, attempt).await.unwrap_or(Err(Outcome::Failed("timeout")))
}

/// An HTTP/3 connection over the shared QUIC endpoint. Whether it resumed is whether the
/// session's store offered a ticket (see [`TicketCounter`]).
async fn connect_quic(base: &ClientBase, tls: &SessionTls) -> Result<Connection, Outcome> {
    let endpoint = match base.quic.get() {
        Some(endpoint) => endpoint.clone(),
        None => {
            let local: SocketAddr = if base.target.is_ipv6() { "[::1]:0" } else { "127.0.0.1:0" }
                .parse()
                .map_err(|_| Outcome::Failed("other"))?;
            let endpoint = quinn::Endpoint::client(local).map_err(|e| classify(&e))?;
            base.quic.get_or_init(|| endpoint).clone()
        }
    };
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::clone(&tls.config))
        .map_err(|_| Outcome::Failed("tls"))?;
    let name = match &base.server_name {
        ServerName::DnsName(n) => n.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => "localhost".to_owned(),
    };
    let connecting = endpoint
        .connect_with(quinn::ClientConfig::new(Arc::new(quic)), base.target, &name)
        .map_err(|_| Outcome::Failed("other"))?;
    let connection = connecting.await.map_err(|e| quic_outcome(&e))?;
    let resumed = tls.tickets.last_offered();
    let (mut driver, send) = match h3::client::new(h3_quinn::Connection::new(connection.clone())).await {
        Ok(pair) => pair,
        Err(e) => return Err(closed_outcome(&connection).unwrap_or_else(|| classify(&e))),
    };
    let driver = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        Ok(())
    });
    Ok(Connection { sender: Sender::H3(send, connection), driver, resumed })
}

/// Why the server closed `connection`, when it did, as an outcome (the TLS alert if there was one).
fn closed_outcome(connection: &quinn::Connection) -> Option<Outcome> {
    connection.close_reason().map(|reason| quic_outcome(&reason))
}

/// A QUIC connection error as an outcome: a TLS alert from the gateway when there was one.
fn quic_outcome(error: &quinn::ConnectionError) -> Outcome {
    if let quinn::ConnectionError::TransportError(t) = error {
        // QUIC carries a TLS alert as CRYPTO_ERROR 0x100 + alert.
        let code = u64::from(t.code);
        if (0x100..0x200).contains(&code) {
            return Outcome::Alert(AlertDescription::from(u8::try_from(code - 0x100).unwrap_or(0)));
        }
    }
    if let quinn::ConnectionError::ConnectionClosed(c) = error {
        let code = u64::from(c.error_code);
        if (0x100..0x200).contains(&code) {
            return Outcome::Alert(AlertDescription::from(u8::try_from(code - 0x100).unwrap_or(0)));
        }
    }
    classify(error)
}

impl Connection {
    /// Whether another request can go on this connection.
    pub fn is_open(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => !s.is_closed(),
            Sender::H2(s) => !s.is_closed(),
            Sender::H3(_, c) => c.close_reason().is_none(),
        }
    }

    /// Sends `spec`, reads the whole response, within `limit`.
    pub async fn request(&mut self, spec: &RequestSpec, limit: Duration) -> Outcome {
        let sent = tokio::time::timeout(limit, self.exchange(spec)).await;
        match sent {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => {
                // The request's error often says only "connection closed"; the connection task
                // holds the cause (the server's alert, a reset).
                let cause = match tokio::time::timeout(Duration::from_secs(1), &mut self.driver).await {
                    Ok(Ok(Err(driver_error))) => Some(classify(&driver_error)),
                    _ => None,
                };
                match (classify(&error), cause) {
                    (alert @ Outcome::Alert(_), _) => alert,
                    (_, Some(alert @ Outcome::Alert(_))) => alert,
                    (Outcome::Failed("other" | "connection_closed"), Some(cause @ Outcome::Failed(_))) => cause,
                    (outcome, _) => outcome,
                }
            }
            Err(_) => Outcome::Failed("timeout"),
        }
    }

    async fn exchange(&mut self, spec: &RequestSpec) -> Result<Outcome, hyper::Error> {
        if let Sender::H3(send, connection) = &mut self.sender {
            return Ok(match h3_exchange(send, spec).await {
                // A refusal of the card arrives as the connection's close: read the alert there.
                Outcome::Failed(_) if closed_outcome(connection).is_some() => {
                    closed_outcome(connection).unwrap_or(Outcome::Failed("other"))
                }
                outcome => outcome,
            });
        }
        let mut builder = Request::get(spec.path.as_str());
        for (name, value) in &spec.headers {
            builder = builder.header(*name, value.as_str());
        }
        let response = match &mut self.sender {
            Sender::H1(send) => {
                let request = builder.header(header::HOST, "localhost").body(Empty::new());
                let Ok(request) = request else { return Ok(Outcome::Failed("bad_request")) };
                send.ready().await?;
                send.send_request(request).await?
            }
            Sender::H3(..) => return Ok(Outcome::Failed("other")),
            Sender::H2(send) => {
                let request = Request::builder()
                    .uri(format!("https://localhost{}", spec.path))
                    .version(http::Version::HTTP_2)
                    .body(Empty::new());
                let Ok(mut request) = request else { return Ok(Outcome::Failed("bad_request")) };
                for (name, value) in &spec.headers {
                    let Ok(value) = http::HeaderValue::from_str(value) else {
                        return Ok(Outcome::Failed("bad_request"));
                    };
                    request.headers_mut().insert(*name, value);
                }
                send.ready().await?;
                send.send_request(request).await?
            }
        };
        let code = response.status().as_u16();
        let expiry_warning = response.headers().contains_key("x-certificate-expiry-warning");
        response.into_body().collect().await?;
        Ok(Outcome::Status { code, expiry_warning })
    }
}

/// One request on an HTTP/3 connection, read whole.
async fn h3_exchange(send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>, spec: &RequestSpec) -> Outcome {
    let mut request = Request::get(format!("https://localhost{}", spec.path));
    for (name, value) in &spec.headers {
        request = request.header(*name, value.as_str());
    }
    let Ok(request) = request.body(()) else { return Outcome::Failed("bad_request") };
    let exchange = async {
        let mut stream = send.send_request(request).await.map_err(|e| classify(&e))?;
        stream.finish().await.map_err(|e| classify(&e))?;
        let response = stream.recv_response().await.map_err(|e| classify(&e))?;
        while stream.recv_data().await.map_err(|e| classify(&e))?.is_some() {}
        Ok::<_, Outcome>(Outcome::Status {
            code: response.status().as_u16(),
            expiry_warning: response.headers().contains_key("x-certificate-expiry-warning"),
        })
    };
    exchange.await.unwrap_or_else(|outcome| outcome)
}

/// The most specific cause in an error chain: a TLS alert if there is one, else a failure kind.
pub fn classify(error: &(dyn std::error::Error + 'static)) -> Outcome {
    let mut kind = "other";
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            if let rustls::Error::AlertReceived(alert) = tls {
                return Outcome::Alert(*alert);
            }
            kind = "tls";
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // An io::Error's source() skips the error it wraps, so look inside by hand.
            if let Some(rustls::Error::AlertReceived(alert)) = io.get_ref().and_then(|i| i.downcast_ref()) {
                return Outcome::Alert(*alert);
            }
            if io.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
                kind = "tls";
            } else if matches!(kind, "other" | "connection_closed" | "http") {
                kind = match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connect_refused",
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => "connection_reset",
                    std::io::ErrorKind::UnexpectedEof => "connection_closed",
                    std::io::ErrorKind::TimedOut => "timeout",
                    std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::AddrInUse => "no_local_port",
                    _ => "io",
                };
            }
        }
        // HTTP/2 copies an I/O error into each stream as text, so the alert survives only in
        // the message.
        if let Some(alert) = alert_in_text(&e.to_string()) {
            return Outcome::Alert(alert);
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && kind == "other"
        {
            kind = if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                "connection_closed"
            } else if h.is_parse() {
                "http_protocol"
            } else {
                "http"
            };
        }
        current = e.source();
    }
    Outcome::Failed(kind)
}

/// The alert named by rustls' message `received fatal alert: CertificateExpired`.
fn alert_in_text(text: &str) -> Option<AlertDescription> {
    let name = text.split("received fatal alert: ").nth(1)?;
    let name: String = name.chars().take_while(char::is_ascii_alphanumeric).collect();
    (0..=u8::MAX).map(AlertDescription::from).find(|a| format!("{a:?}") == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_found_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::CertificateRevoked),
        );
        assert_eq!(classify(&io), Outcome::Alert(AlertDescription::CertificateRevoked));
    }

    #[test]
    fn alerts_are_found_in_copied_messages() {
        let copied = std::io::Error::other("received fatal alert: CertificateExpired");
        assert_eq!(classify(&copied), Outcome::Alert(AlertDescription::CertificateExpired));
        assert_eq!(alert_in_text("received fatal alert: Nonsense"), None);
    }

    #[test]
    fn transport_failures_are_named() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&refused), Outcome::Failed("connect_refused"));
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(classify(&tls), Outcome::Failed("tls"));
    }
}
