//! The one place failures become responses (DESIGN §4). Every refusal is a [`Reason`]; one
//! exhaustive `match` gives its status, whether the connection closes, `Retry-After` and
//! `WWW-Authenticate`, another its FHIR issue type. The body is in the format the client asked
//! for ([`crate::guidance::negotiate`]): an HTML page for a person, a FHIR `OperationOutcome`, or
//! RFC 9457 `application/problem+json` — the same status and stable reason code in each, with the
//! request id and what to do now. No internal detail reaches the client: the log line has it.

use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::guidance::{Details, Format, Guidance, Refusal};
use crate::pipeline::ResponseBody;
use crate::trust::CertFailure;

/// Why a request was refused. The code ([`Reason::code`]) is stable: clients, dashboards and the
/// `reason` metric label depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No client certificate (and no other credential) was presented.
    ClientCertificateRequired,
    /// The connection's certificate has expired since the handshake (or on a resumed session).
    CertificateExpired,
    /// The connection's certificate is not valid yet.
    CertificateNotYetValid,
    /// The connection's certificate no longer validates (trust anchors changed …).
    CertificateInvalid,
    /// The certificate is revoked.
    CertificateRevoked,
    /// The bearer token is malformed, unsigned, or otherwise unacceptable.
    InvalidToken,
    /// The bearer token has expired.
    TokenExpired,
    /// The token is bound to a different certificate (RFC 8705).
    TokenBindingMismatch,
    /// The selected role profile is not one the user holds.
    RoleNotHeld,
    /// The user holds several role profiles and named none.
    RoleNotSelected,
    /// The role does not permit the route's activities.
    ActivityNotPermitted,
    /// The requested organisation is not the role's.
    OrganisationMismatch,
    /// The authentication assurance level is below the route's minimum.
    AssuranceTooLow,
    /// The authenticator kind is not allowed on the route.
    AuthenticatorNotAllowed,
    /// No route matches host and path.
    NoRoute,
    /// The request body is larger than allowed.
    RequestTooLarge,
    /// The request headers are larger than allowed.
    HeadersTooLarge,
    /// The upstream could not be reached or failed mid-exchange.
    UpstreamUnavailable,
    /// No revocation answer could be had and policy refuses `Unknown`.
    RevocationUnavailable,
    /// The role directory could not say which role profiles the user holds.
    RoleDirectoryUnavailable,
    /// The gateway is shedding load.
    Overloaded,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The request path cannot be made unambiguous (canonical path rules).
    InvalidPath,
    /// The request's `Host` is malformed, repeated, or disagrees with its target's authority.
    InvalidHost,
    /// The user is on the emergency deny list, however they authenticated.
    UserSuspended,
    /// An unsafe request a card holder's browser sent from another site.
    CrossSiteRequest,
    /// The client sent its request body too slowly.
    RequestTimeout,
}

/// How a [`Reason`] is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disposition {
    /// HTTP status.
    pub status: StatusCode,
    /// Close the connection after answering: nothing more on it can succeed.
    pub close: bool,
    /// `Retry-After` seconds.
    pub retry_after: Option<u32>,
    /// Send `WWW-Authenticate: Bearer` (RFC 6750).
    pub bearer_challenge: bool,
    /// Short human title for the problem body.
    pub title: &'static str,
}

