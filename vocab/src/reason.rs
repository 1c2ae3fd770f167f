//! Why a request was refused (DESIGN §4), as one table: each row gives the variant, its stable
//! code, its status, whether the connection closes, `Retry-After`, whether a token challenge is
//! sent, whether it is an access decision (audited), its FHIR issue type and a short title.
//! [`Reason::ALL`], [`Reason::code`], [`Reason::from_code`], [`Reason::disposition`] and the
//! rest are generated from it, so a new reason cannot exist without every one of them — and the
//! configuration's accepted reason names are [`Reason::from_code`], not a second list.

/// How a [`Reason`] is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disposition {
    /// HTTP status.
    pub status: u16,
    /// Close the connection after answering: nothing more on it can succeed.
    pub close: bool,
    /// `Retry-After` seconds.
    pub retry_after: Option<u32>,
    /// Send `WWW-Authenticate: Bearer` (RFC 6750).
    pub bearer_challenge: bool,
    /// Short human title for the problem body.
    pub title: &'static str,
}

macro_rules! reasons {
    ($(
        $(#[doc = $doc:expr])*
        $variant:ident = $code:literal {
            status: $status:literal,
            close: $close:literal,
            retry_after: $retry:expr,
            bearer: $bearer:literal,
            audited: $audited:literal,
            fhir: $fhir:literal,
            title: $title:literal $(,)?
        }
    )*) => {
        /// Why a request was refused. The code ([`Reason::code`]) is stable: clients, dashboards
        /// and the `reason` metric label depend on it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in table order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            /// The stable reason code.
            pub fn code(self) -> &'static str {
                match self {
                    $(Reason::$variant => $code,)*
                }
            }

            /// The reason with this code.
            pub fn from_code(code: &str) -> Option<Reason> {
                match code {
                    $($code => Some(Reason::$variant),)*
                    _ => None,
                }
            }

            /// How this reason is answered.
            pub fn disposition(self) -> Disposition {
                match self {
                    $(Reason::$variant => Disposition {
                        status: $status,
                        close: $close,
                        retry_after: $retry,
                        bearer_challenge: $bearer,
                        title: $title,
                    },)*
                }
            }

            /// The FHIR `IssueType` of an `OperationOutcome` for this reason.
            pub fn fhir_issue_code(self) -> &'static str {
                match self {
                    $(Reason::$variant => $fhir,)*
                }
            }

            /// Whether the refusal is an access decision (who may do what), and so audited; the
            /// others are about the request's size, timing or the upstream's health.
            pub fn is_access_decision(self) -> bool {
                match self {
                    $(Reason::$variant => $audited,)*
                }
            }
        }
    };
}

