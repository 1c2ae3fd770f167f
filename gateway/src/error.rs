//! The one place failures become responses (DESIGN §4). Every refusal is a [`Reason`]; one
//! exhaustive `match` gives its status, whether the connection closes, `Retry-After` and
//! `WWW-Authenticate`; the body is RFC 9457 `application/problem+json` with the stable reason code
//! and the request id. No internal detail reaches the client: the log line has it.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::pipeline::ResponseBody;

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
            | Reason::RoleDirectoryUnavailable => true,
            Reason::RequestTooLarge
            | Reason::HeadersTooLarge
            | Reason::UpstreamUnavailable
            | Reason::Overloaded
            | Reason::UpstreamTimeout => false,
        }
    }
}

/// The response for a refusal.
pub(crate) fn respond(reason: Reason, request_id: &HeaderValue) -> Response<ResponseBody> {
    let d = reason.disposition();
    let body = problem_json(reason, d, request_id);
    let mut response = Response::new(ResponseBody::Right(Full::new(body)));
    *response.status_mut() = d.status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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

fn problem_json(reason: Reason, d: Disposition, request_id: &HeaderValue) -> Bytes {
    let body = serde_json::json!({
        "type": format!("urn:spinegate:problem:{}", reason.code()),
        "title": d.title,
        "status": d.status.as_u16(),
        "reason": reason.code(),
        "request_id": request_id.to_str().unwrap_or(""),
    });
    Bytes::from(serde_json::to_vec(&body).expect("JSON values serialise"))
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

    #[test]
    fn unavailable_reasons_say_when_to_retry() {
        for r in [Reason::RevocationUnavailable, Reason::Overloaded] {
            assert!(respond(r, &HeaderValue::from_static("x")).headers().contains_key(header::RETRY_AFTER));
        }
    }
}