impl Reason {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::ClientCertificateRequired => "client_certificate_required",
            Reason::CertificateExpired => "certificate_expired",
            Reason::CertificateNotYetValid => "certificate_not_yet_valid",
            Reason::CertificateInvalid => "certificate_invalid",
            Reason::CertificateRevoked => "certificate_revoked",
            Reason::InvalidToken => "invalid_token",
            Reason::TokenExpired => "token_expired",
            Reason::TokenBindingMismatch => "token_binding_mismatch",
            Reason::RoleNotHeld => "role_not_held",
            Reason::RoleNotSelected => "role_not_selected",
            Reason::ActivityNotPermitted => "activity_not_permitted",
            Reason::OrganisationMismatch => "organisation_mismatch",
            Reason::AssuranceTooLow => "assurance_too_low",
            Reason::AuthenticatorNotAllowed => "authenticator_not_allowed",
            Reason::NoRoute => "no_route",
            Reason::RequestTooLarge => "request_too_large",
            Reason::HeadersTooLarge => "headers_too_large",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::RevocationUnavailable => "revocation_unavailable",
            Reason::RoleDirectoryUnavailable => "role_directory_unavailable",
            Reason::Overloaded => "overloaded",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::InvalidPath => "invalid_path",
            Reason::InvalidHost => "invalid_host",
            Reason::UserSuspended => "user_suspended",
            Reason::CrossSiteRequest => "cross_site_request",
            Reason::RequestTimeout => "request_timeout",
        }
    }

    /// How this reason is answered. Exhaustive on purpose: a new reason does not compile until it
    /// has a status here.
    pub fn disposition(self) -> Disposition {
        use StatusCode as S;
        let d = |status, close, retry_after, bearer_challenge, title| Disposition {
            status,
            close,
            retry_after,
            bearer_challenge,
            title,
        };
        match self {
            Reason::ClientCertificateRequired => d(S::UNAUTHORIZED, false, None, false, "Client certificate required"),
            // The certificate will not get better on this connection: close it so the client
            // reconnects with another.
            Reason::CertificateExpired => d(S::UNAUTHORIZED, true, None, false, "Certificate expired"),
            Reason::CertificateNotYetValid => d(S::UNAUTHORIZED, true, None, false, "Certificate not yet valid"),
            Reason::CertificateInvalid => d(S::UNAUTHORIZED, true, None, false, "Certificate not accepted"),
            Reason::CertificateRevoked => d(S::UNAUTHORIZED, true, None, false, "Certificate revoked"),
            Reason::InvalidToken => d(S::UNAUTHORIZED, false, None, true, "Invalid token"),
            Reason::TokenExpired => d(S::UNAUTHORIZED, false, None, true, "Token expired"),
            Reason::TokenBindingMismatch => d(S::UNAUTHORIZED, false, None, true, "Token bound to another certificate"),
            Reason::RoleNotHeld => d(S::FORBIDDEN, false, None, false, "Role not held"),
            Reason::RoleNotSelected => d(S::FORBIDDEN, false, None, false, "Role not selected"),
            Reason::ActivityNotPermitted => d(S::FORBIDDEN, false, None, false, "Activity not permitted"),
            Reason::OrganisationMismatch => d(S::FORBIDDEN, false, None, false, "Organisation mismatch"),
            Reason::AssuranceTooLow => d(S::FORBIDDEN, false, None, false, "Assurance level too low"),
            Reason::AuthenticatorNotAllowed => d(S::FORBIDDEN, false, None, false, "Authenticator not allowed"),
            Reason::NoRoute => d(S::NOT_FOUND, false, None, false, "No route"),
            // The unread body may still be arriving; closing avoids reading it to find the next request.
            Reason::RequestTooLarge => d(S::PAYLOAD_TOO_LARGE, true, None, false, "Request too large"),
            Reason::HeadersTooLarge => {
                d(S::REQUEST_HEADER_FIELDS_TOO_LARGE, true, None, false, "Request headers too large")
            }
            Reason::UpstreamUnavailable => d(S::BAD_GATEWAY, false, None, false, "Upstream unavailable"),
            Reason::RevocationUnavailable => {
                d(S::SERVICE_UNAVAILABLE, false, Some(5), false, "Revocation status unavailable")
            }
            Reason::RoleDirectoryUnavailable => {
                d(S::SERVICE_UNAVAILABLE, false, Some(5), false, "Role directory unavailable")
            }
            Reason::Overloaded => d(S::SERVICE_UNAVAILABLE, false, Some(1), false, "Overloaded"),
            Reason::UpstreamTimeout => d(S::GATEWAY_TIMEOUT, false, None, false, "Upstream timeout"),
            Reason::InvalidPath => d(S::BAD_REQUEST, false, None, false, "Invalid path"),
            Reason::InvalidHost => d(S::BAD_REQUEST, false, None, false, "Invalid host"),
            Reason::UserSuspended => d(S::FORBIDDEN, false, None, false, "Access suspended"),
            Reason::CrossSiteRequest => d(S::FORBIDDEN, false, None, false, "Cross-site request refused"),
            // The rest of the body may still be on its way: close rather than read it.
            Reason::RequestTimeout => d(S::REQUEST_TIMEOUT, true, None, false, "Request timeout"),
        }
    }

    /// The FHIR `IssueType` of an `OperationOutcome` for this reason. Exhaustive, like
    /// [`Reason::disposition`].
    pub fn fhir_issue_code(self) -> &'static str {
        match self {
            Reason::ClientCertificateRequired | Reason::InvalidToken => "login",
            Reason::TokenExpired => "expired",
            Reason::CertificateExpired
            | Reason::CertificateNotYetValid
            | Reason::CertificateInvalid
            | Reason::CertificateRevoked
            | Reason::TokenBindingMismatch => "security",
            Reason::RoleNotHeld
            | Reason::RoleNotSelected
            | Reason::ActivityNotPermitted
            | Reason::OrganisationMismatch
            | Reason::AssuranceTooLow
            | Reason::AuthenticatorNotAllowed => "forbidden",
            Reason::NoRoute => "not-found",
            Reason::RequestTooLarge | Reason::HeadersTooLarge => "too-long",
            Reason::UpstreamUnavailable | Reason::RevocationUnavailable | Reason::RoleDirectoryUnavailable => {
                "transient"
            }
            Reason::Overloaded => "throttled",
            Reason::UpstreamTimeout | Reason::RequestTimeout => "timeout",
            Reason::InvalidPath | Reason::InvalidHost => "invalid",
            Reason::UserSuspended | Reason::CrossSiteRequest => "forbidden",
        }
    }

    /// The refusal for a client certificate that failed its checks.
    pub fn of_certificate(failure: &CertFailure) -> Self {
        match failure {
            CertFailure::Expired => Reason::CertificateExpired,
            CertFailure::NotYetValid => Reason::CertificateNotYetValid,
            CertFailure::Revoked => Reason::CertificateRevoked,
            CertFailure::ChainTooLarge { .. }
            | CertFailure::ChainTooLong { .. }
            | CertFailure::Malformed(_)
            | CertFailure::UnknownCa
            | CertFailure::WrongPurpose
            | CertFailure::BadSignature(_)
            | CertFailure::NotAUser(_)
            | CertFailure::WeakKey(_)
            | CertFailure::Invalid(_) => Reason::CertificateInvalid,
        }
    }

    /// Every reason, for documentation and tests.
    pub const ALL: &'static [Reason] = &[
        Reason::ClientCertificateRequired,
        Reason::CertificateExpired,
        Reason::CertificateNotYetValid,
        Reason::CertificateInvalid,
        Reason::CertificateRevoked,
        Reason::InvalidToken,
        Reason::TokenExpired,
        Reason::TokenBindingMismatch,
        Reason::RoleNotHeld,
        Reason::RoleNotSelected,
        Reason::ActivityNotPermitted,
        Reason::OrganisationMismatch,
        Reason::AssuranceTooLow,
        Reason::AuthenticatorNotAllowed,
        Reason::NoRoute,
        Reason::RequestTooLarge,
        Reason::HeadersTooLarge,
        Reason::UpstreamUnavailable,
        Reason::RevocationUnavailable,
        Reason::RoleDirectoryUnavailable,
        Reason::Overloaded,
        Reason::UpstreamTimeout,
        Reason::InvalidPath,
        Reason::InvalidHost,
        Reason::UserSuspended,
        Reason::CrossSiteRequest,
        Reason::RequestTimeout,
    ];

    /// Whether the refusal is an access decision (who may do what), and so audited; the others
    /// are about the request's size or the upstream's health.
    pub fn is_access_decision(self) -> bool {
        match self {
            Reason::ClientCertificateRequired
            | Reason::CertificateExpired
            | Reason::CertificateNotYetValid
            | Reason::CertificateInvalid
            | Reason::CertificateRevoked
            | Reason::InvalidToken
            | Reason::TokenExpired
            | Reason::TokenBindingMismatch
            | Reason::RoleNotHeld
            | Reason::RoleNotSelected
            | Reason::ActivityNotPermitted
            | Reason::OrganisationMismatch
            | Reason::AssuranceTooLow
            | Reason::AuthenticatorNotAllowed
            | Reason::NoRoute
            | Reason::RevocationUnavailable
            | Reason::RoleDirectoryUnavailable
            | Reason::InvalidPath
            | Reason::InvalidHost
            | Reason::UserSuspended
            | Reason::CrossSiteRequest => true,
            Reason::RequestTooLarge
            | Reason::HeadersTooLarge
            | Reason::UpstreamUnavailable
            | Reason::Overloaded
            | Reason::UpstreamTimeout
            | Reason::RequestTimeout => false,
        }
    }
}

