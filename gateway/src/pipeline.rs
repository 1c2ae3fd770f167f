//! The per-request pipeline (DESIGN §2): request id and limits, authentication of the connection's
//! certificate, routing, proxying with the header contract, and the response with its expiry
//! warning. One [`RequestCtx`] carries what a request learns along the way, for the response,
//! the access log and the metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use rustls_pki_types::UnixTime;
use spinegate_config::{ClientCertificatePolicy, CrossSite, TokenBinding};
use spinegate_token::TokenError;
use spinegate_token::logout::LogoutError;

use crate::assertion;
use crate::audit::AuditRecord;
use crate::auth::{AssuranceLevel, AuthMethod, Principal};
use crate::canonical::{self, RequestTarget, TargetError};
use crate::conn::{Conn, InFlight};
use crate::error::{self, Reason};
use crate::guidance;
use crate::identity::UserId;
use crate::metrics as m;
use crate::peer::{Peer, PeerRefusal};
use crate::proxy::ForwardError;
use crate::proxy::body::{BodyLimits, GuardedBody};
use crate::proxy::headers::{
    self, NHSD_END_USER_ORGANISATION_ODS, NHSD_SESSION_URID, Outbound, X_CERTIFICATE_EXPIRY_WARNING, X_CORRELATION_ID,
    X_REQUEST_ID,
};
use crate::routing::CompiledRoute;
use crate::runtime::Runtime;
use spinegate_authz::{self as authz, RoleData, Roles};

/// Response body: streamed from the upstream, or generated here.
pub type ResponseBody = Either<Incoming, Full<Bytes>>;

/// Request body: from a TCP connection (HTTP/1.1 or HTTP/2) or an HTTP/3 stream.
pub type RequestBody = Either<Incoming, crate::http3::RequestBody>;

/// What one request learned on its way through.
struct RequestCtx {
    /// The gateway's id for this request (never the client's: it names the audit record and
    /// the assertion's `jti`).
    request_id: HeaderValue,
    /// The client's own id for the request (`X-Correlation-ID`, else its `X-Request-ID`), when
    /// well-formed: passed on and audited, never used as ours.
    correlation_id: Option<HeaderValue>,
    /// The canonical path (or, when it has none, the path as sent, cut short), for the audit
    /// record and the access log.
    path: Option<Box<str>>,
    /// The NHS number the canonical path or the query carries.
    patient: Option<String>,
    route: Option<Arc<str>>,
    upstream: Option<Arc<str>>,
    user_id: Option<UserId>,
    expiry_warning: Option<HeaderValue>,
    upstream_time: Option<Duration>,
    /// How the user authenticated (for the audit record).
    auth: Option<(AuthMethod, AssuranceLevel)>,
    /// The selected role profile.
    role: Option<RoleData>,
    /// The organisation the request named.
    requested_org: Option<String>,
    /// Whether an allow decision was already audited.
    audited: bool,
    /// The request's `Accept`, for the format of a refusal.
    accept: Option<HeaderValue>,
    /// The user's role profiles, once looked up (a refusal page lists them).
    roles: Option<Arc<Roles>>,
    /// The role profile the request named (`NHSD-Session-URID`), as sent.
    requested_role: Option<HeaderValue>,
}

