//! The gateway's own resources, answered here and never proxied: OpenID Connect back-channel
//! logout, and the signed-in user's identity page.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full};
use spinegate_authz::select_role;
use spinegate_token::TokenError;
use spinegate_token::logout::LogoutError;
use spinegate_vocab::Reason;

use super::authenticate;
use super::authorise::roles_of;
use super::context::RequestCtx;
use crate::body::{RequestBody, ResponseBody};
use crate::conn::Conn;
use crate::metrics as m;
use crate::proxy::body::{BodyLimits, GuardedBody};
use crate::proxy::headers::NHSD_SESSION_URID;
use crate::runtime::Runtime;
use spinegate_canonical::RequestTarget;
use spinegate_guidance as guidance;

/// One of the gateway's own resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `[tokens] backchannel_logout_path`.
    BackchannelLogout,
    /// `[guidance] whoami_path`.
    WhoAmI,
}

/// The gateway's own resource at `target`, if it is one.
pub(super) fn of(runtime: &Runtime, target: &RequestTarget) -> Option<Endpoint> {
    let path = target.path.as_str();
    if path == runtime.logout_path {
        Some(Endpoint::BackchannelLogout)
    } else if path == runtime.guidance.whoami_path() {
        Some(Endpoint::WhoAmI)
    } else {
        None
    }
}

/// Room in a logout body beyond the token itself: `logout_token=` and a few escapes.
const LOGOUT_FORM_OVERHEAD: u64 = 256;

/// The `route` label and access-log route of the identity page.
const WHOAMI_ROUTE: &str = "spinegate_whoami";

/// OpenID Connect Back-Channel Logout: `POST` with a form body `logout_token=<JWT>`. Answers 200
/// on success and 400 `{"error":"invalid_request"}` otherwise (spec §2.8), never cached.
pub(super) async fn backchannel_logout(
    conn: &Conn,
    runtime: &Runtime,
    request: Request<RequestBody>,
) -> Response<ResponseBody> {
    let respond = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(body.as_bytes()))));
        *response.status_mut() = status;
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    };
    if request.method() != http::Method::POST {
        return respond(StatusCode::METHOD_NOT_ALLOWED, r#"{"error":"invalid_request"}"#);
    }
    let services = &conn.services;
    // Read before anything authenticates it, so held tight: no more than a logout token
    // (with its form field name and a few escapes) and never slowly.
    let max_bytes = services.tokens.max_token_bytes() as u64 + LOGOUT_FORM_OVERHEAD;
    let limits = BodyLimits { max_bytes, ..runtime.body_limits() };
    let body = match GuardedBody::new(request.into_body(), limits, Arc::clone(&runtime.header_filter)).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            tracing::info!(client = %conn.remote, error = %e, "back-channel logout body refused");
            return respond(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#);
        }
    };
    let token = std::str::from_utf8(&body)
        .ok()
        .and_then(|form| form.split('&').find_map(|kv| kv.strip_prefix("logout_token=")))
        .map(|t| t.replace("%2E", ".").replace("%2e", "."));
    let outcome = match token {
        Some(token) => services.tokens.logout(&token, services.clock.now().as_secs()).await,
        None => Err(TokenError::Logout(LogoutError::Invalid("no logout_token"))),
    };
    let label = outcome.as_ref().err().map_or("ok", TokenError::label);
    metrics::counter!(m::BACKCHANNEL_LOGOUTS, "result" => label).increment(1);
    match outcome {
        Ok(()) => respond(StatusCode::OK, "{}"),
        Err(e) => {
            tracing::warn!(client = %conn.remote, error = %e, "back-channel logout refused");
            respond(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request"}"#)
        }
    }
}

/// `GET /.spinegate/whoami` (`[guidance] whoami_path`): the signed-in identity, as HTML or JSON.
/// Needs an authenticated user, is subject to no route rule, and is never proxied. A role
/// directory that cannot answer leaves the roles out rather than refusing.
pub(super) async fn whoami(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
) -> Result<Response<ResponseBody>, Reason> {
    ctx.route = Some(Arc::from(WHOAMI_ROUTE));
    if !matches!(ctx.method, http::Method::GET | http::Method::HEAD) {
        return Err(Reason::NoRoute);
    }
    let principal = authenticate::principal(conn, runtime, ctx, headers, None).await?;
    let roles = roles_of(conn, runtime, &principal).await.ok();
    let urid = headers.get(&NHSD_SESSION_URID).and_then(|v| v.to_str().ok());
    let token_selected = principal.token.as_ref().and_then(|t| t.claims.selected_role.as_deref());
    let selected = roles.as_deref().and_then(|r| select_role(r, urid, token_selected).ok().flatten());
    let page = guidance::WhoAmI {
        user_id: &principal.user_id,
        method: principal.method,
        assurance: principal.assurance,
        certificate_not_after: principal.certificate.as_ref().map(|c| c.not_after),
        token: principal
            .token
            .as_ref()
            .map(|t| guidance::TokenShown { issuer_name: &t.issuer_name, expires: t.claims.expires }),
        roles: roles.as_deref().map(|r| &*r.profiles),
        selected: selected.map(|r| &r.data),
        request_id: ctx.request_id.to_str().unwrap_or(""),
        now: ctx.now.as_secs(),
        renewal_window: runtime.expiry_warning,
    };
    let format = guidance::negotiate(ctx.accept.as_ref());
    let (content_type, body) = runtime.guidance.whoami(format, &page);
    let mut response = Response::new(Either::Right(Full::new(body)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    if format == guidance::Format::Html {
        guidance::page_headers(headers);
    }
    Ok(response)
}
