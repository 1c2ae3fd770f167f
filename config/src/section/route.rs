//! `[[route]]`: host and path prefix to upstream, with the route's policy switches. Each route
//! names an `[[upstream]]` and holds its `[[route.rule]]`s; the composer passes in the validated
//! upstreams and authorization catalogue, and rules are read by the `rule` section.

use std::collections::{BTreeSet, HashSet};
use std::num::NonZeroUsize;

use serde::Deserialize;
use toml::Spanned;

use super::authorization::Authorization;
use super::rule::{self, RawRule, Rule};
use super::upstream::Upstream;
use crate::error::ConfigError;
use crate::syntax::Ctx;

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Name in logs and metrics.
    pub name: Spanned<String>,
    /// Host (without port) this route answers; any host when absent.
    pub host: Option<Spanned<String>>,
    /// Path prefix, matched on whole segments.
    pub path_prefix: Spanned<String>,
    /// Name of the `[[upstream]]` to forward to.
    pub upstream: Spanned<String>,
    /// `"if_present"` (default) or `"required"`: whether tokens must be certificate-bound.
    #[serde(default = "default_token_binding")]
    pub token_binding: TokenBinding,
    /// The path segment (1-based: `/Organization/A81001/…` has the ODS code in segment 2) that
    /// names the organisation a request acts for.
    pub organisation_segment: Option<Spanned<u64>>,
    /// Send the upstream a signed identity assertion.
    #[serde(default)]
    pub identity_assertion: bool,
    /// `"refuse"` (default) or `"allow"`: whether `;` path parameters may reach the route.
    #[serde(default = "default_path_parameters")]
    pub path_parameters: PathParameters,
    /// `"refuse"` (default) or `"allow"`: unsafe requests a card holder's browser sends from
    /// another site.
    #[serde(default = "default_cross_site")]
    pub cross_site_requests: CrossSite,
    /// `[[route.rule]]`: who may do what, first rule covering the method wins.
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
}

/// A route: host and path prefix to upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Name in logs and metrics.
    pub name: String,
    /// Lower-case host without port; any host when `None`.
    pub host: Option<String>,
    /// Path prefix starting with `/`, without trailing `/` (except the root prefix `/`).
    pub path_prefix: String,
    /// Index into [`Config::upstreams`](crate::Config::upstreams).
    pub upstream: usize,
    /// Whether tokens must be certificate-bound on this route.
    pub token_binding: TokenBinding,
    /// The 1-based path segment naming the organisation acted for, if any.
    pub organisation_segment: Option<NonZeroUsize>,
    /// Whether the upstream receives a signed identity assertion.
    pub identity_assertion: bool,
    /// Whether `;` path parameters may reach the route.
    pub path_parameters: PathParameters,
    /// Whether a card holder's browser may send unsafe requests here from another site.
    pub cross_site: CrossSite,
    /// Rules in file order; the first covering the method applies; none → refused.
    pub rules: Vec<Rule>,
}

/// Whether `;` path parameters (`/Patient;jsessionid=…/…`) may reach a route. Routes are matched
/// on the path with parameters cut off, as servlet containers read it.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PathParameters {
    /// 400 `invalid_path`.
    Refuse,
    /// Forwarded as sent (in canonical form).
    Allow,
}

/// What a route does with an unsafe request (not GET, HEAD, OPTIONS or TRACE) authenticated by a
/// smartcard that a browser sent from another site (`Sec-Fetch-Site`, else `Origin`): the card is
/// presented by the browser whatever page asks, so such a request may be forged.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CrossSite {
    /// 403 `cross_site_request`.
    Refuse,
    /// Let it through (a route other sites' pages post to on purpose).
    Allow,
}

/// Whether a route requires certificate-bound tokens (RFC 8705).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenBinding {
    /// A token carrying `cnf.x5t#S256` must match the connection's certificate; others pass.
    IfPresent,
    /// Every token must carry `cnf.x5t#S256` matching the connection's certificate.
    Required,
}

fn default_token_binding() -> TokenBinding {
    TokenBinding::IfPresent
}
fn default_path_parameters() -> PathParameters {
    PathParameters::Refuse
}
fn default_cross_site() -> CrossSite {
    CrossSite::Refuse
}

