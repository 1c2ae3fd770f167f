//! The header contract of DESIGN §4: what a client may not send, and what the upstream receives
//! instead — all of it from verified data.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::auth::Principal;
use crate::authz::RoleProfile;

/// `X-Request-ID`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Correlation-ID`, passed through when well-formed.
pub const X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
/// `NHSD-Identity-UUID`: the verified user id.
pub const NHSD_IDENTITY_UUID: HeaderName = HeaderName::from_static("nhsd-identity-uuid");
/// `NHSD-Identity-IdP`: the token issuer, when a token was used.
pub const NHSD_IDENTITY_IDP: HeaderName = HeaderName::from_static("nhsd-identity-idp");
/// `X-Spinegate-Auth-Method`.
pub const X_SPINEGATE_AUTH_METHOD: HeaderName = HeaderName::from_static("x-spinegate-auth-method");
/// `NHSD-Session-URID`: the selected role profile, once validated.
pub const NHSD_SESSION_URID: HeaderName = HeaderName::from_static("nhsd-session-urid");
/// `NHSD-End-User-Organisation-ODS`: the organisation acted for, once validated.
pub const NHSD_END_USER_ORGANISATION_ODS: HeaderName = HeaderName::from_static("nhsd-end-user-organisation-ods");
/// `X-Spinegate-Role-Code`: the selected role's role code.
pub const X_SPINEGATE_ROLE_CODE: HeaderName = HeaderName::from_static("x-spinegate-role-code");
/// `X-Spinegate-Identity-Assertion`: the signed identity assertion, on routes that ask for it.
pub const X_SPINEGATE_IDENTITY_ASSERTION: HeaderName = HeaderName::from_static("x-spinegate-identity-assertion");
/// `X-Spinegate-Assurance-Level`.
pub const X_SPINEGATE_ASSURANCE_LEVEL: HeaderName = HeaderName::from_static("x-spinegate-assurance-level");
/// `X-Certificate-Expiry-Warning`, to the client and the upstream.
pub const X_CERTIFICATE_EXPIRY_WARNING: HeaderName = HeaderName::from_static("x-certificate-expiry-warning");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the non-standard ones proxies know).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Headers the gateway alone sets; a client's copies are dropped, never merged.
static GATEWAY_OWNED: [HeaderName; 10] = [
    // The credential the gateway consumed: upstreams get verified identity instead, and never a
    // bearer token they could replay.
    header::AUTHORIZATION,
    X_REQUEST_ID,
    X_CERTIFICATE_EXPIRY_WARNING,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    FORWARDED,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-client-cert"),
];

/// Whether a client-sent header must not reach the upstream as sent.
pub fn is_reserved(name: &HeaderName) -> bool {
    let s = name.as_str();
    s.starts_with("nhsd-") || s.starts_with("x-spinegate-") || GATEWAY_OWNED.contains(name) || HOP_BY_HOP.contains(name)
}

/// Verified facts the upstream is told.
#[derive(Debug)]
pub struct Outbound<'a> {
    /// The request id.
    pub request_id: &'a HeaderValue,
    /// Who is asking; `None` on a public rule.
    pub principal: Option<&'a Principal>,
    /// The selected role profile.
    pub role: Option<&'a RoleProfile>,
    /// The organisation acted for (validated against the role).
    pub organisation: Option<&'a str>,
    /// The signed identity assertion.
    pub assertion: Option<HeaderValue>,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The Host the client asked for (without port), if any.
    pub host: Option<&'a str>,
    /// The expiry warning, when the certificate is inside its renewal window.
    pub expiry_warning: Option<&'a HeaderValue>,
}