reasons! {
    /// No client certificate (and no other credential) was presented.
    ClientCertificateRequired = "client_certificate_required" {
        status: 401, close: false, retry_after: None, bearer: false, audited: true, fhir: "login",
        title: "Client certificate required",
    }
    /// The connection's certificate has expired since the handshake (or on a resumed session).
    /// The certificate will not get better on this connection: it closes so the client
    /// reconnects with another.
    CertificateExpired = "certificate_expired" {
        status: 401, close: true, retry_after: None, bearer: false, audited: true, fhir: "security",
        title: "Certificate expired",
    }
    /// The connection's certificate is not valid yet.
    CertificateNotYetValid = "certificate_not_yet_valid" {
        status: 401, close: true, retry_after: None, bearer: false, audited: true, fhir: "security",
        title: "Certificate not yet valid",
    }
    /// The connection's certificate no longer validates (trust anchors changed …).
    CertificateInvalid = "certificate_invalid" {
        status: 401, close: true, retry_after: None, bearer: false, audited: true, fhir: "security",
        title: "Certificate not accepted",
    }
    /// The certificate is revoked.
    CertificateRevoked = "certificate_revoked" {
        status: 401, close: true, retry_after: None, bearer: false, audited: true, fhir: "security",
        title: "Certificate revoked",
    }
    /// The bearer token is malformed, unsigned, or otherwise unacceptable.
    InvalidToken = "invalid_token" {
        status: 401, close: false, retry_after: None, bearer: true, audited: true, fhir: "login",
        title: "Invalid token",
    }
    /// The bearer token has expired.
    TokenExpired = "token_expired" {
        status: 401, close: false, retry_after: None, bearer: true, audited: true, fhir: "expired",
        title: "Token expired",
    }
    /// The token is bound to a different certificate (RFC 8705).
    TokenBindingMismatch = "token_binding_mismatch" {
        status: 401, close: false, retry_after: None, bearer: true, audited: true, fhir: "security",
        title: "Token bound to another certificate",
    }
    /// The selected role profile is not one the user holds.
    RoleNotHeld = "role_not_held" {
        status: 403, close: false, retry_after: None, bearer: false, audited: true, fhir: "forbidden",
        title: "Role not held",
    }
    /// The user holds several role profiles and named none.
    RoleNotSelected = "role_not_selected" {
        status: 403, close: false, retry_after: None, bearer: false, audited: true, fhir: "forbidden",
        title: "Role not selected",
    }
    /// The role does not permit the route's activities.
    ActivityNotPermitted = "activity_not_permitted" {
        status: 403, close: false, retry_after: None, bearer: false, audited: true, fhir: "forbidden",
        title: "Activity not permitted",
    }
    /// The requested organisation is not the role's.
    OrganisationMismatch = "organisation_mismatch" {
        status: 403, close: false, retry_after: None, bearer: false, audited: true, fhir: "forbidden",
        title: "Organisation mismatch",
    }
    /// The authentication assurance level is below the route's minimum.
    AssuranceTooLow = "assurance_too_low" {
        status: 403, close: false, retry_after: None, bearer: false, audited: true, fhir: "forbidden",
        title: "Assurance level too low",
    }
    /// The authenticator kind is not allowed on the route.
    AuthenticatorNotAllowed = "authenticator_not_allowed" {
        status: 403, close: false, retry_after: None, bearer: false, audited: true, fhir: "forbidden",
        title: "Authenticator not allowed",
    }
    /// No route matches host and path.
    NoRoute = "no_route" {
        status: 404, close: false, retry_after: None, bearer: false, audited: true, fhir: "not-found",
        title: "No route",
    }
    /// The request body is larger than allowed. The unread body may still be arriving; closing
    /// avoids reading it to find the next request.
    RequestTooLarge = "request_too_large" {
        status: 413, close: true, retry_after: None, bearer: false, audited: false, fhir: "too-long",
        title: "Request too large",
    }
    /// The request headers are larger than allowed.
    HeadersTooLarge = "headers_too_large" {
        status: 431, close: true, retry_after: None, bearer: false, audited: false, fhir: "too-long",
        title: "Request headers too large",
    }
    /// The upstream could not be reached or failed mid-exchange.
    UpstreamUnavailable = "upstream_unavailable" {
        status: 502, close: false, retry_after: None, bearer: false, audited: false, fhir: "transient",
        title: "Upstream unavailable",
    }
    /// No revocation answer could be had and policy refuses `Unknown`.
    RevocationUnavailable = "revocation_unavailable" {
        status: 503, close: false, retry_after: Some(5), bearer: false, audited: true, fhir: "transient",
        title: "Revocation status unavailable",
    }
    /// The role directory could not say which role profiles the user holds.
    RoleDirectoryUnavailable = "role_directory_unavailable" {
        status: 503, close: false, retry_after: Some(5), bearer: false, audited: true, fhir: "transient",
        title: "Role directory unavailable",
    }
    /// The gateway is shedding load.
    Overloaded = "overloaded" {
        status: 503, close: false, retry_after: Some(1), bearer: false, audited: false, fhir: "throttled",
        title: "Overloaded",
    }
    /// The upstream did not answer in time.
    UpstreamTimeout = "upstream_timeout" {
        status: 504, close: false, retry_after: None, bearer: false, audited: false, fhir: "timeout",
        title: "Upstream timeout",
    }
    /// The request path cannot be made unambiguous (canonical path rules).
    InvalidPath = "invalid_path" {
        status: 400, close: false, retry_after: None, bearer: false, audited: true, fhir: "invalid",
        title: "Invalid path",
    }
    /// The request's `Host` is malformed, repeated, or disagrees with its target's authority.
    InvalidHost = "invalid_host" {
        status: 400, close: false, retry_after: None, bearer: false, audited: true, fhir: "invalid",
        title: "Invalid host",
    }
    /// The user is on the emergency deny list, however they authenticated.
    UserSuspended = "user_suspended" {
        status: 403, close: false, retry_after: None, bearer: false, audited: true, fhir: "forbidden",
        title: "Access suspended",
    }
    /// An unsafe request a card holder's browser sent from another site.
    CrossSiteRequest = "cross_site_request" {
        status: 403, close: false, retry_after: None, bearer: false, audited: true, fhir: "forbidden",
        title: "Cross-site request refused",
    }
    /// The client sent its request body too slowly; the rest may still be on its way, so the
    /// connection closes rather than read it.
    RequestTimeout = "request_timeout" {
        status: 408, close: true, retry_after: None, bearer: false, audited: false, fhir: "timeout",
        title: "Request timeout",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &r in Reason::ALL {
            assert!(seen.insert(r.code()), "{} twice", r.code());
            assert!(r.code().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
        assert_eq!(Reason::from_code("Client_Certificate_Required"), None);
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
            assert_eq!(reason.disposition().status, status, "{}", reason.code());
        }
    }

    #[test]
    fn token_refusals_challenge_and_unavailability_says_when_to_retry() {
        for &r in Reason::ALL {
            let d = r.disposition();
            assert_eq!(d.bearer_challenge, d.status == 401 && r.code().contains("token"), "{}", r.code());
            assert_eq!(d.retry_after.is_some(), d.status == 503, "{}", r.code());
            assert!(!d.title.is_empty());
        }
    }
}
