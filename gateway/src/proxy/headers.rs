//! The header contract of DESIGN §4: what a client may not send, and what the upstream receives
//! instead — all of it from verified data.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::auth::Principal;
use spinegate_authz::RoleProfile;

/// `X-Request-ID`.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Correlation-ID`, passed through when well-formed.
pub(crate) const X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
/// `NHSD-Identity-UUID`: the verified user id.
pub(crate) const NHSD_IDENTITY_UUID: HeaderName = HeaderName::from_static("nhsd-identity-uuid");
/// `NHSD-Identity-IdP`: the token issuer, when a token was used.
pub(crate) const NHSD_IDENTITY_IDP: HeaderName = HeaderName::from_static("nhsd-identity-idp");
/// `X-Spinegate-Auth-Method`.
pub(crate) const X_SPINEGATE_AUTH_METHOD: HeaderName = HeaderName::from_static("x-spinegate-auth-method");
/// `NHSD-Session-URID`: the selected role profile, once validated.
pub(crate) const NHSD_SESSION_URID: HeaderName = HeaderName::from_static("nhsd-session-urid");
/// `NHSD-End-User-Organisation-ODS`: the organisation acted for, once validated.
pub(crate) const NHSD_END_USER_ORGANISATION_ODS: HeaderName = HeaderName::from_static("nhsd-end-user-organisation-ods");
/// `X-Spinegate-Role-Code`: the selected role's role code.
pub(crate) const X_SPINEGATE_ROLE_CODE: HeaderName = HeaderName::from_static("x-spinegate-role-code");
/// `X-Spinegate-Identity-Assertion`: the signed identity assertion, on routes that ask for it.
pub(crate) const X_SPINEGATE_IDENTITY_ASSERTION: HeaderName = HeaderName::from_static("x-spinegate-identity-assertion");
/// `X-Spinegate-Assurance-Level`.
pub(crate) const X_SPINEGATE_ASSURANCE_LEVEL: HeaderName = HeaderName::from_static("x-spinegate-assurance-level");
/// `X-Certificate-Expiry-Warning`, to the client and the upstream.
pub(crate) const X_CERTIFICATE_EXPIRY_WARNING: HeaderName = HeaderName::from_static("x-certificate-expiry-warning");
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

/// Name prefixes the gateway alone sets: identity (`NHSD-*`, `X-Spinegate-*`) and forwarding
/// (`X-Forwarded-*`, `X-Forwarded-Client-Cert` included).
const RESERVED_PREFIXES: [&str; 3] = ["nhsd-", "x-spinegate-", "x-forwarded-"];

/// Names the gateway alone sets, or that some upstream stack would read as a fact about the
/// request that only the gateway can vouch for. A client's copies are dropped, never merged.
const RESERVED_NAMES: [&str; 23] = [
    // The credential the gateway consumed: upstreams get verified identity instead, and never a
    // bearer token they could replay.
    "authorization",
    "x-request-id",
    "x-correlation-id",
    "x-certificate-expiry-warning",
    // Who the client is, where it connected.
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "x-originating-ip",
    // Client certificates as front proxies pass them (RFC 9440, Apache/Tomcat's SSL valve, nginx).
    "client-cert",
    "client-cert-chain",
    "ssl-client-cert",
    "ssl-client-verify",
    "x-ssl-client-cert",
    "x-client-cert",
    "x-client-verify",
    // What the request is: a rewritten URL or method the upstream framework would honour
    // instead of the one the gateway judged.
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Fields that have no business in request trailers (RFC 9110 §6.5.1): framing, routing and
/// content metadata an upstream could act on after the gateway judged the headers.
const NOT_IN_TRAILERS: [HeaderName; 7] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_TYPE,
    header::CONTENT_RANGE,
    header::COOKIE,
    header::EXPECT,
];