/// Rewrites client request headers for the upstream: removes every reserved header (and every
/// header the client's `Connection` names), keeps a well-formed `X-Correlation-ID`, then adds the
/// verified ones. `Host` is removed too; the proxy sets it per the upstream's policy.
pub fn to_upstream(mut inbound: HeaderMap, out: &Outbound<'_>) -> HeaderMap {
    let connection_listed = connection_listed(&inbound);
    let mut headers = HeaderMap::with_capacity(inbound.len() + 10);
    let mut current: Option<HeaderName> = None;
    for (name, value) in inbound.drain() {
        // `drain` yields the name once, then `None` for further values of the same name.
        if let Some(name) = name {
            current = Some(name);
        }
        let Some(name) = current.as_ref() else { continue };
        if *name == header::HOST || is_reserved(name) || connection_listed.contains(name) {
            continue;
        }
        if *name == X_CORRELATION_ID && !is_token_like(&value) {
            continue;
        }
        headers.append(name.clone(), value);
    }

    headers.insert(X_REQUEST_ID, out.request_id.clone());
    if let Some(principal) = out.principal {
        headers.insert(
            NHSD_IDENTITY_UUID,
            HeaderValue::from_str(principal.user_id.as_str()).expect("user ids are digits"),
        );
        if let Some(token) = &principal.token
            && let Ok(issuer) = HeaderValue::from_str(&token.claims.issuer)
        {
            headers.insert(NHSD_IDENTITY_IDP, issuer);
        }
        headers.insert(X_SPINEGATE_AUTH_METHOD, HeaderValue::from_static(principal.method.as_str()));
        headers.insert(X_SPINEGATE_ASSURANCE_LEVEL, HeaderValue::from_static(principal.assurance.as_str()));
    }
    if let Some(role) = out.role {
        // Role data comes from the token or the directory: forwarded only when header-safe.
        if let Ok(v) = HeaderValue::from_str(&role.data.id) {
            headers.insert(NHSD_SESSION_URID, v);
        }
        if let Ok(v) = HeaderValue::from_str(&role.data.role_code) {
            headers.insert(X_SPINEGATE_ROLE_CODE, v);
        }
    }
    if let Some(org) = out.organisation.and_then(|o| HeaderValue::from_str(o).ok()) {
        headers.insert(NHSD_END_USER_ORGANISATION_ODS, org);
    }
    if let Some(assertion) = &out.assertion {
        headers.insert(X_SPINEGATE_IDENTITY_ASSERTION, assertion.clone());
    }
    if let Some(warning) = out.expiry_warning {
        headers.insert(X_CERTIFICATE_EXPIRY_WARNING, warning.clone());
    }
    let ip = out.client_ip.to_string();
    let forwarded = match (out.client_ip, out.host.and_then(sanitize_host)) {
        (IpAddr::V4(_), Some(host)) => format!("for={ip};proto=https;host=\"{host}\""),
        (IpAddr::V6(_), Some(host)) => format!("for=\"[{ip}]\";proto=https;host=\"{host}\""),
        (IpAddr::V4(_), None) => format!("for={ip};proto=https"),
        (IpAddr::V6(_), None) => format!("for=\"[{ip}]\";proto=https"),
    };
    headers.insert(FORWARDED, HeaderValue::from_str(&forwarded).expect("sanitised values are valid"));
    headers.insert(X_FORWARDED_FOR, HeaderValue::from_str(&ip).expect("an IP address is a valid value"));
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    if let Some(host) = out.host.and_then(sanitize_host) {
        headers.insert(X_FORWARDED_HOST, HeaderValue::from_str(host).expect("sanitised host is valid"));
    }
    headers
}

/// Removes hop-by-hop headers (and those `Connection` names) from an upstream response.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in connection_listed(headers) {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect()
}

/// Visible ASCII without quotes or separators that could break a header, at most 128 bytes.
fn is_token_like(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter().all(|c| c.is_ascii_graphic() && !matches!(c, b'"' | b',' | b';' | b'\\'))
}

fn sanitize_host(host: &str) -> Option<&str> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'[' | b']' | b':'));
    ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AssuranceLevel, AuthMethod};
    use crate::identity::UserId;

    fn principal() -> Principal {
        Principal {
            user_id: UserId::parse("555000000001").unwrap(),
            method: AuthMethod::Smartcard,
            assurance: AssuranceLevel::Aal3,
            certificate: None,
            token: None,
        }
    }

    fn rewrite(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut inbound = HeaderMap::new();
        for (k, v) in pairs {
            inbound.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let id = HeaderValue::from_static("11111111-2222-4333-8444-555555555555");
        let p = principal();
        to_upstream(
            inbound,
            &Outbound {
                request_id: &id,
                principal: Some(&p),
                role: None,
                organisation: None,
                assertion: None,
                client_ip: "192.0.2.7".parse().unwrap(),
                host: Some("spine.example"),
                expiry_warning: None,
            },
        )
    }

    #[test]
    fn client_sent_identity_headers_are_replaced_by_verified_ones() {
        let h = rewrite(&[
            ("NHSD-Identity-UUID", "999999999999"),
            ("NHSD-Session-URID", "123456789012"),
            ("NHSD-End-User-Organisation-ODS", "X99"),
            ("X-Spinegate-Auth-Method", "token"),
            ("X-Forwarded-Client-Cert", "By=evil"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("Forwarded", "for=10.0.0.1"),
        ]);
        assert_eq!(h["nhsd-identity-uuid"], "555000000001");
        assert_eq!(h.get_all("nhsd-identity-uuid").iter().count(), 1);
        assert!(!h.contains_key("nhsd-session-urid"), "not validated yet, so never forwarded");
        assert!(!h.contains_key("nhsd-end-user-organisation-ods"));
        assert!(!h.contains_key("x-forwarded-client-cert"));
        assert_eq!(h["x-spinegate-auth-method"], "smartcard");
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["forwarded"], "for=192.0.2.7;proto=https;host=\"spine.example\"");
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_dropped() {
        let h = rewrite(&[
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Accept", "application/fhir+json"),
            ("Accept", "application/json"),
        ]);
        for gone in ["connection", "x-secret", "keep-alive", "te"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h.get_all("accept").iter().count(), 2, "repeated ordinary headers survive");
    }

    #[test]
    fn correlation_id_passes_only_when_well_formed() {
        assert_eq!(rewrite(&[("X-Correlation-ID", "abc-123")])["x-correlation-id"], "abc-123");
        assert!(!rewrite(&[("X-Correlation-ID", "a\"b")]).contains_key("x-correlation-id"));
        let long = "x".repeat(129);
        assert!(!rewrite(&[("X-Correlation-ID", &long)]).contains_key("x-correlation-id"));
    }
}