/// Every `[[route]]`, validated: names and (host, prefix) pairs distinct, prefixes canonical,
/// upstreams resolved to indices into `upstreams`, rules read against `authorization`.
pub(crate) fn validate(
    ctx: &Ctx<'_>,
    raw: &[Spanned<RawRoute>],
    upstreams: &[Upstream],
    authorization: &Authorization,
) -> Result<Vec<Route>, ConfigError> {
    let mut activities = BTreeSet::new();
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let r = r.get_ref();
        if !names.insert(r.name.get_ref().clone()) {
            return Err(ctx.invalid(r.name.span(), format!("route name {:?} is used twice", r.name.get_ref())));
        }
        let prefix = r.path_prefix.get_ref();
        if let Err(why) = canonical_prefix(prefix) {
            return Err(ctx.invalid(r.path_prefix.span(), format!("path_prefix {prefix:?} {why}")));
        }
        let path_prefix = if prefix.len() > 1 { prefix.trim_end_matches('/') } else { prefix }.to_owned();
        let host = r.host.as_ref().map(|h| h.get_ref().trim_end_matches('.').to_ascii_lowercase());
        // Prefixes that differ only in case would make the gateway's case check refuse both.
        if !keys.insert((host.clone(), path_prefix.to_ascii_lowercase())) {
            return Err(ctx
                .invalid(r.path_prefix.span(), "another route has the same host and path_prefix (letter case aside)"));
        }
        let upstream = upstreams.iter().position(|u| u.name == *r.upstream.get_ref()).ok_or_else(|| {
            ctx.invalid(r.upstream.span(), format!("no [[upstream]] is named {:?}", r.upstream.get_ref()))
        })?;
        let organisation_segment = match &r.organisation_segment {
            None => None,
            Some(n) => Some(
                usize::try_from(*n.get_ref())
                    .ok()
                    .and_then(NonZeroUsize::new)
                    .ok_or_else(|| ctx.invalid(n.span(), "organisation_segment counts path segments from 1"))?,
            ),
        };
        out.push(Route {
            name: r.name.get_ref().clone(),
            host,
            path_prefix,
            upstream,
            token_binding: r.token_binding,
            organisation_segment,
            identity_assertion: r.identity_assertion,
            path_parameters: r.path_parameters,
            cross_site: r.cross_site_requests,
            rules: rule::validate(ctx, authorization, &r.rule, &mut activities)?,
        });
    }
    Ok(out)
}

/// Routes may ask for a signed identity assertion only when `[identity_assertion]` is configured.
pub(crate) fn check_identity_assertion(
    ctx: &Ctx<'_>,
    raw: &[Spanned<RawRoute>],
    configured: bool,
) -> Result<(), ConfigError> {
    match raw.iter().find(|r| r.get_ref().identity_assertion) {
        Some(r) if !configured => {
            Err(ctx.invalid(r.span(), "identity_assertion = true needs an [identity_assertion] section"))
        }
        _ => Ok(()),
    }
}

/// A route prefix must already be in the canonical form the gateway matches requests in: an
/// absolute path of unreserved characters and sub-delimiters, no escapes, no `.`/`..` or empty
/// segments, no `;` parameters. Anything else could never match, or match something unexpected.
fn canonical_prefix(prefix: &str) -> Result<(), &'static str> {
    if !prefix.starts_with('/') {
        return Err("must start with /");
    }
    let allowed = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'/' | b'-'
                    | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b'='
            )
    };
    if !prefix.bytes().all(allowed) {
        return Err(
            "may hold only letters, digits and - . _ ~ : @ ! $ & ' ( ) * + , = (no query, escape or ; parameter)",
        );
    }
    let inner = prefix.trim_end_matches('/');
    if inner.len() > 1 && inner[1..].split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err("must not have empty, . or .. segments");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigError;
    use crate::testing::{MINIMAL, parse};

    #[test]
    fn route_prefixes_must_already_be_canonical() {
        for (prefix, why) in [
            ("/Patient/../admin", "empty, . or .. segments"),
            ("/Patient//x", "empty, . or .. segments"),
            ("/./Patient", "empty, . or .. segments"),
            ("/Patient%2Fx", "may hold only"),
            ("/Patient;x", "may hold only"),
            ("/Patient?x=1", "may hold only"),
            ("Patient", "must start with /"),
        ] {
            let text = MINIMAL.replace("path_prefix = \"/Patient/\"", &format!("path_prefix = {prefix:?}"));
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(why), "{prefix}: {err}");
        }
    }

    #[test]
    fn routes_differing_only_in_case_are_refused() {
        let text = format!("{MINIMAL}\n[[route]]\nname = \"lower\"\npath_prefix = \"/patient\"\nupstream = \"pds\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("letter case aside"), "{err}");
    }

    #[test]
    fn route_path_parameters_and_cross_site_default_to_refuse() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.routes[0].path_parameters, PathParameters::Refuse);
        assert_eq!(c.routes[0].cross_site, CrossSite::Refuse);
        let text = MINIMAL.replace(
            "upstream = \"pds\"\n",
            "upstream = \"pds\"\npath_parameters = \"allow\"\ncross_site_requests = \"allow\"\n",
        );
        let c = parse(&text).unwrap();
        assert_eq!((c.routes[0].path_parameters, c.routes[0].cross_site), (PathParameters::Allow, CrossSite::Allow));
    }

    #[test]
    fn route_to_missing_upstream_points_at_the_name() {
        let text = MINIMAL.replace("upstream = \"pds\"", "upstream = \"pdss\"");
        let err = parse(&text).unwrap_err();
        let ConfigError::Invalid { location, message } = err else { panic!("{err}") };
        assert!(message.contains("pdss"));
        let line = text.lines().position(|l| l.contains("\"pdss\"")).unwrap() + 1;
        assert_eq!(location.line, line);
        assert_eq!(location.column, "upstream = ".len() + 1);
    }
}