/// The header names a client may not send to an upstream: the built-in contract (DESIGN §4) and
/// the deployment's additions (`[request_headers] remove`). Names are compared in one canonical
/// form — lower case with `_` read as `-` — because CGI-style stacks (WSGI, PHP, Rack, Tomcat's
/// SSL valve) read `nhsd_identity_uuid` as `NHSD-Identity-UUID`.
#[derive(Clone, Debug, Default)]
pub struct HeaderFilter {
    extra_names: Vec<String>,
    extra_prefixes: Vec<String>,
}

impl HeaderFilter {
    /// The built-in contract plus `remove` (canonical names; a trailing `*` makes a prefix).
    pub fn new(remove: &[String]) -> Self {
        let mut filter = Self::default();
        for entry in remove {
            match entry.strip_suffix('*') {
                Some(prefix) => filter.extra_prefixes.push(prefix.to_owned()),
                None => filter.extra_names.push(entry.clone()),
            }
        }
        filter
    }

    /// Whether a client-sent header must not reach the upstream as sent.
    pub fn is_reserved(&self, name: &HeaderName) -> bool {
        if HOP_BY_HOP.contains(name) {
            return true;
        }
        let name = canonical_name(name);
        RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
            || RESERVED_NAMES.contains(&&*name)
            || self.extra_prefixes.iter().any(|p| name.starts_with(p.as_str()))
            || self.extra_names.iter().any(|n| *n == *name)
    }

    /// Removes from request trailers what may not reach the upstream: reserved names and
    /// fields that do not belong in trailers.
    pub fn strip_trailers(&self, trailers: &mut HeaderMap) {
        let gone: Vec<HeaderName> =
            trailers.keys().filter(|name| self.is_reserved(name) || NOT_IN_TRAILERS.contains(name)).cloned().collect();
        for name in gone {
            trailers.remove(name);
        }
    }
}

/// A header name as compared: lower case (as `HeaderName` already is) with `_` read as `-`.
fn canonical_name(name: &HeaderName) -> std::borrow::Cow<'_, str> {
    let s = name.as_str();
    if s.contains('_') { std::borrow::Cow::Owned(s.replace('_', "-")) } else { std::borrow::Cow::Borrowed(s) }
}