/// Handles one request on `conn`. Never fails: every refusal becomes a response.
pub async fn handle(conn: Arc<Conn>, request: Request<RequestBody>) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let _in_flight = InFlight::begin(&conn.activity);
    let runtime = conn.shared.runtime.load_full();
    let method = request.method().clone();
    let version = request.version();
    let mut ctx = RequestCtx {
        request_id: new_request_id(),
        correlation_id: correlation_id(request.headers()),
        path: None,
        patient: None,
        route: None,
        upstream: None,
        user_id: None,
        expiry_warning: None,
        upstream_time: None,
        auth: None,
        role: None,
        requested_org: None,
        audited: false,
        accept: guidance::accept_of(request.headers()),
        roles: None,
        requested_role: None,
    };
    let outcome = process(&conn, &runtime, &mut ctx, request).await;
    if let Err(reason) = outcome.as_ref()
        && reason.is_access_decision()
        && !ctx.audited
    {
        audit(&conn, &ctx, &method, Err(*reason));
    }
    let (mut response, reason) = match outcome {
        Ok(response) => (response, None),
        Err(reason) => (refusal(&conn, &runtime, &ctx, reason), Some(reason)),
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

    let status = response.status();
    let route = ctx.route.as_deref().unwrap_or("none").to_owned();
    let reason_code = reason.map_or("ok", Reason::code);
    metrics::counter!(
        m::REQUESTS,
        "route" => route.clone(),
        "method" => method_label(&method),
        "status" => status.as_str().to_owned(),
        "reason" => reason_code,
        "protocol" => protocol_label(version),
    )
    .increment(1);
    metrics::histogram!(m::REQUEST_DURATION, "route" => route.clone()).record(started.elapsed().as_secs_f64());
    tracing::info!(
        target: "spinegate::access",
        request_id = ctx.request_id.to_str().unwrap_or(""),
        correlation_id = ctx.correlation_id.as_ref().and_then(|v| v.to_str().ok()),
        listener = %runtime.listeners[conn.listener].name,
        client = %conn.remote,
        method = %method,
        path = ctx.path.as_deref().unwrap_or(""),
        route = %route,
        upstream = ctx.upstream.as_deref().unwrap_or(""),
        user_id = ctx.user_id.as_ref().map_or("", UserId::as_str),
        status = status.as_u16(),
        reason = reason_code,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        upstream_ms = ctx.upstream_time.map(|d| d.as_secs_f64() * 1000.0),
    );
    Ok(response)
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

async fn process(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    request: Request<RequestBody>,
) -> Result<Response<ResponseBody>, Reason> {
    let now = conn.shared.clock.now();
    // A connection whose certificate the handshake let through only so the refusal could be
    // explained (`certificate_problems = "explain"`) gets that refusal on every request.
    if let Some(peer) = &conn.peer
        && let Some(refused) = peer.handshake_refusal(&runtime.trust, &conn.shared.cache, &conn.shared.revocation, now)
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
    let target = canonical_target(conn, ctx, &request)?;
    check_limits(runtime, request.headers())?;
    if target.path.as_str() == runtime.logout_path {
        return Ok(backchannel_logout(conn, runtime, request, now).await);
    }
    if target.path.as_str() == runtime.guidance.whoami_path() {
        return whoami(conn, runtime, ctx, &request, now).await;
    }
    // The route and its rule are found first because authentication needs the route's binding
    // rule (and a public rule needs none), but an unauthenticated request is refused before it
    // can learn whether the route exists.
    let route = runtime.routes.resolve(&target).map_err(|e| {
        tracing::info!(client = %conn.remote, path = %target.path.as_str(), rule = e.label(), "request path refused");
        Reason::InvalidPath
    })?;
    let rule = route.and_then(|r| r.rule_for(request.method().as_str()));
    let public = rule.is_some_and(|r| r.rule.public);
    let mut principal = None;
    if !public {
        let p = authenticate(conn, runtime, ctx, request.headers(), route.map(|r| r.token_binding), now).await?;
        ctx.user_id = Some(p.user_id);
        ctx.auth = Some((p.method, p.assurance));
        ctx.expiry_warning = expiry_warning(&p, now, runtime.expiry_warning);
        principal = Some(p);
    }
    let route = route.ok_or(Reason::NoRoute)?;
    ctx.route = Some(Arc::clone(&route.name));
    // The card is presented by the browser whatever page asks: an unsafe request it carries from
    // another site's page is refused unless the route says otherwise. Tokens are not ambient
    // (a page cannot attach one it does not have), so token requests are not judged here.
    if route.cross_site == CrossSite::Refuse
        && principal.as_ref().is_some_and(|p| p.method == AuthMethod::Smartcard)
        && canonical::origin::is_cross_site(request.method(), request.headers(), target.authority.as_ref())
    {
        tracing::info!(client = %conn.remote, route = %route.name, "cross-site request on a smartcard refused");
        return Err(Reason::CrossSiteRequest);
    }
    let rule = rule.ok_or(Reason::ActivityNotPermitted)?;
    let decision = match &principal {
        Some(p) => {
            // The organisation named matters only where the rule scopes it; elsewhere it is
            // neither checked nor forwarded.
            let requested_org = match rule.rule.organisation_scope {
                true => requested_organisation(route, &target, request.headers())?,
                false => None,
            };
            authorize(conn, runtime, ctx, rule, p, requested_org, request.headers()).await?
        }
        None => Decision::default(),
    };
    let cluster = &runtime.clusters[route.upstream];
    ctx.upstream = Some(Arc::clone(&cluster.name));
    audit(conn, ctx, request.method(), Ok(()));
    ctx.audited = true;

    let chosen = decision.role();
    let organisation = decision.organisation.as_deref();
    let assertion = match (&runtime.assertion, &principal, route.identity_assertion) {
        (Some(signer), Some(p), true) => {
            let subject = assertion::Subject {
                principal: p,
                role: chosen,
                organisation,
                audience: &cluster.name,
                request_id: ctx.request_id.to_str().unwrap_or(""),
                certificate_sha256: conn.peer.as_ref().map(Peer::leaf_sha256),
            };
            metrics::counter!(m::IDENTITY_ASSERTIONS, "route" => route.name.to_string()).increment(1);
            HeaderValue::from_str(&signer.sign(&subject, now.as_secs())).ok()
        }
        _ => None,
    };
    let (mut parts, body) = request.into_parts();
    // The upstream is asked for exactly what was judged: the canonical path, the query as sent.
    parts.uri = target.path_and_query().parse().map_err(|_| Reason::InvalidPath)?;
    let authority = target.authority.as_ref();
    let outbound = Outbound {
        request_id: &ctx.request_id,
        correlation_id: ctx.correlation_id.as_ref(),
        principal: principal.as_ref(),
        role: chosen,
        organisation,
        assertion,
        client_ip: conn.remote.ip(),
        host: authority.map(|a| a.host()),
        expiry_warning: ctx.expiry_warning.as_ref(),
    };
    let body = GuardedBody::new(body, runtime.body_limits(), Arc::clone(&runtime.header_filter));
    let mut upstream_request = Request::from_parts(parts, body);
    let headers = std::mem::take(upstream_request.headers_mut());
    *upstream_request.headers_mut() = headers::to_upstream(headers, &outbound, &runtime.header_filter);

    let sent = Instant::now();
    let result = cluster.forward(upstream_request, authority.map(|a| a.as_str())).await;
    let elapsed = sent.elapsed();
    ctx.upstream_time = Some(elapsed);
    metrics::histogram!(m::UPSTREAM_DURATION, "upstream" => Arc::clone(&cluster.name).to_string())
        .record(elapsed.as_secs_f64());
    match result {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
        Err(e) => {
            let (kind, reason) = match &e {
                ForwardError::Timeout(_) => (Some("timeout"), Reason::UpstreamTimeout),
                ForwardError::Unavailable(_) => (Some("unavailable"), Reason::UpstreamUnavailable),
                // The client's doing, not the upstream's: not an upstream error.
                ForwardError::BodyTooLarge => (None, Reason::RequestTooLarge),
                ForwardError::BodyTooSlow => (None, Reason::RequestTimeout),
                // Nobody is left to read the answer; the status is for the log.
                ForwardError::ClientAborted => (None, Reason::RequestTimeout),
            };
            if let Some(kind) = kind {
                metrics::counter!(m::UPSTREAM_ERRORS, "upstream" => cluster.name.to_string(), "kind" => kind)
                    .increment(1);
            }
            tracing::warn!(
                request_id = ctx.request_id.to_str().unwrap_or(""),
                upstream = %cluster.name,
                error = %error_chain(&e),
                "upstream exchange failed"
            );
            Err(reason)
        }
    }
}

/// What authorisation settled for the upstream: the user's roles, the selected one, and the
/// organisation acted for.
#[derive(Default)]
struct Decision {
    roles: Option<Arc<Roles>>,
    selected: Option<usize>,
    organisation: Option<String>,
}

impl Decision {
    fn role(&self) -> Option<&authz::RoleProfile> {
        self.roles.as_ref().zip(self.selected).map(|(roles, i)| &roles.profiles[i])
    }
}

/// Judges an authenticated request against its route's rule: the organisation it names (where
/// the rule scopes it), the user's roles, the selected role, then the rule.
async fn authorize(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    rule: &authz::CompiledRule,
    principal: &Principal,
    requested_org: Option<&str>,
    headers: &HeaderMap,
) -> Result<Decision, Reason> {
    ctx.requested_org = requested_org.map(str::to_owned);
    let roles = match roles_of(conn, runtime, principal).await {
        Ok(roles) => roles,
        // A rule that needs no role does not wait for the directory to recover.
        Err(_) if !rule.rule.needs_role() => Arc::new(Roles::none()),
        Err(reason) => return Err(reason),
    };
    // Kept for a refusal page, which lists the roles held and the one asked for.
    ctx.roles = Some(Arc::clone(&roles));
    let requested_role = single(headers, &NHSD_SESSION_URID).map_err(|()| Reason::RoleNotHeld)?;
    ctx.requested_role = requested_role.cloned();
    let urid = requested_role.map(|v| v.to_str().map_err(|_| Reason::RoleNotHeld));
    let token_selected = principal.token.as_ref().and_then(|t| t.claims.selected_role.as_deref());
    let chosen = authz::select_role(&roles, urid.transpose()?, token_selected)?;
    ctx.role = chosen.map(|r| r.data.clone());
    rule.judge(&runtime.policy, principal.method, principal.assurance, chosen, requested_org)?;
    // Forwarded only once validated: the requested organisation when the rule checked it against
    // the role, else the role's own.
    let organisation = match (chosen, rule.rule.organisation_scope) {
        (Some(r), true) => Some(requested_org.map_or_else(|| r.data.org.to_string(), str::to_ascii_uppercase)),
        (Some(r), false) => Some(r.data.org.to_string()),
        (None, _) => None,
    };
    let selected = chosen.and_then(|c| roles.profiles.iter().position(|p| std::ptr::eq(p, c)));
    Ok(Decision { roles: Some(roles), selected, organisation })
}

/// The organisation a request names: in the route's organisation path segment and/or
/// `NHSD-End-User-Organisation-ODS`. Two that disagree, or one that is not an ODS code, are an
/// organisation mismatch.
fn requested_organisation<'r>(
    route: &CompiledRoute,
    target: &'r RequestTarget,
    headers: &'r HeaderMap,
) -> Result<Option<&'r str>, Reason> {
    let from_path = route.organisation_in(target.path.as_str());
    let from_header =
        match single(headers, &NHSD_END_USER_ORGANISATION_ODS).map_err(|()| Reason::OrganisationMismatch)? {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| Reason::OrganisationMismatch)?),
        };
    let requested = match (from_path, from_header) {
        (Some(p), Some(h)) if !p.eq_ignore_ascii_case(h) => return Err(Reason::OrganisationMismatch),
        (p, h) => p.or(h),
    };
    match requested {
        Some(org) if !spinegate_vocab::is_ods_code(org) => Err(Reason::OrganisationMismatch),
        other => Ok(other),
    }
}

