//! The admin listener, on its own address: `/healthz` (the process is alive), `/readyz` (listeners
//! are up and the gateway is not draining), `/metrics` (Prometheus text),
//! `/.well-known/jwks.json` (the identity assertion keys, when configured), and
//! `/revocation/deny` — the emergency deny list of this replica: `GET` lists it, `POST` adds and
//! `DELETE` removes the `user <id>` / `serial <hex>` lines in the body. The deny-list endpoint
//! needs `Authorization: Bearer <token>` with the token from `admin_token_file`, and is absent
//! without one.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use spinegate_config::Admin;
use spinegate_revocation::deny::DenyEntry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics as m;
use crate::runtime::Shared;

/// Serves the admin endpoints until `stop` changes. The listener is for operators and probes, but
/// anything that can reach it must not be able to hold it: connections are capped (more are
/// closed at once, so a probe never waits behind a flood), request heads and idle keep-alive
/// are bounded by `header_read_timeout`, and writes by the client-facing `send_timeout`.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, config: Admin, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.get()));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            metrics::counter!(m::ADMIN_CONNECTIONS_REFUSED).increment(1);
            drop(stream);
            continue;
        };
        let shared = Arc::clone(&shared);
        let send_timeout = shared.services.runtime.load().limits.send_timeout;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(Arc::clone(&shared), req));
            let io = TokioIo::new(crate::conn::SendTimeout::new(stream, send_timeout));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(config.header_read_timeout)
                .serve_connection(io, service)
                .await;
            drop(permit);
        });
    }
}

async fn answer(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/revocation/deny" {
        return Ok(deny_list(&shared, req).await);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n"));
    }
    Ok(match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let (ready, report) = readiness(&shared);
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let mut response = text(status, "");
            *response.body_mut() = Full::new(Bytes::from(report));
            response
        }
        "/metrics" => {
            let _ = readiness(&shared);
            shared.services.cache.sync();
            metrics::gauge!(m::CHAIN_CACHE_ENTRIES).set(shared.services.cache.len() as f64);
            let now = shared.services.clock.now().as_secs();
            crate::revocation::publish_gauges(&shared.services.revocation, now);
            for (issuer, age) in shared.services.tokens.key_ages(now) {
                // An issuer whose keys were never fetched (no token seen yet) has no age.
                if let Some(age) = age {
                    metrics::gauge!(m::JWKS_AGE, "issuer" => issuer.to_string()).set(age as f64);
                }
            }
            let mut response = text(StatusCode::OK, "");
            *response.body_mut() = Full::new(Bytes::from(shared.metrics.render()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/.well-known/jwks.json" => match &shared.services.runtime.load().assertion {
            Some(signer) => {
                let mut response = text(StatusCode::OK, "");
                *response.body_mut() = Full::new(Bytes::from(signer.jwks().to_owned()));
                let h = response.headers_mut();
                h.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/jwk-set+json"));
                h.insert(header::CACHE_CONTROL, http::HeaderValue::from_static("max-age=60"));
                response
            }
            None => text(StatusCode::NOT_FOUND, "no [identity_assertion] is configured\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// The deny-list endpoint.
async fn deny_list(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(token) = &shared.admin_token else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::as_bytes);
    let authorised = presented.is_some_and(|p| aws_lc_rs::constant_time::verify_slices_are_equal(p, token).is_ok());
    if !authorised {
        tracing::warn!(method = %req.method(), "deny-list request without a valid admin token");
        let mut response = text(StatusCode::UNAUTHORIZED, "admin token required\n");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer realm=\"spinegate-admin\""));
        return response;
    }
    let method = req.method().clone();
    if method == Method::GET {
        let listing: String =
            shared.services.revocation.snapshot().deny_list().entries().map(|e| format!("{e}\n")).collect();
        let mut response = text(StatusCode::OK, "");
        *response.body_mut() = Full::new(Bytes::from(listing));
        return response;
    }
    if method != Method::POST && method != Method::DELETE {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET, POST or DELETE\n");
    }
    let body = match http_body_util::Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB\n"),
    };
    let Ok(body) = std::str::from_utf8(&body) else {
        return text(StatusCode::BAD_REQUEST, "body is not UTF-8\n");
    };
    let mut entries = Vec::new();
    for (i, line) in body.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        match DenyEntry::parse(content) {
            Ok(entry) => entries.push(entry),
            Err(message) => {
                let mut response = text(StatusCode::BAD_REQUEST, "");
                *response.body_mut() = Full::new(Bytes::from(format!("line {}: {message}\n", i + 1)));
                return response;
            }
        }
    }
    let count = entries.len();
    if method == Method::POST {
        tracing::warn!(entries = ?entries.iter().map(ToString::to_string).collect::<Vec<_>>(), "deny-list entries added by the admin endpoint");
        shared.services.revocation.deny_add(entries);
    } else {
        tracing::warn!(entries = ?entries.iter().map(ToString::to_string).collect::<Vec<_>>(), "deny-list entries removed by the admin endpoint");
        shared.services.revocation.deny_remove(&entries);
    }
    let mut response = text(StatusCode::OK, "");
    *response.body_mut() = Full::new(Bytes::from(format!(
        "{count} entries {}\n",
        if method == Method::POST { "added" } else { "removed" }
    )));
    response
}

/// Whether the gateway should receive traffic, and a report saying why: started and not
/// draining, at least one current trust anchor, no loaded CRL past its nextUpdate, no token
/// issuer's keys past their maximum staleness. The last reload's failure, if any, is reported
/// without making the gateway unready: the previous configuration is still serving.
pub(crate) fn readiness(shared: &Shared) -> (bool, String) {
    let now = shared.services.clock.now();
    let mut problems = Vec::new();
    if !shared.ready.load(Ordering::Acquire) {
        problems.push("starting or draining".to_owned());
    }
    let runtime = shared.services.runtime.load();
    if !runtime.trust.has_current_anchor(now) {
        problems.push("no trust anchor is inside its validity period".to_owned());
    }
    for crl in shared.services.revocation.stats().crls {
        if let Some(next) = crl.next_update
            && next < now.as_secs()
        {
            problems.push(format!("CRL {} is past its nextUpdate by {} s", crl.source, now.as_secs() - next));
        }
    }
    for issuer in shared.services.tokens.stale_issuers(now.as_secs()) {
        problems.push(format!("token issuer {issuer}: signing keys are past their maximum staleness"));
    }
    let ready = problems.is_empty();
    metrics::gauge!(m::READY).set(if ready { 1.0 } else { 0.0 });
    let mut report = if ready { "ready\n".to_owned() } else { "not ready\n".to_owned() };
    for p in &problems {
        report.push_str(&format!("- {p}\n"));
    }
    let status = shared.reload_status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    if let Some((at, error)) = status.last_failure {
        report.push_str(&format!(
            "note: the last reload (at {at}) failed and the previous configuration serves: {error}\n"
        ));
    }
    (ready, report)
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
