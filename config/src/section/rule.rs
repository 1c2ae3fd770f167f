//! `[[route.rule]]`: who may do what on a route, by method.
//!
//! A rule is written inside its `[[route]]` but read against `[authorization]`: its activity codes
//! must be in the catalogue, and the distinct codes of every route together are bounded by what
//! one policy can intern ([`MAX_POLICY_ACTIVITIES`]); the validated [`Rule`] is `spinegate-authz`'s.
//! So rules are their own file between the two: `route` depends on this file, this file on
//! `authorization`, and the composer hands the validated catalogue down.

use std::collections::BTreeSet;

use serde::Deserialize;
use spinegate_vocab::{AssuranceLevel, Authenticator};
use toml::Spanned;

pub use spinegate_authz::{MAX_POLICY_ACTIVITIES, MethodSet, Rule};

use super::authorization::{Authorization, activity};
use crate::error::ConfigError;
use crate::syntax::{Ctx, yes};

/// `[[route.rule]]`: who may do what on a route, by method.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Methods the rule covers (`["GET", "HEAD"]`, or `["*"]`).
    pub methods: Spanned<Vec<String>>,
    /// No authentication at all (only where explicitly said).
    #[serde(default)]
    pub public: bool,
    /// The selected role must hold at least one of these activities.
    #[serde(default)]
    pub activities_any: Vec<Spanned<String>>,
    /// The selected role must hold every one of these activities.
    #[serde(default)]
    pub activities_all: Vec<Spanned<String>>,
    /// Whether the organisation the request names must be the selected role's (or related).
    #[serde(default = "yes")]
    pub organisation_scope: bool,
    /// Lowest acceptable authentication assurance level (1–3).
    pub min_assurance: Option<Spanned<u8>>,
    /// `"smartcard"` and/or `"token"`; both by default.
    pub auth_methods: Option<Spanned<Vec<String>>>,
    /// Authenticator kinds accepted; any by default.
    pub authenticators: Option<Spanned<Vec<String>>>,
}

/// One route's rules, validated against the catalogue. `distinct` gathers the activity codes of
/// every route's rules so far: one policy interns them all.
pub(crate) fn validate(
    ctx: &Ctx<'_>,
    auth: &Authorization,
    raw: &[Spanned<RawRule>],
    distinct: &mut BTreeSet<String>,
) -> Result<Vec<Rule>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for spanned in raw {
        let r = spanned.get_ref();
        let methods = match MethodSet::parse(r.methods.get_ref().iter().map(String::as_str)) {
            Ok(Some(methods)) => methods,
            Ok(None) => return Err(ctx.invalid(r.methods.span(), "methods is empty: the rule would cover nothing")),
            Err(m) => {
                let known = spinegate_authz::rule::METHODS.join(", ");
                return Err(ctx.invalid(r.methods.span(), format!("method {m:?} is not one of \"*\", {known}")));
            }
        };
        let activities_any = r.activities_any.iter().map(|a| activity(ctx, auth, a)).collect::<Result<Vec<_>, _>>()?;
        let activities_all = r.activities_all.iter().map(|a| activity(ctx, auth, a)).collect::<Result<Vec<_>, _>>()?;
        distinct.extend(activities_any.iter().cloned());
        distinct.extend(activities_all.iter().cloned());
        let min_assurance = match &r.min_assurance {
            None => AssuranceLevel::Aal1,
            Some(n) => AssuranceLevel::from_number(*n.get_ref())
                .ok_or_else(|| ctx.invalid(n.span(), "min_assurance is 1, 2 or 3 (AAL)"))?,
        };
        let (smartcard, token) = auth_methods(ctx, r.auth_methods.as_ref())?;
        let authenticators = authenticators(ctx, r.authenticators.as_ref())?;
        let constrained = !activities_any.is_empty()
            || !activities_all.is_empty()
            || r.min_assurance.is_some()
            || r.auth_methods.is_some()
            || r.authenticators.is_some();
        if r.public && constrained {
            return Err(ctx.invalid(
                spanned.span(),
                "a public rule admits unauthenticated requests: it cannot also ask for activities, assurance or methods",
            ));
        }
        out.push(Rule {
            methods,
            public: r.public,
            activities_any,
            activities_all,
            organisation_scope: r.organisation_scope && !r.public,
            min_assurance,
            smartcard,
            token,
            authenticators,
        });
    }
    if distinct.len() > MAX_POLICY_ACTIVITIES {
        return Err(ctx.global(format!(
            "rules name {} distinct activity codes; at most {MAX_POLICY_ACTIVITIES} are supported",
            distinct.len()
        )));
    }
    Ok(out)
}

