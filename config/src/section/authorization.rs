//! `[authorization]`: the activity catalogue, baseline activities per job role
//! (`[[authorization.baseline]]`) and organisation relations (`[[authorization.organisation]]`).
//! The validated form is `spinegate-authz`'s [`Authorization`]; route rules are read against it
//! (see the `rule` section).

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use spinegate_vocab::{is_activity_code, is_ods_code, job_role};
use toml::Spanned;

pub use spinegate_authz::Authorization;

use crate::error::ConfigError;
use crate::syntax::Ctx;

/// `[authorization]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthorization {
    /// The activity catalogue: code → name. When given, every code the file names must be in it.
    pub activities: Option<BTreeMap<String, String>>,
    /// `[[authorization.baseline]]`: activities every holder of a job role has.
    #[serde(default)]
    pub baseline: Vec<Spanned<RawBaseline>>,
    /// `[[authorization.organisation]]`: parent organisations and their children.
    #[serde(default)]
    pub organisation: Vec<Spanned<RawOrganisation>>,
}

/// `[[authorization.baseline]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBaseline {
    /// Job role code (`R8000`), or a full role code whose last `R…` segment is used.
    pub role: Spanned<String>,
    /// Activity codes.
    pub activities: Vec<Spanned<String>>,
}

/// `[[authorization.organisation]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrganisation {
    /// The parent ODS code.
    pub parent: Spanned<String>,
    /// Its children's ODS codes.
    pub children: Vec<Spanned<String>>,
}

/// `[authorization]`, validated: codes well-formed and in the catalogue, one baseline per job
/// role, organisation relations a forest.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &RawAuthorization) -> Result<Authorization, ConfigError> {
    let mut out = Authorization { activities: raw.activities.clone(), ..Authorization::default() };
    if let Some(catalogue) = &out.activities
        && let Some(bad) = catalogue.keys().find(|c| !is_activity_code(c))
    {
        return Err(ctx.global(format!("[authorization] activities: {bad:?} is not an activity code")));
    }
    for b in &raw.baseline {
        let b = b.get_ref();
        let role = job_role(b.role.get_ref()).to_owned();
        if !role.starts_with('R') || role.len() < 2 {
            return Err(ctx.invalid(b.role.span(), "role must be a job role code such as \"R8000\""));
        }
        let codes = b.activities.iter().map(|a| activity(ctx, &out, a)).collect::<Result<Vec<_>, _>>()?;
        if out.baseline.insert(role.clone(), codes).is_some() {
            return Err(ctx.invalid(b.role.span(), format!("job role {role:?} has two baseline entries")));
        }
    }
    let mut parent_of: BTreeMap<String, String> = BTreeMap::new();
    for o in &raw.organisation {
        let o = o.get_ref();
        let parent = ods(ctx, &o.parent)?;
        let mut children = Vec::with_capacity(o.children.len());
        for child in &o.children {
            let c = ods(ctx, child)?;
            if let Some(other) = parent_of.insert(c.clone(), parent.clone()) {
                return Err(ctx.invalid(child.span(), format!("{c:?} already has parent {other:?}")));
            }
            children.push(c);
        }
        out.organisations.entry(parent).or_default().extend(children);
    }
    // A cycle would make every organisation in it related to every other.
    for start in parent_of.keys() {
        let mut seen = HashSet::new();
        let mut at = start;
        while let Some(parent) = parent_of.get(at) {
            if !seen.insert(parent) || parent == start {
                return Err(ctx.global(format!("[[authorization.organisation]]: {start:?} is its own ancestor")));
            }
            at = parent;
        }
    }
    Ok(out)
}

/// An activity code the file names: well-formed, and in the catalogue when there is one.
pub(crate) fn activity(ctx: &Ctx<'_>, auth: &Authorization, code: &Spanned<String>) -> Result<String, ConfigError> {
    let c = code.get_ref();
    match &auth.activities {
        Some(catalogue) if !catalogue.contains_key(c) => {
            Err(ctx.invalid(code.span(), format!("unknown activity code {c:?}: not in [authorization] activities")))
        }
        _ if !is_activity_code(c) => {
            Err(ctx.invalid(code.span(), format!("{c:?} is not an activity code (write e.g. \"B0820\")")))
        }
        _ => Ok(c.clone()),
    }
}

fn ods(ctx: &Ctx<'_>, code: &Spanned<String>) -> Result<String, ConfigError> {
    let c = code.get_ref().to_ascii_uppercase();
    if !is_ods_code(&c) {
        return Err(ctx.invalid(code.span(), format!("{:?} is not an ODS code", code.get_ref())));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use crate::testing::parse_with as parse;

    #[test]
    fn the_catalogue_makes_unknown_activity_codes_errors() {
        let route = |rules: &str| {
            format!("[[route]]\nname = \"records\"\npath_prefix = \"/Records\"\nupstream = \"pds\"\n{rules}")
        };
        let catalogue = "[authorization]\nactivities = { B0820 = \"View patient demographics\" }\n";
        assert!(
            parse(&format!(
                "{catalogue}{}",
                route("[[route.rule]]\nmethods = [\"GET\"]\nactivities_any = [\"B0820\"]\n")
            ))
            .is_ok()
        );
        let err = parse(&format!(
            "{catalogue}{}",
            route("[[route.rule]]\nmethods = [\"GET\"]\nactivities_all = [\"B0825\"]\n")
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown activity code \"B0825\""), "{err}");
        let err =
            parse(&format!("{catalogue}[[authorization.baseline]]\nrole = \"R8000\"\nactivities = [\"B9999\"]\n"))
                .unwrap_err()
                .to_string();
        assert!(err.contains("unknown activity code \"B9999\""), "{err}");
    }

    #[test]
    fn organisation_relations_must_form_a_forest() {
        let ok = "[[authorization.organisation]]\nparent = \"RX1\"\nchildren = [\"RX101\", \"rx102\"]\n";
        let c = parse(ok).unwrap();
        assert_eq!(c.authorization.organisations["RX1"], ["RX101", "RX102"]);
        let two_parents = format!("{ok}[[authorization.organisation]]\nparent = \"RX2\"\nchildren = [\"RX101\"]\n");
        assert!(parse(&two_parents).unwrap_err().to_string().contains("already has parent"));
        let cycle = format!("{ok}[[authorization.organisation]]\nparent = \"RX101\"\nchildren = [\"RX1\"]\n");
        assert!(parse(&cycle).unwrap_err().to_string().contains("its own ancestor"));
    }
}
