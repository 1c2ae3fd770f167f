//! Warnings about a configuration that loads but deserves a second look: printed by
//! `spinegate check-config`, logged at start and on every reload. Rules that cannot do what they
//! seem to (each route's, from the `rule` section), and the risky settings that remain
//! deliberate choices: a plain LDAP role directory, an upstream given the client's `Host`, and
//! a public route whose prefix overlaps a protected one.

use crate::config::Config;
use crate::section::role_directory::RoleDirectory;
use crate::section::route::Route;
use crate::section::rule;
use crate::section::upstream::HostHeader;

/// Every warning for `config`.
pub fn lint(config: &Config) -> Vec<String> {
    let mut warnings: Vec<String> = config.routes.iter().flat_map(|r| rule::lint(&r.name, &r.rules)).collect();
    if let RoleDirectory::Ldap(ldap) = &config.role_directory
        && ldap.url.starts_with("ldap://")
        && !ldap.starttls
    {
        warnings.push(format!(
            "[role_directory.ldap] {} is plain LDAP without StartTLS: the bind password and every user's role \
             profiles cross the network readable and alterable; use ldaps:// or starttls = true",
            ldap.url
        ));
    }
    for upstream in config.upstreams.iter().filter(|u| u.host_header == HostHeader::Preserve) {
        warnings.push(format!(
            "upstream {:?} has host_header = \"preserve\": it receives the Host the client chose (checked and \
             canonicalised, but the client's); an upstream that routes, builds links or checks tenants by Host \
             trusts it",
            upstream.name
        ));
    }
    for public in config.routes.iter().filter(|r| r.rules.iter().any(|rule| rule.public)) {
        for protected in config.routes.iter().filter(|r| r.rules.iter().any(|rule| !rule.public)) {
            if public.name != protected.name && hosts_overlap(public, protected) && prefixes_overlap(public, protected)
            {
                warnings.push(format!(
                    "public route {:?} ({}) shares a path prefix with protected route {:?} ({}): the gateway judges \
                     the canonical path, but an upstream that reads paths differently could serve one's resources \
                     under the other's name; give public resources a prefix of their own",
                    public.name, public.path_prefix, protected.name, protected.path_prefix
                ));
            }
        }
    }
    warnings
}

/// Whether some request could be routed to either route by host.
fn hosts_overlap(a: &Route, b: &Route) -> bool {
    match (&a.host, &b.host) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Whether one prefix contains the other, on whole segments.
fn prefixes_overlap(a: &Route, b: &Route) -> bool {
    let within = |outer: &str, inner: &str| {
        outer == "/" || inner == outer || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('/'))
    };
    within(&a.path_prefix, &b.path_prefix) || within(&b.path_prefix, &a.path_prefix)
}

#[cfg(test)]
mod tests {
    use crate::testing::MINIMAL;

    fn warnings(extra: &str) -> Vec<String> {
        let text = format!("{MINIMAL}\n{extra}");
        let c = crate::parse(&text, None, std::path::Path::new("/etc/spinegate")).unwrap();
        crate::lint(&c)
    }

    #[test]
    fn plain_ldap_without_starttls_is_warned_about() {
        let ldap = "[role_directory.ldap]\nurl = \"ldap://directory.internal\"\nbase_dn = \"ou=People,o=nhs\"\n";
        assert!(warnings(ldap).iter().any(|w| w.contains("plain LDAP without StartTLS")), "{:?}", warnings(ldap));
        let starttls = format!("{ldap}starttls = true\nca = [\"ldap-ca.pem\"]\n");
        assert!(!warnings(&starttls).iter().any(|w| w.contains("plain LDAP")));
        let ldaps = format!("{}ca = [\"ldap-ca.pem\"]\n", ldap.replace("ldap://", "ldaps://"));
        assert!(!warnings(&ldaps).iter().any(|w| w.contains("plain LDAP")));
    }

    #[test]
    fn preserved_host_is_warned_about() {
        let text = MINIMAL.replace(
            "endpoints = [\"http://127.0.0.1:9000\"]",
            "endpoints = [\"http://127.0.0.1:9000\"]\nhost_header = \"preserve\"",
        );
        let c = crate::parse(&text, None, std::path::Path::new("/etc/spinegate")).unwrap();
        assert!(crate::lint(&c).iter().any(|w| w.contains("host_header = \"preserve\"")));
    }

    #[test]
    fn a_public_route_overlapping_a_protected_one_is_warned_about() {
        let routes = |public_prefix: &str| {
            format!(
                "[[route.rule]]\nmethods = [\"GET\"]\nactivities_any = [\"B0360\"]\n\
                 [[route]]\nname = \"open\"\npath_prefix = \"{public_prefix}\"\nupstream = \"pds\"\n\
                 [[route.rule]]\nmethods = [\"GET\"]\npublic = true\n"
            )
        };
        let overlap = |w: &Vec<String>| w.iter().any(|w| w.contains("shares a path prefix"));
        assert!(overlap(&warnings(&routes("/"))), "/ contains /Patient");
        assert!(overlap(&warnings(&routes("/Patient/public"))), "inside a protected route");
        assert!(!overlap(&warnings(&routes("/metadata"))), "a prefix of its own");
        assert!(!overlap(&warnings(&routes("/PatientX"))), "whole segments only");
    }
}
