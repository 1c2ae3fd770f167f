//! OCSP for tests and `spinegate dev`: signed responses (by the CA or a delegated responder it
//! certified), and a small HTTP responder whose answers, failure modes and delay the caller
//! controls, and which counts the requests it gets.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use bytes::Bytes;
use der::asn1::{BitString, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, OcspResponseStatus, ResponderId,
    ResponseBytes, ResponseData, RevokedInfo, SingleResponse,
};

use crate::asn1::{generalized_time, sign, signature_algorithm};
use crate::{Ca, Error, Issued};

const OID_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const OID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// What the responder knows about a serial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertState {
    /// Not revoked.
    Good,
    /// Revoked.
    Revoked {
        /// When.
        at: OffsetDateTime,
        /// CRL reason code.
        reason: Option<u8>,
    },
}

/// How the responder behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Signed answers.
    Answer,
    /// `tryLater` for everything.
    TryLater,
    /// Bytes that are not OCSP.
    Garbage,
}

/// Builds a signed response to `request_der` for certificates of `ca`. Serials `lookup` does not
/// know, and CertIDs for another issuer, are answered `unknown`. Signed by `delegate` (which
/// must carry id-kp-OCSPSigning) when given, else by the CA.
pub fn respond(
    ca: &Ca,
    delegate: Option<&Issued>,
    request_der: &[u8],
    lookup: impl Fn(&[u8]) -> Option<CertState>,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<Vec<u8>, Error> {
    let request = OcspRequest::from_der(request_der).map_err(|e| corrupt(e.to_string()))?;
    let ca_cert = x509_cert::Certificate::from_der(ca.cert()).map_err(|e| corrupt(e.to_string()))?;
    let ca_name = ca_cert.tbs_certificate.subject.to_der().map_err(|e| corrupt(e.to_string()))?;
    let ca_key = ca_cert.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes().to_vec();
    let this_update = OcspGeneralizedTime(generalized_time(now));
    let next_update = OcspGeneralizedTime(generalized_time(now + validity));
    let mut responses = Vec::new();
    for single in &request.tbs_request.request_list {
        let id = &single.req_cert;
        let algorithm = if id.hash_algorithm.oid == OID_SHA1 {
            Some(&digest::SHA1_FOR_LEGACY_USE_ONLY)
        } else if id.hash_algorithm.oid == OID_SHA256 {
            Some(&digest::SHA256)
        } else {
            None
        };
        let ours = algorithm.is_some_and(|alg| {
            digest::digest(alg, &ca_name).as_ref() == id.issuer_name_hash.as_bytes()
                && digest::digest(alg, &ca_key).as_ref() == id.issuer_key_hash.as_bytes()
        });
        let serial = id.serial_number.as_bytes();
        let status = match ours.then(|| lookup(serial)).flatten() {
            Some(CertState::Good) => CertStatus::good(),
            Some(CertState::Revoked { at, reason }) => CertStatus::Revoked(RevokedInfo {
                revocation_time: OcspGeneralizedTime(generalized_time(at)),
                revocation_reason: reason.and_then(crl_reason),
            }),
            None => CertStatus::Unknown(der::asn1::Null),
        };
        responses.push(SingleResponse {
            cert_id: id.clone(),
            cert_status: status,
            this_update,
            next_update: Some(next_update),
            single_extensions: None,
        });
    }
    let (signer_key, signer_cert) = match delegate {
        Some(d) => (&d.key, Some(d.cert.clone())),
        None => (ca.key(), None),
    };
    let signer_spki = match &signer_cert {
        Some(cert) => x509_cert::Certificate::from_der(cert).map_err(|e| corrupt(e.to_string()))?,
        None => ca_cert.clone(),
    }
    .tbs_certificate
    .subject_public_key_info
    .subject_public_key
    .raw_bytes()
    .to_vec();
    let key_hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &signer_spki);
    // Echo the nonce (RFC 8954).
    let response_extensions = request
        .tbs_request
        .request_extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id == OID_NONCE).cloned().map(|nonce| vec![nonce]));
    let data = ResponseData {
        version: x509_ocsp::Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(key_hash.as_ref()).expect("a digest fits")),
        produced_at: this_update,
        responses,
        response_extensions,
    };
    let tbs = data.to_der().map_err(|e| corrupt(e.to_string()))?;
    let signature = sign(signer_key, &tbs)?;
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: signature_algorithm(signer_key),
        signature: BitString::from_bytes(&signature).expect("a signature fits"),
        certs: signer_cert
            .map(|c| x509_cert::Certificate::from_der(&c).map(|c| vec![c]))
            .transpose()
            .map_err(|e| corrupt(e.to_string()))?,
    };
    let response = OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: OID_BASIC,
            response: OctetString::new(basic.to_der().map_err(|e| corrupt(e.to_string()))?).expect("fits"),
        }),
    };
    response.to_der().map_err(|e| corrupt(e.to_string()))
}