/// The response for a refusal: problem+json with the built-in wording.
#[cfg(test)]
pub(crate) fn respond(reason: Reason, request_id: &HeaderValue) -> Response<ResponseBody> {
    respond_to(
        reason,
        request_id,
        &Answer { guidance: Guidance::builtin(), format: Format::Problem, details: &Details::default(), now: 0 },
    )
}

/// How to word a refusal for the request that gets it.
#[derive(Debug)]
pub(crate) struct Answer<'a> {
    /// The deployment's wording and templates.
    pub guidance: &'a Guidance,
    /// What the client asked for.
    pub format: Format,
    /// What is known about the request and the person.
    pub details: &'a Details<'a>,
    /// Unix seconds.
    pub now: u64,
}

/// The response for a refusal, in the format the client asked for.
pub(crate) fn respond_to(reason: Reason, request_id: &HeaderValue, answer: &Answer<'_>) -> Response<ResponseBody> {
    let d = reason.disposition();
    let refusal = Refusal {
        reason,
        disposition: d,
        request_id: request_id.to_str().unwrap_or(""),
        details: answer.details,
        now: answer.now,
    };
    let (content_type, body) = answer.guidance.refusal(answer.format, &refusal);
    let mut response = Response::new(ResponseBody::Right(Full::new(body)));
    *response.status_mut() = d.status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The body depends on Accept; shared caches must not serve one format for another.
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    if answer.format == Format::Html {
        page_headers(headers);
    }
    headers.insert(crate::proxy::headers::X_REQUEST_ID, request_id.clone());
    if let Some(secs) = d.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if d.bearer_challenge {
        headers.insert(header::WWW_AUTHENTICATE, bearer_challenge(reason));
    }
    if d.close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn bearer_challenge(reason: Reason) -> HeaderValue {
    // RFC 6750 §3: every token refusal here is "invalid_token".
    let description = match reason {
        Reason::TokenExpired => "The access token expired",
        Reason::TokenBindingMismatch => "The access token is bound to another certificate",
        _ => "The access token is invalid",
    };
    HeaderValue::from_str(&format!(
        "Bearer realm=\"spinegate\", error=\"invalid_token\", error_description=\"{description}\""
    ))
    .expect("static challenge text is a valid header value")
}

/// Headers for a generated HTML page: nothing but its own inline styles may load or run, it may
/// not be framed, and its type is not second-guessed.
pub(crate) fn page_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.code()), "{} twice", r.code());
            assert!(r.code().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }

    #[test]
    fn statuses_follow_the_design_table() {
        use Reason::*;
        let expect = [
            (ClientCertificateRequired, 401),
            (InvalidToken, 401),
            (TokenExpired, 401),
            (TokenBindingMismatch, 401),
            (CertificateRevoked, 401),
            (RoleNotHeld, 403),
            (RoleNotSelected, 403),
            (ActivityNotPermitted, 403),
            (OrganisationMismatch, 403),
            (AssuranceTooLow, 403),
            (AuthenticatorNotAllowed, 403),
            (NoRoute, 404),
            (RequestTooLarge, 413),
            (HeadersTooLarge, 431),
            (UpstreamUnavailable, 502),
            (RevocationUnavailable, 503),
            (Overloaded, 503),
            (UpstreamTimeout, 504),
            (InvalidPath, 400),
            (InvalidHost, 400),
            (UserSuspended, 403),
            (CrossSiteRequest, 403),
            (RequestTimeout, 408),
        ];
        for (reason, status) in expect {
            assert_eq!(reason.disposition().status.as_u16(), status, "{}", reason.code());
        }
    }

    #[test]
    fn problem_body_has_reason_and_request_id_and_token_refusals_challenge() {
        let id = HeaderValue::from_static("6f1c2a9e-1111-4222-8333-444455556666");
        let response = respond(Reason::TokenExpired, &id);
        assert_eq!(response.status(), 401);
        let challenge = response.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""));
        let ResponseBody::Right(full) = response.into_body() else { panic!("refusals have full bodies") };
        let bytes =
            futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(full)).unwrap().unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["reason"], "token_expired");
        assert_eq!(v["request_id"], "6f1c2a9e-1111-4222-8333-444455556666");
        assert_eq!(v["status"], 401);
    }

    fn body_of(response: Response<ResponseBody>) -> String {
        let ResponseBody::Right(full) = response.into_body() else { panic!("refusals have full bodies") };
        let bytes =
            futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(full)).unwrap().unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Every reason — overloaded and the others no integration test can provoke included — in
    /// each format: the same status and reason code, the content type, and the sentence saying
    /// what happened.
    #[test]
    fn every_reason_in_every_format() {
        let id = HeaderValue::from_static("6f1c2a9e-1111-4222-8333-444455556666");
        for &reason in Reason::ALL {
            let sentence = crate::guidance::text::builtin(reason).what_happened[0];
            for format in [Format::Html, Format::Fhir, Format::Problem] {
                let answer = Answer { guidance: Guidance::builtin(), format, details: &Details::default(), now: 0 };
                let response = respond_to(reason, &id, &answer);
                let status = reason.disposition().status;
                assert_eq!(response.status(), status, "{reason:?} {format:?}");
                assert_eq!(response.headers()[header::VARY], "accept");
                let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
                let text = body_of(response);
                match format {
                    Format::Html => {
                        assert_eq!(content_type, "text/html; charset=utf-8");
                        let escaped = crate::guidance::template::escape(sentence);
                        assert!(text.contains(&format!("<p>{escaped}</p>")), "{reason:?}: {text}");
                        assert!(text.contains(&format!("Error code: {} (HTTP {})", reason.code(), status.as_str())));
                        assert!(text.contains(id.to_str().unwrap()));
                        assert!(text.len() < 16 * 1024, "{reason:?}: a page of {} bytes", text.len());
                    }
                    Format::Fhir => {
                        assert_eq!(content_type, "application/fhir+json");
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(v["issue"][0]["code"], reason.fhir_issue_code());
                        assert_eq!(v["issue"][0]["details"]["coding"][0]["code"], reason.code());
                        assert!(v["issue"][0]["details"]["text"].as_str().unwrap().contains(sentence));
                    }
                    Format::Problem => {
                        assert_eq!(content_type, "application/problem+json");
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(v["reason"], reason.code());
                        assert_eq!(v["status"], status.as_u16());
                        assert!(v["detail"].as_str().unwrap().contains(sentence));
                    }
                }
            }
        }
        let overloaded = respond_to(
            Reason::Overloaded,
            &id,
            &Answer { guidance: Guidance::builtin(), format: Format::Html, details: &Details::default(), now: 0 },
        );
        assert_eq!(overloaded.headers()[header::RETRY_AFTER], "1");
        assert!(body_of(overloaded).contains("Too many people are using the service at the moment."));
    }

    #[test]
    fn unavailable_reasons_say_when_to_retry() {
        for r in [Reason::RevocationUnavailable, Reason::Overloaded] {
            assert!(respond(r, &HeaderValue::from_static("x")).headers().contains_key(header::RETRY_AFTER));
        }
    }
}
