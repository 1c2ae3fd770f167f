//! The response, whatever the phases decided (DESIGN §2 step 7): a refusal worded in the format
//! the client asked for and audited when it is an access decision, the gateway's headers
//! (`X-Request-ID`, the expiry warning, `Alt-Svc`), a close when the refusal calls for one, and
//! the request's metrics and access-log line.

use http::{Response, header};
use spinegate_vocab::Reason;

use super::audit;
use super::context::RequestCtx;
use crate::body::ResponseBody;
use crate::conn::Conn;
use crate::metrics as m;
use crate::peer::Peer;
use crate::proxy::headers::{X_CERTIFICATE_EXPIRY_WARNING, X_REQUEST_ID};
use crate::runtime::Runtime;
use spinegate_guidance as guidance;

/// The response for `outcome`, with everything a response gets.
pub(super) fn finish(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    outcome: Result<Response<ResponseBody>, Reason>,
) -> Response<ResponseBody> {
    if let Err(reason) = outcome.as_ref()
        && reason.is_access_decision()
        && !ctx.audited
    {
        audit::record(conn, ctx, Err(*reason));
    }
    let (mut response, reason) = match outcome {
        Ok(response) => (response, None),
        Err(reason) => (refusal(conn, runtime, ctx, reason), Some(reason)),
    };
    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID, ctx.request_id.clone());
    if let Some(warning) = &ctx.expiry_warning {
        headers.insert(X_CERTIFICATE_EXPIRY_WARNING, warning.clone());
    }
    // The upstream's own Alt-Svc would send clients to the upstream's origin, not the gateway's.
    match &conn.alt_svc {
        Some(alt_svc) => headers.insert(header::ALT_SVC, alt_svc.clone()),
        None => headers.remove(header::ALT_SVC),
    };
    if reason.is_some_and(|r| r.disposition().close) {
        conn.close.notify_one();
    }
    record(conn, runtime, ctx, response.status(), reason);
    response
}

/// The response for a refusal, worded for the client that asked: the format its `Accept` names,
/// with what this request learned (the card's dates, the roles held, what was asked for).
fn refusal(conn: &Conn, runtime: &Runtime, ctx: &RequestCtx, reason: Reason) -> Response<ResponseBody> {
    let certificate = match reason {
        Reason::CertificateExpired | Reason::CertificateNotYetValid | Reason::CertificateRevoked => {
            conn.peer.as_ref().and_then(Peer::validity)
        }
        _ => None,
    };
    let details = guidance::Details {
        certificate,
        roles: ctx.roles.as_deref().map(|r| &*r.profiles),
        selected: ctx.role.as_ref(),
        requested_role: ctx.requested_role.as_ref().and_then(|v| v.to_str().ok()),
        requested_organisation: ctx.requested_org.as_deref(),
    };
    let answer = guidance::RefusalContext {
        guidance: &runtime.guidance,
        format: guidance::negotiate(ctx.accept.as_ref()),
        details: &details,
        now: conn.services.clock.now().as_secs(),
    };
    guidance::refusal_response(reason, &ctx.request_id, &answer).map(ResponseBody::Right)
}

/// The request's metrics and access-log line.
fn record(conn: &Conn, runtime: &Runtime, ctx: &RequestCtx, status: http::StatusCode, reason: Option<Reason>) {
    let reason_code = reason.map_or("ok", Reason::code);
    let elapsed = ctx.started.elapsed();
    m::request::answered(
        &ctx.route,
        method_label(&ctx.method),
        status,
        reason_code,
        protocol_label(ctx.version),
        elapsed.as_secs_f64(),
    );
    tracing::info!(
        target: "spinegate::access",
        request_id = ctx.request_id.to_str().unwrap_or(""),
        correlation_id = ctx.correlation_id.as_ref().and_then(|v| v.to_str().ok()),
        listener = %runtime.listeners[conn.listener].name,
        client = %conn.remote,
        method = %ctx.method,
        path = ctx.path.as_deref().unwrap_or(""),
        route = ctx.route.as_deref().unwrap_or("none"),
        upstream = ctx.upstream.as_deref().unwrap_or(""),
        user_id = ctx.user_id.as_ref().map_or("", |u| u.as_str()),
        status = status.as_u16(),
        reason = reason_code,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        upstream_ms = ctx.upstream_time.map(|d| d.as_secs_f64() * 1000.0),
    );
}

/// The `protocol` label: how the client spoke to the gateway.
fn protocol_label(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_3 => "h3",
        http::Version::HTTP_2 => "h2",
        http::Version::HTTP_10 => "http/1.0",
        _ => "http/1.1",
    }
}

fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
