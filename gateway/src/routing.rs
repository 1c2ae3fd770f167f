//! Host and path-prefix routing to named upstream clusters.

use spinegate_config::Route;

use crate::authz::{CompiledRule, Policy};

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
    /// The rules, in file order.
    pub rules: Vec<CompiledRule>,
}

impl CompiledRoute {
    /// The first rule covering `method`; none means the request is refused.
    pub fn rule_for(&self, method: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| r.rule.methods.contains(method))
    }

    /// The organisation code in the configured path segment, if the path has it.
    pub fn organisation_in<'p>(&self, path: &'p str) -> Option<&'p str> {
        let n = self.organisation_segment?.get();
        path.split('?').next().unwrap_or(path).split('/').filter(|s| !s.is_empty()).nth(n - 1)
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
                rules: r.rules.iter().map(|rule| CompiledRule::new(rule, policy)).collect(),
            })
            .collect();
        routes.sort_by(|a, b| b.host.is_some().cmp(&a.host.is_some()).then(b.prefix.len().cmp(&a.prefix.len())));
        Self { routes }
    }

    /// The route for `host` (any case, port allowed) and `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&CompiledRoute> {
        let host = host.map(strip_port);
        self.routes.iter().find(|r| {
            let host_ok = match (&r.host, host) {
                (None, _) => true,
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                (Some(_), None) => false,
            };
            host_ok && prefix_matches(&r.prefix, path)
        })
    }
}

/// Whole-segment prefix match: `/Patient` matches `/Patient` and `/Patient/9000000009`, not
/// `/PatientRecords`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

/// `host[:port]` or `[v6]:port` without the port.
pub(crate) fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RouteTable {
        fn new_for_test(routes: &[Route]) -> Self {
            Self::new(routes, &policy())
        }
    }

    #[test]
    fn organisation_segment_is_read_from_the_path() {
        let mut r = route("org", None, "/Organization", 0);
        r.organisation_segment = std::num::NonZeroUsize::new(2);
        let t = RouteTable::new(&[r], &policy());
        let route = t.find(None, "/Organization/A81001/Patient").unwrap();
        assert_eq!(route.organisation_in("/Organization/A81001/Patient?x=1"), Some("A81001"));
        assert_eq!(route.organisation_in("/Organization"), None);
    }

    fn route(name: &str, host: Option<&str>, prefix: &str, upstream: usize) -> Route {
        Route {
            name: name.into(),
            host: host.map(str::to_owned),
            path_prefix: prefix.into(),
            upstream,
            token_binding: spinegate_config::TokenBinding::IfPresent,
            organisation_segment: None,
            identity_assertion: false,
            rules: Vec::new(),
        }
    }

    fn policy() -> Policy {
        Policy::new(&spinegate_config::Authorization::default(), &[] as &[spinegate_config::Rule])
    }

    fn table() -> RouteTable {
        RouteTable::new_for_test(&[
            route("root", None, "/", 0),
            route("patient", None, "/Patient", 1),
            route("patient-host", Some("spine.example"), "/Patient", 2),
            route("deep", None, "/Patient/admin", 3),
        ])
    }

    #[test]
    fn longest_prefix_and_host_specific_routes_win() {
        let t = table();
        assert_eq!(t.find(Some("other"), "/Patient/1").unwrap().name.as_ref(), "patient");
        assert_eq!(t.find(Some("SPINE.example:8443"), "/Patient/1").unwrap().name.as_ref(), "patient-host");
        assert_eq!(t.find(None, "/Patient/admin/x").unwrap().name.as_ref(), "deep");
        assert_eq!(t.find(None, "/metadata").unwrap().name.as_ref(), "root");
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        let t = RouteTable::new_for_test(&[route("patient", None, "/Patient", 0)]);
        assert!(t.find(None, "/Patient").is_some());
        assert!(t.find(None, "/Patient/9000000009").is_some());
        assert!(t.find(None, "/PatientRecords").is_none());
        assert!(t.find(None, "/").is_none());
    }

    #[test]
    fn ports_and_ipv6_literals_are_stripped() {
        assert_eq!(strip_port("a.example:443"), "a.example");
        assert_eq!(strip_port("[::1]:8443"), "::1");
        assert_eq!(strip_port("a.example"), "a.example");
    }
}
