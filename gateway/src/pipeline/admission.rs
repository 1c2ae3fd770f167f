//! Admission, before anything else is looked at: a connection whose certificate the handshake
//! let through only to explain its refusal, a connection without the card its listener requires,
//! the canonical request target (DESIGN §2 step 0), and the size limits.

use http::{HeaderMap, Request, header};
use spinegate_config::ClientCertificatePolicy;
use spinegate_vocab::Reason;

use super::context::RequestCtx;
use crate::body::RequestBody;
use crate::conn::Conn;
use crate::runtime::Runtime;
use spinegate_canonical::RequestTarget;

/// The most bytes of a refused path an audit record keeps.
const MAX_AUDITED_PATH: usize = 512;

/// Admits a request, or refuses it before any route is looked at; returns its canonical target.
pub(super) fn admit(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    request: &Request<RequestBody>,
) -> Result<RequestTarget, Reason> {
    let services = &conn.services;
    // A connection whose certificate the handshake let through only so the refusal could be
    // explained (`certificate_problems = "explain"`) gets that refusal on every request.
    if let Some(peer) = &conn.peer
        && let Some(refused) = peer.handshake_refusal(&runtime.trust, &services.cache, &services.revocation, ctx.now)
    {
        tracing::debug!(client = %conn.remote, reason = refused.failure.label(), "request on a connection with a refused certificate");
        ctx.user_id = refused.user_id;
        return Err(Reason::from(&refused.failure));
    }
    // A listener that requires a card refuses connections without one at the handshake; a
    // resumed TLS session skips that check, and a session issued while the listener only
    // requested a card (before a reload) carries none. Judged per request, public routes too.
    if conn.peer.is_none() && runtime.listeners[conn.listener].client_certificate == ClientCertificatePolicy::Require {
        tracing::info!(client = %conn.remote, "request without a client certificate on a listener that requires one");
        return Err(Reason::ClientCertificateRequired);
    }
    let target = canonical_target(conn, ctx, request)?;
    check_limits(runtime, request.headers())?;
    Ok(target)
}

/// The request's canonical target, recorded for the audit record and access log; a target that
/// cannot be made unambiguous is refused (and the path as sent, cut short, is recorded).
fn canonical_target(
    conn: &Conn,
    ctx: &mut RequestCtx,
    request: &Request<RequestBody>,
) -> Result<RequestTarget, Reason> {
    match RequestTarget::of(request.uri(), request.headers()) {
        Ok(target) => {
            ctx.path = Some(target.path.as_str().into());
            ctx.patient = crate::audit::patient_in(target.path.as_str(), target.query.as_deref());
            Ok(target)
        }
        Err(e) => {
            let raw = request.uri().path();
            let mut end = raw.len().min(MAX_AUDITED_PATH);
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            ctx.path = Some(raw[..end].into());
            tracing::info!(client = %conn.remote, rule = e.label(), "request target refused");
            Err(Reason::from(e))
        }
    }
}

fn check_limits(runtime: &Runtime, headers: &HeaderMap) -> Result<(), Reason> {
    // name + ": " + value + CRLF, as on the wire in HTTP/1.1.
    let size: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if size > runtime.limits.max_request_header_bytes.get() {
        return Err(Reason::HeadersTooLarge);
    }
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > runtime.limits.max_request_body_bytes) {
        return Err(Reason::RequestTooLarge);
    }
    Ok(())
}
