//! HTTP over TLS: a client for HTTP/1.1 or HTTP/2 on one connection (by negotiated ALPN),
//! requests sent byte for byte as raw HTTP/1.1 (nothing normalises them on the way, as a client
//! library would), and the TLS alert a refused handshake ended with.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, ClientConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::within;

/// Connects to `addr` over TLS as `localhost`.
pub async fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// The alert the gateway sent, if the handshake (or, in TLS 1.3, the first read after it) failed.
/// In TLS 1.3 the client finishes before the server has judged its certificate, so the refusal
/// arrives on the first read.
pub async fn handshake_alert(addr: SocketAddr, config: Arc<ClientConfig>) -> Option<AlertDescription> {
    let mut tls = match tls_connect(addr, config).await {
        Ok(tls) => tls,
        Err(e) => return alert_of(&e),
    };
    if let Err(e) = tls.write_all(b"GET /metadata HTTP/1.1\r\nhost: localhost\r\n\r\n").await {
        return alert_of(&e);
    }
    let mut buf = [0u8; 512];
    match tls.read(&mut buf).await {
        Ok(_) => None,
        Err(e) => alert_of(&e),
    }
}

fn alert_of(e: &std::io::Error) -> Option<AlertDescription> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// A response with its body read.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON (panics, naming the body, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header the demo service received, from its `received_headers`.
    pub fn received(&self, name: &str) -> Option<String> {
        self.json()["received_headers"][name].as_str().map(str::to_owned)
    }
}

/// An HTTP/1.1 or HTTP/2 client on one TLS connection (by negotiated ALPN).
pub enum Client {
    /// HTTP/1.1.
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    /// HTTP/2.
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Client {
    /// Connects over TLS and speaks whatever ALPN settled.
    pub async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<Self> {
        let tls = tls_connect(addr, config).await?;
        Ok(Self::over(tls).await)
    }

    /// Speaks HTTP over an established TLS connection, by its ALPN.
    pub async fn over(tls: TlsStream<TcpStream>) -> Self {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.unwrap();
            tokio::spawn(conn);
            Self::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Self::H1(send)
        }
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<Resp, hyper::Error> {
        self.send(Request::get(path).body(Full::default()).unwrap()).await
    }

    /// Sends `request` (its URI a path; `Host` or `:authority` is `localhost`) and reads the whole
    /// response.
    pub async fn send(&mut self, mut request: Request<Full<Bytes>>) -> Result<Resp, hyper::Error> {
        let uri: http::Uri = format!("https://localhost{}", request.uri()).parse().unwrap();
        let response = match self {
            Self::H1(send) => {
                if !request.headers().contains_key(http::header::HOST) {
                    request.headers_mut().insert(http::header::HOST, "localhost".parse().unwrap());
                }
                *request.uri_mut() = uri.path_and_query().unwrap().as_str().parse().unwrap();
                send.ready().await?;
                send.send_request(request).await?
            }
            Self::H2(send) => {
                *request.uri_mut() = uri;
                *request.version_mut() = http::Version::HTTP_2;
                send.ready().await?;
                send.send_request(request).await?
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Resp { status: parts.status, headers: parts.headers, body })
    }
}

/// A response read off the wire by [`raw_http1`].
#[derive(Debug)]
pub struct RawResp {
    /// Status.
    pub status: u16,
    /// Header lines as sent, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl RawResp {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics, naming the body, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The problem+json reason, or the demo service's echo of what it received.
    pub fn reason(&self) -> Option<String> {
        self.json()["reason"].as_str().map(str::to_owned)
    }
}

/// Sends `head` (request line and header lines, without the final blank line) byte for byte over
/// TLS as HTTP/1.1 — nothing normalises it on the way, as a client library would — with
/// `connection: close` added, and reads the whole response.
pub async fn raw_http1(addr: SocketAddr, config: Arc<ClientConfig>, head: &str) -> RawResp {
    let mut tls = tls_connect(addr, config).await.unwrap();
    let request = format!("{head}\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    // A close_notify-less close is fine here: the response is complete when the server closes.
    let _ = within(10, tls.read_to_end(&mut bytes)).await;
    parse_http1(&bytes)
}

fn parse_http1(bytes: &[u8]) -> RawResp {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no complete response head: {:?}", String::from_utf8_lossy(bytes));
    });
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = bytes[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    RawResp { status, headers, body }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).split(';').next().unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = &rest[(start + size + 2).min(rest.len())..];
    }
    out
}
