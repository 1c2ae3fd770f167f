//! Fetching OCSP responses and CRLs over HTTP: bounded in time and size, behind a trait so tests
//! and benchmarks can answer without sockets.

use std::fmt::Debug;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// One fetch.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// `http://` URL.
    pub url: String,
    /// POST body with its content type; GET when `None`.
    pub post: Option<(Bytes, &'static str)>,
    /// Most bytes accepted.
    pub max_bytes: usize,
    /// Deadline for the whole exchange, body included.
    pub timeout: Duration,
}

/// Why a fetch failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not a usable `http://` URL.
    #[error("bad URL {0}")]
    BadUrl(String),
    /// No connection, or it broke.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// A status other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// More bytes than allowed.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

impl FetchError {
    /// A stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::BadUrl(_) => "bad_url",
            FetchError::Connect(_) => "connect",
            FetchError::Timeout => "timeout",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge(_) => "too_large",
        }
    }
}

/// Something that fetches bytes by URL.
pub trait Fetch: Send + Sync + Debug + 'static {
    /// Performs one request.
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Bytes, FetchError>>;
}

/// Plain-HTTP fetcher with a connection pool (OCSP and CRL distribution points are HTTP by
/// convention: the data is signed, and TLS would need revocation checking of its own).
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpFetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpFetcher {
    /// A fetcher with its own pool.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self { client }
    }
}

impl Fetch for HttpFetcher {
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Bytes, FetchError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let timeout = request.timeout;
            match tokio::time::timeout(timeout, exchange(client, request)).await {
                Ok(result) => result,
                Err(_) => Err(FetchError::Timeout),
            }
        })
    }
}

async fn exchange(client: Client<HttpConnector, Full<Bytes>>, request: FetchRequest) -> Result<Bytes, FetchError> {
    let uri: http::Uri = request.url.parse().map_err(|_| FetchError::BadUrl(request.url.clone()))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(FetchError::BadUrl(request.url.clone()));
    }
    let builder = Request::builder().uri(uri);
    let http_request = match request.post {
        Some((body, content_type)) => {
            builder.method(Method::POST).header(header::CONTENT_TYPE, content_type).body(Full::new(body))
        }
        None => builder.method(Method::GET).body(Full::default()),
    }
    .map_err(|e| FetchError::BadUrl(e.to_string()))?;
    let response = client.request(http_request).await.map_err(|e| FetchError::Connect(e.to_string()))?;
    if response.status() != http::StatusCode::OK {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > request.max_bytes) {
        return Err(FetchError::TooLarge(request.max_bytes));
    }
    match Limited::new(response.into_body(), request.max_bytes).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(FetchError::TooLarge(request.max_bytes)),
        Err(e) => Err(FetchError::Connect(e.to_string())),
    }
}