/// Whether smartcards and tokens may pass: both unless `auth_methods` says otherwise.
fn auth_methods(ctx: &Ctx<'_>, list: Option<&Spanned<Vec<String>>>) -> Result<(bool, bool), ConfigError> {
    let Some(list) = list else { return Ok((true, true)) };
    let (mut smartcard, mut token) = (false, false);
    for m in list.get_ref() {
        match m.as_str() {
            "smartcard" => smartcard = true,
            "token" => token = true,
            other => {
                return Err(
                    ctx.invalid(list.span(), format!("auth method {other:?} is not \"smartcard\" or \"token\""))
                );
            }
        }
    }
    if !smartcard && !token {
        return Err(ctx.invalid(list.span(), "auth_methods is empty: nobody could pass"));
    }
    Ok((smartcard, token))
}

/// The authenticator kinds accepted; any when `None`.
fn authenticators(
    ctx: &Ctx<'_>,
    list: Option<&Spanned<Vec<String>>>,
) -> Result<Option<Vec<Authenticator>>, ConfigError> {
    let Some(list) = list else { return Ok(None) };
    let mut kinds = Vec::with_capacity(list.get_ref().len());
    for name in list.get_ref() {
        let kind = Authenticator::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = Authenticator::ALL.iter().map(|a| a.as_str()).collect();
            ctx.invalid(list.span(), format!("authenticator {name:?} is not one of {}", known.join(", ")))
        })?;
        kinds.push(kind);
    }
    if kinds.is_empty() {
        return Err(ctx.invalid(list.span(), "authenticators is empty: nobody could pass"));
    }
    Ok(Some(kinds))
}

/// Warnings about one route's rules that load but cannot do what they seem to: a route every
/// request to which is refused, rules that never apply because earlier rules cover their methods,
/// and rules nobody can satisfy.
pub(crate) fn lint(route: &str, rules: &[Rule]) -> Vec<String> {
    let mut warnings = Vec::new();
    if rules.is_empty() {
        warnings.push(format!(
            "route {route:?} has no [[route.rule]]: every request to it is refused (403 activity_not_permitted)"
        ));
        return warnings;
    }
    for (i, rule) in rules.iter().enumerate() {
        if let Some((j, _)) = rules[..i].iter().enumerate().find(|(_, earlier)| earlier.methods.covers(rule.methods)) {
            warnings.push(format!(
                "route {route:?} rule {} (methods {}) is shadowed by rule {}: it never applies",
                i + 1,
                rule.methods.names(),
                j + 1
            ));
        }
        if let Some(reason) = unsatisfiable(rule) {
            warnings.push(format!("route {route:?} rule {} can never be satisfied: {reason}", i + 1));
        }
    }
    if rules.iter().all(|r| unsatisfiable(r).is_some()) {
        warnings.push(format!("route {route:?} can never match: no rule of it can be satisfied"));
    }
    warnings
}

fn unsatisfiable(rule: &Rule) -> Option<String> {
    if rule.public {
        return None;
    }
    let kinds = rule.authenticators.as_deref();
    let smartcard_kind = kinds.is_none_or(|k| k.contains(&Authenticator::Smartcard));
    let token_kind = kinds.is_none_or(|k| !k.is_empty());
    if !((rule.smartcard && smartcard_kind) || (rule.token && token_kind)) {
        return Some("its auth_methods and authenticators exclude each other".into());
    }
    // Whether a role can hold the activities is not knowable before role data arrives; unknown
    // codes were refused at load.
    None
}

