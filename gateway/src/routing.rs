//! Host and path-prefix routing to named upstream clusters, on the canonical request target.

use spinegate_config::{PathParameters, Route};

use spinegate_authz::{CompiledRule, Policy};
use spinegate_canonical::{PathError, RequestTarget};

/// A route ready to match.
#[derive(Clone, Debug)]
pub struct CompiledRoute {
    /// Name in logs and metrics.
    pub name: std::sync::Arc<str>,
    host: Option<String>,
    prefix: String,
    /// Index of the upstream cluster.
    pub upstream: usize,
    /// Whether tokens must be certificate-bound here.
    pub token_binding: spinegate_config::TokenBinding,
    /// The 1-based path segment naming the organisation acted for.
    pub organisation_segment: Option<std::num::NonZeroUsize>,
    /// Whether the upstream gets a signed identity assertion.
    pub identity_assertion: bool,
    /// Whether `;` path parameters may reach this route.
    pub path_parameters: PathParameters,
    /// Whether card holders' browsers may send unsafe requests here from other sites.
    pub cross_site: spinegate_config::CrossSite,
    /// The rules, in file order.
    pub rules: Vec<CompiledRule>,
}

impl CompiledRoute {
    /// The first rule covering `method`; none means the request is refused.
    pub fn rule_for(&self, method: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| r.rule.methods.contains(method))
    }

    /// The organisation code in the configured segment of the canonical `path`, if it has it
    /// (path parameters are not part of a segment's value).
    pub fn organisation_in<'p>(&self, path: &'p str) -> Option<&'p str> {
        let n = self.organisation_segment?.get();
        let segment = path.split('/').filter(|s| !s.is_empty()).nth(n - 1)?;
        segment.split(';').next()
    }
}

/// All routes, most specific first: host-specific before any-host, longer prefixes first.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
}

impl RouteTable {
    /// Compiles configured routes, their rules against `policy`.
    pub fn new(routes: &[Route], policy: &Policy) -> Self {
        let mut routes: Vec<CompiledRoute> = routes
            .iter()
            .map(|r| CompiledRoute {
                name: r.name.as_str().into(),
                host: r.host.clone(),
                prefix: r.path_prefix.clone(),
                upstream: r.upstream,
                token_binding: r.token_binding,
                organisation_segment: r.organisation_segment,
                identity_assertion: r.identity_assertion,
                path_parameters: r.path_parameters,
                cross_site: r.cross_site,
                rules: r.rules.iter().map(|rule| CompiledRule::new(rule, policy)).collect(),
            })
            .collect();
        routes.sort_by(|a, b| b.host.is_some().cmp(&a.host.is_some()).then(b.prefix.len().cmp(&a.prefix.len())));
        Self { routes }
    }

    /// The route for a canonical request target. Refused: `;` parameters that the route does
    /// not allow (routes are matched with them cut off, as servlet containers read paths), and a
    /// path whose route would differ if letter case were ignored — an upstream that ignores case
    /// must not be reachable through another route's rules.
    pub fn resolve(&self, target: &RequestTarget) -> Result<Option<&CompiledRoute>, PathError> {
        let host = target.authority.as_ref().map(|a| a.host());
        let path = target.path.for_routing();
        let route = self.find(host, &path, Case::Exact);
        let folded = self.find(host, &path, Case::Folded);
        if route.map(|r| &r.name) != folded.map(|r| &r.name) {
            return Err(PathError::CaseAmbiguous);
        }
        if target.path.has_parameters() && route.is_none_or(|r| r.path_parameters == PathParameters::Refuse) {
            return Err(PathError::Parameters);
        }
        Ok(route)
    }

    /// The most specific route for a canonical `host` (lower case, no port) and routing `path`.
    fn find(&self, host: Option<&str>, path: &str, case: Case) -> Option<&CompiledRoute> {
        self.routes.iter().find(|r| {
            let host_ok = match (&r.host, host) {
                (None, _) => true,
                (Some(want), Some(got)) => want == got,
                (Some(_), None) => false,
            };
            host_ok && prefix_matches(&r.prefix, path, case)
        })
    }
}

/// How a prefix is compared with a path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Byte for byte: how routes match.
    Exact,
    /// ASCII case folded: how a case-insensitive upstream would read the path.
    Folded,
}