/// Verified facts the upstream is told.
#[derive(Debug)]
pub(crate) struct Outbound<'a> {
    /// The request id.
    pub request_id: &'a HeaderValue,
    /// The client's own id for the request, well-formed (`X-Correlation-ID`).
    pub correlation_id: Option<&'a HeaderValue>,
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
/// header the client's `Connection` names), then adds the verified ones and the correlation id.
/// `Host` is removed too; the proxy sets it per the upstream's policy.
pub(crate) fn to_upstream(mut inbound: HeaderMap, out: &Outbound<'_>, filter: &HeaderFilter) -> HeaderMap {
    let connection_listed = connection_listed(&inbound);
    let mut headers = HeaderMap::with_capacity(inbound.len() + 10);
    let mut current: Option<HeaderName> = None;
    for (name, value) in inbound.drain() {
        // `drain` yields the name once, then `None` for further values of the same name.
        if let Some(name) = name {
            current = Some(name);
        }
        let Some(name) = current.as_ref() else { continue };
        if *name == header::HOST || filter.is_reserved(name) || connection_listed.contains(name) {
            continue;
        }
        headers.append(name.clone(), value);
    }

    headers.insert(X_REQUEST_ID, out.request_id.clone());
    if let Some(id) = out.correlation_id {
        headers.insert(X_CORRELATION_ID, id.clone());
    }
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
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
pub(crate) fn is_token_like(value: &HeaderValue) -> bool {
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
        rewrite_with(pairs, &HeaderFilter::default(), None)
    }

    fn rewrite_with(pairs: &[(&str, &str)], filter: &HeaderFilter, correlation: Option<&str>) -> HeaderMap {
        let mut inbound = HeaderMap::new();
        for (k, v) in pairs {
            inbound.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let id = HeaderValue::from_static("11111111-2222-4333-8444-555555555555");
        let p = principal();
        let correlation = correlation.map(|c| HeaderValue::from_str(c).unwrap());
        to_upstream(
            inbound,
            &Outbound {
                request_id: &id,
                correlation_id: correlation.as_ref(),
                principal: Some(&p),
                role: None,
                organisation: None,
                assertion: None,
                client_ip: "192.0.2.7".parse().unwrap(),
                host: Some("spine.example"),
                expiry_warning: None,
            },
            filter,
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
    fn the_client_correlation_id_is_replaced_by_the_judged_one() {
        assert!(!rewrite(&[("X-Correlation-ID", "abc-123")]).contains_key("x-correlation-id"), "only the judged one");
        let h = rewrite_with(
            &[("X-Correlation-ID", "evil"), ("X-Request-ID", "x")],
            &HeaderFilter::default(),
            Some("abc-123"),
        );
        assert_eq!(h["x-correlation-id"], "abc-123");
        assert_eq!(h.get_all("x-correlation-id").iter().count(), 1);
        assert_eq!(h["x-request-id"], "11111111-2222-4333-8444-555555555555");
    }

    #[test]
    fn underscore_spellings_of_reserved_headers_are_removed() {
        let h = rewrite(&[
            ("nhsd_identity_uuid", "999999999999"),
            ("NHSD_Session_URID", "123456789012"),
            ("x_forwarded_for", "10.0.0.1"),
            ("ssl_client_cert", "-----BEGIN CERTIFICATE-----"),
            ("x_spinegate_auth_method", "smartcard"),
            ("x-forwarded_host", "evil.example"),
        ]);
        for gone in [
            "nhsd_identity_uuid",
            "nhsd_session_urid",
            "x_forwarded_for",
            "ssl_client_cert",
            "x_spinegate_auth_method",
            "x-forwarded_host",
        ] {
            assert!(!h.contains_key(gone), "{gone} reached the upstream");
        }
        assert_eq!(h["nhsd-identity-uuid"], "555000000001");
    }

    #[test]
    fn every_forwarding_override_and_client_certificate_header_is_removed() {
        let names = [
            "X-Forwarded-Port",
            "X-Forwarded-Server",
            "X-Forwarded-Prefix",
            "X-Forwarded-Ssl",
            "X-Original-URL",
            "X-Rewrite-URL",
            "X-HTTP-Method-Override",
            "X-Method-Override",
            "Client-Cert",
            "Client-Cert-Chain",
            "True-Client-IP",
            "X-Real-IP",
            "X-Client-IP",
            "SSL-Client-Verify",
            "Proxy-Authorization",
        ];
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (*n, "spoofed")).collect();
        let h = rewrite(&pairs);
        for name in names {
            let lower = name.to_ascii_lowercase();
            assert!(h.get(&lower).is_none_or(|v| v != "spoofed"), "{name} reached the upstream");
        }
    }

    #[test]
    fn configured_names_and_prefixes_are_removed_too() {
        let filter = HeaderFilter::new(&["x-internal-*".into(), "x-debug".into()]);
        let h = rewrite_with(
            &[("X-Internal-Role", "admin"), ("x_internal_user", "1"), ("X-Debug", "1"), ("X-Debugger", "kept")],
            &filter,
            None,
        );
        assert!(!h.contains_key("x-internal-role") && !h.contains_key("x_internal_user") && !h.contains_key("x-debug"));
        assert_eq!(h["x-debugger"], "kept", "an exact name is not a prefix");
    }

    #[test]
    fn trailers_lose_reserved_and_framing_fields() {
        let mut trailers = HeaderMap::new();
        for name in ["nhsd-identity-uuid", "x_forwarded_for", "host", "content-length", "x-checksum"] {
            trailers.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static("x"));
        }
        HeaderFilter::default().strip_trailers(&mut trailers);
        assert_eq!(trailers.keys().map(HeaderName::as_str).collect::<Vec<_>>(), vec!["x-checksum"]);
    }
}