/// The user's role profiles under the runtime's policy: from the token when one was used, else
/// from the role directory.
async fn roles_of(conn: &Conn, runtime: &Runtime, principal: &Principal) -> Result<Arc<Roles>, Reason> {
    if let Some(token) = &principal.token {
        let claims = &token.claims;
        return Ok(token
            .extension
            .resolve_with(&runtime.policy, || claims.roles.iter().map(crate::auth::tokens::role_data).collect()));
    }
    let directory = conn.shared.directory.load_full();
    let entry = directory.lookup(&principal.user_id).await.map_err(|e| {
        tracing::warn!(user_id = %principal.user_id, error = %e, "role directory lookup failed");
        Reason::RoleDirectoryUnavailable
    })?;
    Ok(entry.slot.resolve(&entry.roles, &runtime.policy))
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
    let answer = error::Answer {
        guidance: &runtime.guidance,
        format: guidance::negotiate(ctx.accept.as_ref()),
        details: &details,
        now: conn.shared.clock.now().as_secs(),
    };
    error::respond_to(reason, &ctx.request_id, &answer)
}

/// `GET /.spinegate/whoami` (`[guidance] whoami_path`): the signed-in identity, as HTML or JSON.
/// Needs an authenticated user, is subject to no route rule, and is never proxied. A role
/// directory that cannot answer leaves the roles out rather than refusing.
async fn whoami(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    request: &Request<RequestBody>,
    now: UnixTime,
) -> Result<Response<ResponseBody>, Reason> {
    ctx.route = Some(Arc::from(WHOAMI_ROUTE));
    if !matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
        return Err(Reason::NoRoute);
    }
    let principal = authenticate(conn, runtime, ctx, request.headers(), None, now).await?;
    ctx.user_id = Some(principal.user_id);
    ctx.auth = Some((principal.method, principal.assurance));
    ctx.expiry_warning = expiry_warning(&principal, now, runtime.expiry_warning);
    let roles = roles_of(conn, runtime, &principal).await.ok();
    let urid = request.headers().get(&NHSD_SESSION_URID).and_then(|v| v.to_str().ok());
    let token_selected = principal.token.as_ref().and_then(|t| t.claims.selected_role.as_deref());
    let selected = roles.as_deref().and_then(|r| authz::select_role(r, urid, token_selected).ok().flatten());
    let page = guidance::WhoAmI {
        principal: &principal,
        roles: roles.as_deref().map(|r| &*r.profiles),
        selected: selected.map(|r| &r.data),
        request_id: ctx.request_id.to_str().unwrap_or(""),
        now: now.as_secs(),
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
        error::page_headers(headers);
    }
    Ok(response)
}