/// An unsuccessful OCSP response (`tryLater`, `unauthorized` …).
pub fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    OcspResponse { response_status: status, response_bytes: None }.to_der().expect("an OCSP error response encodes")
}

fn crl_reason(code: u8) -> Option<x509_cert::ext::pkix::CrlReason> {
    use x509_cert::ext::pkix::CrlReason as R;
    Some(match code {
        0 => R::Unspecified,
        1 => R::KeyCompromise,
        2 => R::CaCompromise,
        3 => R::AffiliationChanged,
        4 => R::Superseded,
        5 => R::CessationOfOperation,
        6 => R::CertificateHold,
        9 => R::PrivilegeWithdrawn,
        10 => R::AaCompromise,
        _ => return None,
    })
}

fn corrupt(message: String) -> Error {
    Error::Corrupt { path: "<ocsp>".into(), message }
}

struct State {
    statuses: HashMap<Vec<u8>, CertState>,
    mode: Mode,
    delay: Duration,
    validity: Duration,
    delegate: Option<Arc<Issued>>,
}

/// A running OCSP responder for one CA.
pub struct OcspResponder {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for OcspResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspResponder").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl OcspResponder {
    /// Serves OCSP (GET and POST) for `ca` on `addr`, answering `good` for `known` serials,
    /// `unknown` for the rest, with responses valid for an hour.
    pub async fn spawn(
        addr: SocketAddr,
        ca: Arc<Ca>,
        known: impl IntoIterator<Item = Vec<u8>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            statuses: known.into_iter().map(|s| (normalise(&s), CertState::Good)).collect(),
            mode: Mode::Answer,
            delay: Duration::ZERO,
            validity: Duration::from_secs(3600),
            delegate: None,
        }));
        let requests = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        let (st, rq) = (Arc::clone(&state), Arc::clone(&requests));
        crate::serve::spawn(listener, stopped, move |req| {
            handle(req, Arc::clone(&ca), Arc::clone(&st), Arc::clone(&rq))
        });
        Ok(Self { addr, state, requests, stop })
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Sets a serial's status.
    pub fn set(&self, serial: &[u8], state: CertState) {
        lock(&self.state).statuses.insert(normalise(serial), state);
    }

    /// Revokes a serial now.
    pub fn revoke(&self, serial: &[u8]) {
        self.set(serial, CertState::Revoked { at: OffsetDateTime::now_utc(), reason: Some(1) });
    }

    /// Changes how it answers.
    pub fn set_mode(&self, mode: Mode) {
        lock(&self.state).mode = mode;
    }

    /// Delays every answer.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.state).delay = delay;
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops serving.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn normalise(serial: &[u8]) -> Vec<u8> {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len().saturating_sub(1));
    serial[start..].to_vec()
}

async fn handle(
    req: Request<Incoming>,
    ca: Arc<Ca>,
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    requests.fetch_add(1, Ordering::SeqCst);
    let der = match *req.method() {
        Method::POST => req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default(),
        Method::GET => {
            let encoded = req.uri().path().trim_start_matches('/');
            let decoded = percent_decode(encoded);
            base64::engine::general_purpose::STANDARD.decode(decoded).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let (mode, delay, validity, delegate, statuses) = {
        let s = lock(&state);
        (s.mode, s.delay, s.validity, s.delegate.clone(), s.statuses.clone())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = match mode {
        Mode::TryLater => error_response(OcspResponseStatus::TryLater),
        Mode::Garbage => b"this is not an OCSP response".to_vec(),
        Mode::Answer => respond(
            &ca,
            delegate.as_deref(),
            &der,
            |serial| statuses.get(&normalise(serial)).copied(),
            OffsetDateTime::now_utc(),
            validity,
        )
        .unwrap_or_else(|_| error_response(OcspResponseStatus::MalformedRequest)),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/ocsp-response"));
    Ok(response)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}