#[cfg(test)]
mod tests {
    use crate::testing::parse_with as parse;

    fn route(rules: &str) -> String {
        format!("[[route]]\nname = \"records\"\npath_prefix = \"/Records\"\nupstream = \"pds\"\n{rules}")
    }

    #[test]
    fn rules_are_read_with_their_defaults() {
        let c = parse(&route("[[route.rule]]\nmethods = [\"GET\", \"HEAD\"]\nactivities_any = [\"B0820\"]\n")).unwrap();
        let rule = &c.routes[1].rules[0];
        assert!(rule.methods.contains("GET") && rule.methods.contains("HEAD") && !rule.methods.contains("POST"));
        assert!(rule.organisation_scope, "organisation scope is on unless turned off");
        assert!(rule.smartcard && rule.token && rule.authenticators.is_none());
        assert_eq!(rule.min_assurance, spinegate_vocab::AssuranceLevel::Aal1);
        assert!(rule.needs_role());
        let any = parse(&route("[[route.rule]]\nmethods = [\"*\"]\n")).unwrap();
        assert!(any.routes[1].rules[0].methods.contains("PROPFIND"), "\"*\" covers every method");
    }

    #[test]
    fn bad_rules_are_refused_where_they_are_written() {
        for (rules, expect) in [
            ("methods = [\"FETCH\"]", "method \"FETCH\""),
            ("methods = []", "methods is empty"),
            ("methods = [\"GET\"]\nactivities_any = [\"X0820\"]", "is not an activity code"),
            ("methods = [\"GET\"]\nmin_assurance = 4", "min_assurance is 1, 2 or 3"),
            ("methods = [\"GET\"]\nauth_methods = [\"password\"]", "is not \"smartcard\" or \"token\""),
            ("methods = [\"GET\"]\nauth_methods = []", "nobody could pass"),
            ("methods = [\"GET\"]\nauthenticators = [\"fingerprint\"]", "authenticator \"fingerprint\""),
            ("methods = [\"GET\"]\npublic = true\nactivities_any = [\"B0820\"]", "a public rule"),
            ("methods = [\"GET\"]\nscope = true", "unknown field"),
        ] {
            let err = parse(&route(&format!("[[route.rule]]\n{rules}\n"))).unwrap_err().to_string();
            assert!(err.contains(expect), "{rules}: {err}");
            assert!(err.contains("spinegate.toml:"), "errors point at the file: {err}");
        }
    }

    #[test]
    fn lint_reports_rule_less_routes_shadowed_rules_and_impossible_rules() {
        let c = parse(&route(
            "[[route.rule]]\nmethods = [\"*\"]\n\
             [[route.rule]]\nmethods = [\"GET\"]\n\
             [[route.rule]]\nmethods = [\"POST\"]\nauth_methods = [\"smartcard\"]\nauthenticators = [\"security_key\"]\n",
        ))
        .unwrap();
        let warnings = crate::lint(&c);
        assert!(warnings.iter().any(|w| w.contains("rule 2 (methods GET) is shadowed by rule 1")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("rule 3 can never be satisfied")), "{warnings:?}");
        let bare = parse(&route("")).unwrap();
        assert!(crate::lint(&bare).iter().any(|w| w.contains("\"records\" has no [[route.rule]]")));
        let never = parse(&route(
            "[[route.rule]]\nmethods = [\"GET\"]\nauth_methods = [\"smartcard\"]\nauthenticators = [\"nhsmail\"]\n",
        ))
        .unwrap();
        assert!(crate::lint(&never).iter().any(|w| w.contains("can never match")), "{:?}", crate::lint(&never));
    }
}