/// The `route` label and access-log route of the identity page.
const WHOAMI_ROUTE: &str = "spinegate_whoami";

/// Queues the audit record of a decision.
fn audit(conn: &Conn, ctx: &RequestCtx, method: &http::Method, decision: Result<(), Reason>) {
    let (auth_method, authenticator) = match ctx.auth.map(|(m, _)| m) {
        None => (None, None),
        Some(AuthMethod::Smartcard) => (Some("smartcard"), Some("smartcard")),
        Some(AuthMethod::Token { authenticator }) => (Some("token"), Some(authenticator.as_str())),
    };
    let role = ctx.role.as_ref();
    let decision_allowed = decision.is_ok();
    conn.shared.audit.record(AuditRecord {
        time: audit_time(conn.shared.clock.now()),
        request_id: ctx.request_id.to_str().unwrap_or("").to_owned(),
        correlation_id: ctx.correlation_id.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned),
        decision: if decision_allowed { "allow" } else { "deny" },
        reason: decision.err().map_or("ok", Reason::code),
        client: conn.remote.ip().to_string(),
        method: method.as_str().to_owned(),
        path: ctx.path.clone(),
        route: ctx.route.clone(),
        user_id: ctx.user_id.map(|u| u.as_str().to_owned()),
        auth_method,
        authenticator,
        assurance: ctx.auth.map(|(_, a)| a.as_str()),
        role_profile: role.map(|r| Arc::clone(&r.id)),
        role_code: role.map(|r| Arc::clone(&r.role_code)),
        organisation: role.map(|r| Arc::clone(&r.org)),
        requested_organisation: ctx.requested_org.clone(),
        patient: ctx.patient.clone(),
    });
    let route = ctx.route.as_deref().unwrap_or("none").to_owned();
    let reason = decision.err().map_or("ok", Reason::code);
    metrics::counter!(m::AUTHZ_DECISIONS, "route" => route, "decision" => if decision_allowed { "allow" } else { "deny" }, "reason" => reason)
        .increment(1);
}

