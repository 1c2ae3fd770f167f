//! Whether a request a browser sent comes from another site (cross-site request forgery): the
//! smartcard is presented by the browser whatever page asks, so an unsafe request it carries
//! from another site's page may be one the card holder never meant.
//!
//! Judged as browsers now allow (and as Go's `CrossOriginProtection` does): `Sec-Fetch-Site`
//! when sent — `same-origin` or `none` (typed by the user) pass, anything else is cross-site —
//! else `Origin` when sent, which must name `https` and this request's own authority (`null` is
//! cross-site). A request with neither comes from no browser that could be tricked (a clinical
//! system, curl) and passes. Safe methods (GET, HEAD, OPTIONS, TRACE) always pass.

use http::{HeaderMap, Method};

use super::CanonicalAuthority;

/// Whether the request is an unsafe one a browser sent from another site.
pub fn is_cross_site(method: &Method, headers: &HeaderMap, authority: Option<&CanonicalAuthority>) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE) {
        return false;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(http::header::ORIGIN) else { return false };
    let same = origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix("https://"))
        .and_then(|o| CanonicalAuthority::parse(o).ok())
        .zip(authority)
        .is_some_and(|(origin, ours)| origin.same_origin(ours));
    !same
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn judge(method: Method, pairs: &[(&str, &str)]) -> bool {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let ours = CanonicalAuthority::parse("spine.example:8443").unwrap();
        is_cross_site(&method, &headers, Some(&ours))
    }

    #[test]
    fn unsafe_requests_from_other_sites_are_cross_site() {
        assert!(judge(Method::POST, &[("sec-fetch-site", "cross-site")]));
        assert!(judge(Method::PUT, &[("sec-fetch-site", "same-site")]), "a sibling site is another site");
        assert!(judge(Method::POST, &[("origin", "https://evil.example")]));
        assert!(judge(Method::POST, &[("origin", "null")]));
        assert!(judge(Method::POST, &[("origin", "http://spine.example:8443")]), "another scheme");
        assert!(judge(Method::DELETE, &[("origin", "https://spine.example")]), "another port");
        // Sec-Fetch-Site wins over a forged-looking Origin either way.
        assert!(judge(Method::POST, &[("sec-fetch-site", "cross-site"), ("origin", "https://spine.example:8443")]));
    }

    #[test]
    fn same_origin_user_initiated_safe_and_non_browser_requests_pass() {
        assert!(!judge(Method::POST, &[("sec-fetch-site", "same-origin")]));
        assert!(!judge(Method::POST, &[("sec-fetch-site", "none")]));
        assert!(!judge(Method::POST, &[("origin", "https://SPINE.example.:8443")]));
        assert!(!judge(Method::POST, &[]), "no browser headers: a clinical system");
        assert!(!judge(Method::GET, &[("sec-fetch-site", "cross-site")]));
        assert!(!judge(Method::OPTIONS, &[("origin", "https://evil.example")]));
    }
}
