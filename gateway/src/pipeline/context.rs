//! What one request learns on its way through the phases: read by the later phases, the audit
//! record, the refusal page, the access log and the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, Request, Version};
use rustls_pki_types::UnixTime;
use spinegate_authz::{RoleData, Roles};
use spinegate_vocab::{AssuranceLevel, AuthMethod, UserId};

use crate::body::RequestBody;
use crate::proxy::headers::{self, X_CORRELATION_ID, X_REQUEST_ID};
use spinegate_guidance as guidance;

/// What one request learned on its way through.
#[derive(Debug)]
pub(super) struct RequestCtx {
    /// When it began (monotonic, for durations).
    pub started: Instant,
    /// The gateway clock at its start: every check of this request uses this instant.
    pub now: UnixTime,
    /// Its method.
    pub method: Method,
    /// The HTTP version the client spoke.
    pub version: Version,
    /// The gateway's id for this request (never the client's: it names the audit record and
    /// the assertion's `jti`).
    pub request_id: HeaderValue,
    /// The client's own id for the request (`X-Correlation-ID`, else its `X-Request-ID`), when
    /// well-formed: passed on and audited, never used as ours.
    pub correlation_id: Option<HeaderValue>,
    /// The canonical path (or, when it has none, the path as sent, cut short), for the audit
    /// record and the access log.
    pub path: Option<Box<str>>,
    /// The NHS number the canonical path or the query carries.
    pub patient: Option<String>,
    /// The route's name, once the request is judged by one.
    pub route: Option<Arc<str>>,
    /// The upstream cluster's name, once chosen.
    pub upstream: Option<Arc<str>>,
    /// Who the request acts as, once known.
    pub user_id: Option<UserId>,
    /// `X-Certificate-Expiry-Warning`, when the card ends within the renewal window.
    pub expiry_warning: Option<HeaderValue>,
    /// How long the upstream took to answer.
    pub upstream_time: Option<Duration>,
    /// How the user authenticated (for the audit record).
    pub auth: Option<(AuthMethod, AssuranceLevel)>,
    /// The selected role profile.
    pub role: Option<RoleData>,
    /// The organisation the request named.
    pub requested_org: Option<String>,
    /// Whether an allow decision was already audited.
    pub audited: bool,
    /// The request's `Accept`, for the format of a refusal.
    pub accept: Option<HeaderValue>,
    /// The user's role profiles, once looked up (a refusal page lists them).
    pub roles: Option<Arc<Roles>>,
    /// The role profile the request named (`NHSD-Session-URID`), as sent.
    pub requested_role: Option<HeaderValue>,
}

impl RequestCtx {
    /// The context of `request`, begun at `now`.
    pub(super) fn new(request: &Request<RequestBody>, now: UnixTime) -> Self {
        Self {
            started: Instant::now(),
            now,
            method: request.method().clone(),
            version: request.version(),
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
        }
    }
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