fn audit_time(now: UnixTime) -> String {
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// A new request id (a v4 UUID). A client's `X-Request-ID` never becomes it: the id names the
/// audit record and the identity assertion's `jti`, which a client must not choose.
fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).expect("a UUID is a valid header value")
}

/// The client's own id for the request: `X-Correlation-ID`, else its `X-Request-ID` — when
/// well-formed (visible ASCII without quotes or separators, at most 128 bytes).
fn correlation_id(headers: &HeaderMap) -> Option<HeaderValue> {
    [X_CORRELATION_ID, X_REQUEST_ID]
        .iter()
        .find_map(|name| headers.get(name).filter(|v| headers::is_token_like(v)).cloned())
}

/// The one value of a header the client may send at most once; several are refused.
fn single<'h>(headers: &'h HeaderMap, name: &http::HeaderName) -> Result<Option<&'h HeaderValue>, ()> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() { Err(()) } else { Ok(first) }
}

/// The request's canonical target (DESIGN §2 step 0), recorded for the audit record and access
/// log; a target that cannot be made unambiguous is refused.
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
            // What was sent, cut short, so the audit record shows the attempt.
            let raw = request.uri().path();
            let mut end = raw.len().min(MAX_AUDITED_PATH);
            while !raw.is_char_boundary(end) {
                end -= 1;
            }
            ctx.path = Some(raw[..end].into());
            tracing::info!(client = %conn.remote, rule = e.label(), "request target refused");
            Err(match e {
                TargetError::Path(_) => Reason::InvalidPath,
                TargetError::Authority(_) => Reason::InvalidHost,
            })
        }
    }
}

/// The most bytes of a refused path an audit record keeps.
const MAX_AUDITED_PATH: usize = 512;

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