/// Whole-segment prefix match: `/Patient` matches `/Patient` and `/Patient/9000000009`, not
/// `/PatientRecords`.
fn prefix_matches(prefix: &str, path: &str, case: Case) -> bool {
    if prefix == "/" {
        return true;
    }
    let Some(head) = path.get(..prefix.len()) else { return false };
    let same = match case {
        Case::Exact => head == prefix,
        Case::Folded => head.eq_ignore_ascii_case(prefix),
    };
    let rest = &path[prefix.len()..];
    same && (rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinegate_canonical::CanonicalAuthority;

    fn route(name: &str, host: Option<&str>, prefix: &str, upstream: usize) -> Route {
        Route {
            name: name.into(),
            host: host.map(str::to_owned),
            path_prefix: prefix.into(),
            upstream,
            token_binding: spinegate_config::TokenBinding::IfPresent,
            organisation_segment: None,
            identity_assertion: false,
            path_parameters: PathParameters::Refuse,
            cross_site: spinegate_config::CrossSite::Refuse,
            rules: Vec::new(),
        }
    }

    fn policy() -> Policy {
        Policy::new(&spinegate_config::Authorization::default(), [])
    }

    fn table() -> RouteTable {
        RouteTable::new(
            &[
                route("root", None, "/", 0),
                route("patient", None, "/Patient", 1),
                route("patient-host", Some("spine.example"), "/Patient", 2),
                route("deep", None, "/Patient/admin", 3),
            ],
            &policy(),
        )
    }

    /// The route name for `host` and raw `path`, or the refusal.
    fn resolve(t: &RouteTable, host: Option<&str>, path: &str) -> Result<Option<String>, PathError> {
        let target = RequestTarget {
            path: spinegate_canonical::CanonicalPath::parse(path)?,
            query: None,
            authority: host.map(|h| CanonicalAuthority::parse(h).unwrap()),
        };
        t.resolve(&target).map(|r| r.map(|r| r.name.to_string()))
    }

    #[test]
    fn organisation_segment_is_read_from_the_canonical_path() {
        let mut r = route("org", None, "/Organization", 0);
        r.organisation_segment = std::num::NonZeroUsize::new(2);
        let t = RouteTable::new(&[r], &policy());
        let target = RequestTarget {
            path: spinegate_canonical::CanonicalPath::parse("/Organization/A81001/Patient").unwrap(),
            query: None,
            authority: None,
        };
        let route = t.resolve(&target).unwrap().unwrap();
        assert_eq!(route.organisation_in("/Organization/A81001/Patient"), Some("A81001"));
        assert_eq!(route.organisation_in("/Organization/A81001;v=1/Patient"), Some("A81001"));
        assert_eq!(route.organisation_in("/Organization"), None);
    }

    #[test]
    fn longest_prefix_and_host_specific_routes_win() {
        let t = table();
        assert_eq!(resolve(&t, Some("other"), "/Patient/1").unwrap().unwrap(), "patient");
        assert_eq!(resolve(&t, Some("SPINE.example:8443"), "/Patient/1").unwrap().unwrap(), "patient-host");
        assert_eq!(resolve(&t, Some("spine.example."), "/Patient/1").unwrap().unwrap(), "patient-host");
        assert_eq!(resolve(&t, None, "/Patient/admin/x").unwrap().unwrap(), "deep");
        assert_eq!(resolve(&t, None, "/metadata").unwrap().unwrap(), "root");
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        let t = RouteTable::new(&[route("patient", None, "/Patient", 0)], &policy());
        assert!(resolve(&t, None, "/Patient").unwrap().is_some());
        assert!(resolve(&t, None, "/Patient/9000000009").unwrap().is_some());
        assert!(resolve(&t, None, "/PatientRecords").unwrap().is_none());
        assert!(resolve(&t, None, "/").unwrap().is_none());
    }

    #[test]
    fn dot_segment_attack_is_routed_by_where_it_lands() {
        let t = table();
        assert_eq!(resolve(&t, None, "/metadata/../Patient/admin/x").unwrap().unwrap(), "deep");
        assert_eq!(resolve(&t, None, "/Patient/1/../admin").unwrap().unwrap(), "deep");
    }

    #[test]
    fn case_variant_of_a_route_prefix_is_refused() {
        let t = table();
        assert_eq!(resolve(&t, None, "/patient/9000000009"), Err(PathError::CaseAmbiguous));
        assert_eq!(resolve(&t, None, "/Patient/ADMIN"), Err(PathError::CaseAmbiguous));
        assert_eq!(resolve(&t, None, "/METADATA").unwrap().unwrap(), "root", "no other route under any case");
    }

    #[test]
    fn path_parameters_need_a_route_that_allows_them() {
        let t = table();
        assert_eq!(resolve(&t, None, "/Patient;jsessionid=x/9000000009"), Err(PathError::Parameters));
        let mut open = route("patient", None, "/Patient", 0);
        open.path_parameters = PathParameters::Allow;
        let t = RouteTable::new(&[route("root", None, "/", 1), open], &policy());
        assert_eq!(resolve(&t, None, "/Patient;jsessionid=x/9000000009").unwrap().unwrap(), "patient");
        assert_eq!(resolve(&t, None, "/metadata;x"), Err(PathError::Parameters));
    }
}
