//! `spinegate-loadtest serve`: what a gateway under test needs besides itself, for a population —
//! the OCSP responder for its issuing CA (good or revoked read from the serial, so a million
//! users need no table; answers signed by a delegated ECDSA responder and cached), the token
//! issuer's JWK Set, and the demo patient-data service as the upstream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use spinegate_devpki::demo_service::DemoService;
use spinegate_devpki::ocsp;
use spinegate_devpki::population::{Population, Services};
use spinegate_devpki::{Ca, Issued};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long OCSP answers are valid (nextUpdate − thisUpdate).
const OCSP_VALIDITY: Duration = Duration::from_secs(3600);
/// How long a signed answer is served from the cache: well inside its validity.
const OCSP_CACHE_FOR: Duration = Duration::from_secs(600);
/// Cached answers at most (the cache is emptied when full).
const OCSP_CACHE_ENTRIES: usize = 200_000;

/// The running services.
#[derive(Debug)]
pub struct Running {
    /// Where each listens.
    pub addrs: Services,
    /// OCSP requests answered.
    pub ocsp_requests: Arc<std::sync::atomic::AtomicU64>,
    demo: DemoService,
    stop: watch::Sender<bool>,
}

impl Running {
    /// Stops all three.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.demo.shutdown().await;
    }
}

/// Starts the services on `addrs` (port 0 picks a free port; the chosen ones are in
/// [`Running::addrs`]).
pub async fn start(population: Arc<Population>, addrs: Services) -> anyhow::Result<Running> {
    let issuing = Arc::new(issuing_ca(&population)?);
    let delegate = Arc::new(ocsp_delegate(&population)?);
    let (stop, stopped) = watch::channel(false);

    let ocsp_listener = bind(addrs.ocsp, "OCSP responder").await?;
    let ocsp_addr = ocsp_listener.local_addr()?;
    let ocsp_requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let responder = Arc::new(Responder {
        population: Arc::clone(&population),
        issuing,
        delegate,
        cache: Mutex::new(HashMap::new()),
        requests: Arc::clone(&ocsp_requests),
    });
    spinegate_devpki::serve::spawn(ocsp_listener, stopped.clone(), move |req| Arc::clone(&responder).answer(req));

    let jwks_listener = bind(addrs.jwks, "JWK Set endpoint").await?;
    let jwks_addr = jwks_listener.local_addr()?;
    let jwks = Bytes::from(population.token_signer()?.jwks_json());
    let issuer = population.file().token_issuer.clone();
    spinegate_devpki::serve::spawn(jwks_listener, stopped, move |req| {
        let (jwks, issuer) = (jwks.clone(), issuer.clone());
        async move { Ok(key_set(&req, jwks, &issuer, jwks_addr)) }
    });

    let demo = DemoService::spawn(addrs.upstream)
        .await
        .with_context(|| format!("binding the demo upstream on {}", addrs.upstream))?;
    let addrs = Services { ocsp: ocsp_addr, jwks: jwks_addr, upstream: demo.addr() };
    Ok(Running { addrs, ocsp_requests, demo, stop })
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("binding the {what} on {addr}"))
}

/// The population's issuing CA (OCSP answers are about its certificates).
fn issuing_ca(population: &Population) -> anyhow::Result<Ca> {
    let (cert, key) = cert_and_key(population, "pki/issuing")?;
    Ok(Ca::from_der(cert, key, &[], false)?)
}

/// The delegated responder certificate and key that sign the answers.
fn ocsp_delegate(population: &Population) -> anyhow::Result<Issued> {
    let (cert, key) = cert_and_key(population, "pki/ocsp-responder")?;
    Ok(Issued { cert: cert.clone(), key, chain: vec![cert] })
}

fn cert_and_key(
    population: &Population,
    stem: &str,
) -> anyhow::Result<(rustls::pki_types::CertificateDer<'static>, rcgen::KeyPair)> {
    let cert_path = population.path(&format!("{stem}.pem"));
    let key_path = population.path(&format!("{stem}.key"));
    let cert = pem::parse(std::fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?)
        .with_context(|| format!("{} is not PEM", cert_path.display()))?;
    let key_pem = std::fs::read_to_string(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let key = rcgen::KeyPair::from_pem(&key_pem).with_context(|| format!("{} is not a key", key_path.display()))?;
    Ok((cert.into_contents().into(), key))
}

struct Responder {
    population: Arc<Population>,
    issuing: Arc<Ca>,
    delegate: Arc<Issued>,
    cache: Mutex<HashMap<Vec<u8>, (Bytes, Instant)>>,
    requests: Arc<std::sync::atomic::AtomicU64>,
}

impl Responder {
    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let der = match *req.method() {
            Method::POST => match req.into_body().collect().await {
                Ok(body) => body.to_bytes().to_vec(),
                Err(_) => Vec::new(),
            },
            Method::GET => {
                use base64::Engine;
                let encoded = percent_decode(req.uri().path().trim_start_matches('/'));
                base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        let now = Instant::now();
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.get(&der).filter(|(_, at)| now.duration_since(*at) < OCSP_CACHE_FOR).map(|(b, _)| b.clone())
        };
        let body = match cached {
            Some(body) => body,
            None => {
                // Signing is an RSA operation: keep it off the accept loop's threads.
                let this = Arc::clone(&self);
                let request = der.clone();
                let signed = tokio::task::spawn_blocking(move || {
                    ocsp::respond(
                        &this.issuing,
                        Some(&this.delegate),
                        &request,
                        |serial| this.population.ocsp_status(serial),
                        time::OffsetDateTime::now_utc(),
                        OCSP_VALIDITY,
                    )
                })
                .await;
                match signed {
                    Ok(Ok(bytes)) => {
                        let bytes = Bytes::from(bytes);
                        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        if cache.len() >= OCSP_CACHE_ENTRIES {
                            cache.clear();
                        }
                        cache.insert(der, (bytes.clone(), now));
                        bytes
                    }
                    _ => Bytes::from(ocsp::error_response(x509_ocsp_malformed())),
                }
            }
        };
        let mut response = Response::new(Full::new(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/ocsp-response"));
        Ok(response)
    }
}

fn x509_ocsp_malformed() -> x509_ocsp::OcspResponseStatus {
    x509_ocsp::OcspResponseStatus::MalformedRequest
}

fn key_set(req: &Request<Incoming>, jwks: Bytes, issuer: &str, addr: SocketAddr) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/jwks" => (StatusCode::OK, jwks),
        "/.well-known/openid-configuration" => (
            StatusCode::OK,
            Bytes::from(serde_json::json!({"issuer": issuer, "jwks_uri": format!("http://{addr}/jwks")}).to_string()),
        ),
        _ => (StatusCode::NOT_FOUND, Bytes::new()),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("MEow%2BQ%3D%3D"), "MEow+Q==");
        assert_eq!(percent_decode("abc%"), "abc%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