/// Who the request acts as: the bearer token's user when one is sent (bound to the
/// connection's certificate when the token or the route says so), else the smartcard's. A
/// certificate on the connection is re-checked either way: a revoked card does not become usable
/// by adding a token.
async fn authenticate(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    binding: Option<TokenBinding>,
    now: UnixTime,
) -> Result<Principal, Reason> {
    let shared = &conn.shared;
    let certificate = match &conn.peer {
        None => None,
        Some(peer) => Some(peer.check(&runtime.trust, &shared.cache, &shared.revocation, now).await.map_err(|refusal| {
            let reason = match &refusal {
                PeerRefusal::Certificate(failure) => Reason::from(failure),
                PeerRefusal::RevocationUnknown => Reason::RevocationUnavailable,
            };
            tracing::info!(client = %conn.remote, refusal = ?refusal, reason = reason.code(), "certificate refused on an open connection");
            reason
        })?),
    };
    let Some(token) = bearer_token(headers)? else {
        let entry = certificate.ok_or(Reason::ClientCertificateRequired)?;
        let identity = Arc::clone(entry.value());
        return Ok(Principal {
            user_id: identity.user_id,
            method: AuthMethod::Smartcard,
            assurance: AssuranceLevel::Aal3,
            certificate: Some(identity),
            token: None,
        });
    };
    let verified = shared.tokens.verify(token, now.as_secs()).await.map_err(|e| {
        tracing::info!(client = %conn.remote, error = %e, label = e.label(), "bearer token refused");
        if e.is_expiry() { Reason::TokenExpired } else { Reason::InvalidToken }
    })?;
    let claims = &verified.claims;
    let peer = conn.peer.as_ref();
    match (claims.bound_certificate, binding.unwrap_or(TokenBinding::IfPresent)) {
        // RFC 8705: a bound token is good only on a connection presenting that certificate.
        (Some(thumbprint), _) => {
            if peer.is_none_or(|p| p.leaf_sha256() != &thumbprint) {
                return Err(Reason::TokenBindingMismatch);
            }
        }
        (None, TokenBinding::Required) => return Err(Reason::TokenBindingMismatch),
        // An unbound token on a mutual-TLS connection must at least be the same person's.
        (None, TokenBinding::IfPresent) => {
            if certificate.as_ref().is_some_and(|c| c.value().user_id != claims.user_id) {
                return Err(Reason::TokenBindingMismatch);
            }
        }
    }
    // The deny list names people, not cards: a `user` entry refuses a token user as it refuses
    // the card (whose revocation check reads the same entry, so a card never gets here denied).
    // Read from the same snapshot on every request, so it takes effect within the same bound.
    if shared.revocation.snapshot().deny_list().denies_user(claims.user_id.as_str()) {
        tracing::info!(client = %conn.remote, user_id = %claims.user_id, "token user on the deny list refused");
        ctx.user_id = Some(claims.user_id);
        return Err(Reason::UserSuspended);
    }
    Ok(Principal {
        user_id: claims.user_id,
        method: AuthMethod::Token { authenticator: claims.authenticator },
        assurance: claims.assurance,
        certificate: certificate.map(|c| Arc::clone(c.value())),
        token: Some(Arc::clone(&verified)),
    })
}

/// The bearer token in `Authorization`, if any. A malformed `Authorization` header is an invalid
/// token, not an absent one.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Reason> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| Reason::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(Reason::InvalidToken),
    }
}

/// OpenID Connect Back-Channel Logout: `POST` with a form body `logout_token=<JWT>`. Answers 200
/// on success and 400 `{"error":"invalid_request"}` otherwise (spec §2.8), never cached.
async fn backchannel_logout(
    conn: &Conn,
    runtime: &Runtime,
    request: Request<RequestBody>,
    now: UnixTime,
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
    // Read before anything authenticates it, so held tight: no more than a logout token
    // (with its form field name and a few escapes) and never slowly.
    let max_bytes = conn.shared.tokens.max_token_bytes() as u64 + LOGOUT_FORM_OVERHEAD;
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
        Some(token) => conn.shared.tokens.logout(&token, now.as_secs()).await,
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

/// Room in a logout body beyond the token itself: `logout_token=` and a few escapes.
const LOGOUT_FORM_OVERHEAD: u64 = 256;

/// `<days> days; not-after=<RFC 3339>` when the certificate ends within `window`.
fn expiry_warning(principal: &Principal, now: UnixTime, window: Duration) -> Option<HeaderValue> {
    let identity = principal.certificate.as_ref()?;
    let left = identity.not_after.saturating_sub(now.as_secs());
    if left > window.as_secs() {
        return None;
    }
    let days = left / 86_400;
    let text = format!("{days} days; not-after={}", identity.not_after_rfc3339);
    HeaderValue::from_str(&text).ok()
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

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
