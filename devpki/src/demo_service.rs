//! The demo patient-data service: a small FHIR-flavoured JSON API that stands behind the gateway
//! in `spinegate dev`, the tests and the benchmarks. Every JSON response carries the request
//! headers it received under `"received_headers"` (the HTTP version under `"received_version"`,
//! the request target under `"received_target"`), so a client can see exactly what the gateway
//! forwarded.
//!
//! | request | answer |
//! |---|---|
//! | `GET /Patient/{nhs number}` | a `Patient`, 404 `OperationOutcome` if unknown, 400 if the number is invalid |
//! | `GET /Patient?identifier=…\|{nhs number}` | a search-set `Bundle` |
//! | `GET /metadata` | a minimal `CapabilityStatement` |
//! | `POST /_demo/echo` | the body's length and SHA-256, read as a stream |
//! | `GET /_demo/bytes?n=N` | N bytes (at most 64 MiB), streamed in 64 KiB chunks |
//! | `GET /_demo/slow?ms=N` | answers after N ms (at most 60 s) |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use aws_lc_rs::digest;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::nhs_number;

/// The demo patients: (NHS number, family name, given name, gender, birth date).
pub const PATIENTS: &[(&str, &str, &str, &str, &str)] = &[
    ("9000000009", "SMITH", "Jane", "female", "1982-03-14"),
    ("9000000017", "JONES", "John", "male", "1975-11-02"),
    ("9000000025", "KHAN", "Amira", "female", "1991-07-23"),
    ("9000000033", "O'BRIEN", "Peter", "male", "1948-01-30"),
];

const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
const FHIR_JSON: &str = "application/fhir+json";

type Body = BoxBody<Bytes, std::io::Error>;

/// A running demo service.
#[derive(Debug)]
pub struct DemoService {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl DemoService {
    /// Binds `addr` (port 0 for any) and serves HTTP/1.1 and HTTP/2 (prior knowledge) until
    /// [`DemoService::shutdown`].
    pub async fn spawn(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, stopped));
        Ok(Self { addr, stop, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn serve(listener: TcpListener, mut stopped: watch::Receiver<bool>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let conn = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = stopped.changed() => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let received = json!({
        "headers": headers_json(req.headers()),
        "version": format!("{:?}", req.version()),
        "target": req.uri().path_and_query().map_or("", |p| p.as_str()),
    });
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let response = match (req.method().clone(), path.as_str()) {
        (Method::GET, "/metadata") => fhir(StatusCode::OK, capability_statement(), received),
        (Method::GET, "/Patient") => search(&query, received),
        (Method::GET, p) if p.starts_with("/Patient/") => read_patient(&p["/Patient/".len()..], received),
        (Method::POST, "/_demo/echo") => echo(req.into_body(), received).await,
        (Method::GET, "/_demo/bytes") => bytes(param(&query, "n").unwrap_or(0).min(64 << 20)),
        (Method::GET, "/_demo/slow") => {
            tokio::time::sleep(Duration::from_millis(param(&query, "ms").unwrap_or(0).min(60_000))).await;
            json_response(StatusCode::OK, "application/json", json!({"slept_ms": param(&query, "ms")}), received)
        }
        _ => fhir(StatusCode::NOT_FOUND, outcome("not-found", &format!("no handler for {path}")), received),
    };
    Ok(response)
}

fn read_patient(id: &str, received: Value) -> Response<Body> {
    if !nhs_number::is_valid(id) {
        return fhir(StatusCode::BAD_REQUEST, outcome("invalid", "not a valid NHS number"), received);
    }
    match PATIENTS.iter().find(|p| p.0 == id) {
        Some(p) => fhir(StatusCode::OK, patient(p), received),
        None => fhir(StatusCode::NOT_FOUND, outcome("not-found", "no patient with that NHS number"), received),
    }
}

fn search(query: &str, received: Value) -> Response<Body> {
    let wanted = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("identifier="))
        .map(|v| v.rsplit(['|', '%']).next().unwrap_or(v).trim_start_matches("7C"));
    let entries: Vec<Value> = PATIENTS
        .iter()
        .filter(|p| wanted.is_none_or(|w| w == p.0))
        .map(|p| json!({"fullUrl": format!("Patient/{}", p.0), "resource": patient(p)}))
        .collect();
    fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
        received,
    )
}

async fn echo(body: Incoming, received: Value) -> Response<Body> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut len = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    len += data.len() as u64;
                    ctx.update(data);
                }
            }
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    "application/json",
                    json!({"error": format!("body aborted: {e}"), "bytes": len}),
                    received,
                );
            }
        }
    }
    let sha: String = ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    json_response(StatusCode::OK, "application/json", json!({"bytes": len, "sha256": sha}), received)
}

fn bytes(n: u64) -> Response<Body> {
    const CHUNK: u64 = 64 * 1024;
    let chunks = (0..n.div_ceil(CHUNK)).map(move |i| {
        let size = CHUNK.min(n - i * CHUNK) as usize;
        Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'x'; size])))
    });
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, n)
        .body(BoxBody::new(body))
        .expect("static response parts are valid")
}

fn param(query: &str, name: &str) -> Option<u64> {
    query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).and_then(|v| v.parse().ok())
}

fn patient(p: &(&str, &str, &str, &str, &str)) -> Value {
    let (nhs, family, given, gender, birth) = *p;
    json!({
        "resourceType": "Patient",
        "id": nhs,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth,
    })
}

fn outcome(code: &str, text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    })
}

fn capability_statement() -> Value {
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON],
        "rest": [{"mode": "server", "resource": [{"type": "Patient", "interaction": [{"code": "read"}, {"code": "search-type"}]}]}],
    })
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<&str> = headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("<non-ascii>")).collect();
        map.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
    }
    Value::Object(map)
}

fn fhir(status: StatusCode, body: Value, received: Value) -> Response<Body> {
    json_response(status, FHIR_JSON, body, received)
}

/// `received` is `{"headers": {...}, "version": "HTTP/1.1", "target": "/…"}`: the headers go
/// under `"received_headers"`, the HTTP version under `"received_version"`, the request target
/// under `"received_target"`.
fn json_response(status: StatusCode, content_type: &str, mut body: Value, received: Value) -> Response<Body> {
    if let (Value::Object(map), Value::Object(mut received)) = (&mut body, received) {
        map.insert("received_headers".into(), received.remove("headers").unwrap_or_default());
        map.insert("received_version".into(), received.remove("version").unwrap_or_default());
        map.insert("received_target".into(), received.remove("target").unwrap_or_default());
    }
    let bytes = Bytes::from(serde_json::to_vec(&body).expect("JSON values serialise"));
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(BoxBody::new(Full::new(bytes).map_err(|never: Infallible| match never {})))
        .expect("static response parts are valid")
}
