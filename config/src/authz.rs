//! Authorisation settings: route rules (`[[route.rule]]`), the activity catalogue, baseline
//! activities per job role, organisation relations, the role directory, the audit log and the
//! signed identity assertion — as written ([`raw`]-style structs here), validated, and linted.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use spinegate_vocab::{AssuranceLevel, Authenticator, is_activity_code, is_ods_code, job_role};
use toml::Spanned;

use crate::error::ConfigError;
use crate::raw::HumanDuration;
use crate::validate::Ctx;

// ----------------------------------------------------------------------------------------------
// As written

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

fn yes() -> bool {
    true
}

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

/// `[role_directory]`: where smartcard users' role profiles come from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoleDirectory {
    /// A TOML or JSON file (by extension), reloaded when it changes.
    pub file: Option<Spanned<String>>,
    /// How often the file is checked for changes.
    #[serde(default = "default_directory_poll")]
    pub poll_interval: HumanDuration,
    /// An LDAP directory.
    pub ldap: Option<Spanned<RawLdap>>,
}

impl Default for RawRoleDirectory {
    fn default() -> Self {
        Self { file: None, poll_interval: default_directory_poll(), ldap: None }
    }
}

fn default_directory_poll() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}

/// `[role_directory.ldap]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLdap {
    /// `ldap://host:port` (StartTLS with `starttls = true`) or `ldaps://host:port`.
    pub url: Spanned<String>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// CA certificates for `ldaps://` or StartTLS.
    #[serde(default)]
    pub ca: Vec<Spanned<String>>,
    /// Simple bind DN; anonymous when absent.
    pub bind_dn: Option<String>,
    /// File holding the bind password.
    pub bind_password_file: Option<Spanned<String>>,
    /// Base DN of the subtree searched.
    pub base_dn: String,
    /// Search filter; `{user_id}` is replaced by the (escaped) user id.
    #[serde(default = "default_ldap_filter")]
    pub filter: Spanned<String>,
    /// Attribute names.
    #[serde(default)]
    pub attributes: RawLdapAttributes,
    /// Connections kept open.
    #[serde(default = "default_ldap_pool")]
    pub pool_size: Spanned<u64>,
    /// Connect and search timeout.
    #[serde(default = "default_ldap_timeout")]
    pub timeout: HumanDuration,
    /// How long an answer is reused: a changed entry shows within this.
    #[serde(default = "default_ldap_ttl")]
    pub cache_ttl: HumanDuration,
    /// Most users whose answers are remembered.
    #[serde(default = "default_ldap_entries")]
    pub cache_entries: u64,
}

fn default_ldap_filter() -> Spanned<String> {
    Spanned::new(0..0, "(&(objectClass=nhsOrgPersonRole)(uid={user_id}))".into())
}
fn default_ldap_pool() -> Spanned<u64> {
    Spanned::new(0..0, 4)
}
fn default_ldap_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}
fn default_ldap_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_ldap_entries() -> u64 {
    100_000
}

/// `[role_directory.ldap.attributes]`: each entry found is one role profile.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawLdapAttributes {
    /// The role profile id (URID).
    #[serde(default = "attr_id")]
    pub role_profile_id: String,
    /// The organisation's ODS code.
    #[serde(default = "attr_org")]
    pub organisation: String,
    /// The role code (`S8000:G8000:R8000`).
    #[serde(default = "attr_role")]
    pub role_code: String,
    /// Activity codes (multi-valued).
    #[serde(default = "attr_activities")]
    pub activities: String,
    /// Workgroup codes (multi-valued, optional in entries).
    #[serde(default = "attr_workgroups")]
    pub workgroups: String,
}

impl Default for RawLdapAttributes {
    fn default() -> Self {
        Self {
            role_profile_id: attr_id(),
            organisation: attr_org(),
            role_code: attr_role(),
            activities: attr_activities(),
            workgroups: attr_workgroups(),
        }
    }
}

fn attr_id() -> String {
    "uniqueIdentifier".into()
}
fn attr_org() -> String {
    "nhsOrgCode".into()
}
fn attr_role() -> String {
    "nhsJobRoleCode".into()
}
fn attr_activities() -> String {
    "nhsActivityCode".into()
}
fn attr_workgroups() -> String {
    "nhsWorkgroupCode".into()
}

/// `[audit]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// File the records are appended to; standard output when absent.
    pub file: Option<Spanned<String>>,
    /// Records waiting to be written before new ones are dropped (and counted).
    #[serde(default = "default_audit_queue")]
    pub queue: Spanned<u64>,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self { file: None, queue: default_audit_queue() }
    }
}

fn default_audit_queue() -> Spanned<u64> {
    Spanned::new(0..0, 65_536)
}

/// `[identity_assertion]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityAssertion {
    /// `iss` of the assertions.
    pub issuer: String,
    /// PKCS#8 PEM private key (ECDSA P-256: ES256) the assertions are signed with.
    pub key: Spanned<String>,
    /// Keys no longer signing but still published (rotation).
    #[serde(default)]
    pub previous_keys: Vec<Spanned<String>>,
    /// How long an assertion is valid.
    #[serde(default = "default_assertion_lifetime")]
    pub lifetime: HumanDuration,
}

fn default_assertion_lifetime() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

// ----------------------------------------------------------------------------------------------
// Validated

pub use spinegate_authz::{Authorization, MAX_POLICY_ACTIVITIES, MethodSet, Rule};

/// `[role_directory]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RoleDirectory {
    /// No directory: smartcard users hold no role profiles.
    #[default]
    None,
    /// A TOML or JSON file.
    File {
        /// Its path.
        path: PathBuf,
        /// How often it is checked for changes.
        poll_interval: Duration,
    },
    /// An LDAP directory.
    Ldap(Box<Ldap>),
}

/// `[role_directory.ldap]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ldap {
    /// Server URL.
    pub url: String,
    /// StartTLS on `ldap://`.
    pub starttls: bool,
    /// CAs for TLS.
    pub ca: Vec<PathBuf>,
    /// Simple bind DN.
    pub bind_dn: Option<String>,
    /// Bind password file.
    pub bind_password_file: Option<PathBuf>,
    /// Search base.
    pub base_dn: String,
    /// Filter with `{user_id}`.
    pub filter: String,
    /// Attribute names.
    pub attributes: RawLdapAttributes,
    /// Pooled connections.
    pub pool_size: NonZeroUsize,
    /// Connect and search timeout.
    pub timeout: Duration,
    /// Answer reuse.
    pub cache_ttl: Duration,
    /// Answers remembered.
    pub cache_entries: u64,
}

/// `[audit]`.
#[derive(Clone, Debug)]
pub struct Audit {
    /// Output file; standard output when `None`.
    pub file: Option<PathBuf>,
    /// Queue bound.
    pub queue: NonZeroUsize,
}

/// `[identity_assertion]`.
#[derive(Clone, Debug)]
pub struct IdentityAssertion {
    /// `iss`.
    pub issuer: String,
    /// Signing key (PKCS#8 PEM, P-256).
    pub key: PathBuf,
    /// Published, not signing.
    pub previous_keys: Vec<PathBuf>,
    /// Validity.
    pub lifetime: Duration,
}

// ----------------------------------------------------------------------------------------------
// Validation

fn activity(ctx: &Ctx<'_>, auth: &Authorization, code: &Spanned<String>) -> Result<String, ConfigError> {
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

pub(crate) fn authorization(ctx: &Ctx<'_>, raw: &RawAuthorization) -> Result<Authorization, ConfigError> {
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

fn ods(ctx: &Ctx<'_>, code: &Spanned<String>) -> Result<String, ConfigError> {
    let c = code.get_ref().to_ascii_uppercase();
    if !is_ods_code(&c) {
        return Err(ctx.invalid(code.span(), format!("{:?} is not an ODS code", code.get_ref())));
    }
    Ok(c)
}

pub(crate) fn rules(
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
        let (mut smartcard, mut token) = (true, true);
        if let Some(list) = &r.auth_methods {
            (smartcard, token) = (false, false);
            for m in list.get_ref() {
                match m.as_str() {
                    "smartcard" => smartcard = true,
                    "token" => token = true,
                    other => {
                        return Err(ctx
                            .invalid(list.span(), format!("auth method {other:?} is not \"smartcard\" or \"token\"")));
                    }
                }
            }
            if !smartcard && !token {
                return Err(ctx.invalid(list.span(), "auth_methods is empty: nobody could pass"));
            }
        }
        let authenticators = match &r.authenticators {
            None => None,
            Some(list) => {
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
                Some(kinds)
            }
        };
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

pub(crate) fn role_directory(ctx: &Ctx<'_>, raw: &RawRoleDirectory) -> Result<RoleDirectory, ConfigError> {
    match (&raw.file, &raw.ldap) {
        (None, None) => Ok(RoleDirectory::None),
        (Some(file), None) => {
            let path = ctx.path(file)?;
            match path.extension().and_then(|e| e.to_str()) {
                Some("toml" | "json") => Ok(RoleDirectory::File { path, poll_interval: raw.poll_interval.0 }),
                _ => Err(ctx.invalid(file.span(), "the role directory file must end in .toml or .json")),
            }
        }
        (None, Some(ldap)) => {
            let l = ldap.get_ref();
            let url = l.url.get_ref();
            let tls = url.starts_with("ldaps://") || l.starttls;
            if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
                return Err(ctx.invalid(l.url.span(), "url must be ldap://host:port or ldaps://host:port"));
            }
            if l.starttls && url.starts_with("ldaps://") {
                return Err(ctx.invalid(l.url.span(), "starttls is for ldap:// URLs; ldaps:// is TLS already"));
            }
            if tls && l.ca.is_empty() {
                return Err(
                    ctx.invalid(ldap.span(), "TLS to the directory needs ca = [...] naming the CA that signs it")
                );
            }
            if l.bind_password_file.is_some() != l.bind_dn.is_some() {
                return Err(
                    ctx.invalid(ldap.span(), "give bind_dn and bind_password_file together (or neither: anonymous)")
                );
            }
            if l.timeout.0.is_zero() {
                return Err(ctx.invalid(ldap.span(), "timeout must be more than zero"));
            }
            if !l.filter.get_ref().contains("{user_id}") {
                return Err(ctx.invalid(l.filter.span(), "filter must contain {user_id}"));
            }
            Ok(RoleDirectory::Ldap(Box::new(Ldap {
                url: url.clone(),
                starttls: l.starttls,
                ca: l.ca.iter().map(|p| ctx.path(p)).collect::<Result<_, _>>()?,
                bind_dn: l.bind_dn.clone(),
                bind_password_file: l.bind_password_file.as_ref().map(|p| ctx.path(p)).transpose()?,
                base_dn: l.base_dn.clone(),
                filter: l.filter.get_ref().clone(),
                attributes: l.attributes.clone(),
                pool_size: ctx.nonzero(&l.pool_size, "pool_size")?,
                timeout: l.timeout.0,
                cache_ttl: l.cache_ttl.0,
                cache_entries: l.cache_entries.max(1),
            })))
        }
        (Some(file), Some(_)) => Err(ctx.invalid(file.span(), "give one of file and [role_directory.ldap], not both")),
    }
}

pub(crate) fn audit(ctx: &Ctx<'_>, raw: &RawAudit) -> Result<Audit, ConfigError> {
    Ok(Audit { file: raw.file.as_ref().map(|p| ctx.path(p)).transpose()?, queue: ctx.nonzero(&raw.queue, "queue")? })
}

pub(crate) fn identity_assertion(
    ctx: &Ctx<'_>,
    raw: Option<&RawIdentityAssertion>,
) -> Result<Option<IdentityAssertion>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.issuer.trim().is_empty() {
        return Err(ctx.global("[identity_assertion] issuer is empty"));
    }
    let lifetime = raw.lifetime.0;
    if lifetime.is_zero() || lifetime > Duration::from_secs(3600) {
        return Err(ctx.global("[identity_assertion] lifetime must be between 1s and 1h"));
    }
    Ok(Some(IdentityAssertion {
        issuer: raw.issuer.clone(),
        key: ctx.path(&raw.key)?,
        previous_keys: raw.previous_keys.iter().map(|p| ctx.path(p)).collect::<Result<_, _>>()?,
        lifetime,
    }))
}

// ----------------------------------------------------------------------------------------------
// Lint

/// Warnings about rules that load but cannot do what they seem to: routes every request to which
/// is refused, rules that never apply because earlier rules cover their methods, and rules nobody
/// can satisfy.
pub(crate) fn lint_rules(config: &crate::Config) -> Vec<String> {
    let mut warnings = Vec::new();
    for route in &config.routes {
        if route.rules.is_empty() {
            warnings.push(format!(
                "route {:?} has no [[route.rule]]: every request to it is refused (403 activity_not_permitted)",
                route.name
            ));
            continue;
        }
        for (i, rule) in route.rules.iter().enumerate() {
            if let Some((j, _)) =
                route.rules[..i].iter().enumerate().find(|(_, earlier)| earlier.methods.covers(rule.methods))
            {
                warnings.push(format!(
                    "route {:?} rule {} (methods {}) is shadowed by rule {}: it never applies",
                    route.name,
                    i + 1,
                    rule.methods.names(),
                    j + 1
                ));
            }
            if let Some(reason) = unsatisfiable(rule) {
                warnings.push(format!("route {:?} rule {} can never be satisfied: {reason}", route.name, i + 1));
            }
        }
        if route.rules.iter().all(|r| unsatisfiable(r).is_some()) {
            warnings.push(format!("route {:?} can never match: no rule of it can be satisfied", route.name));
        }
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
    use std::path::Path;

    use crate::{Config, ConfigError};

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        crate::parse(
            &format!("{}\n{extra}", crate::validate::tests::MINIMAL),
            Some(Path::new("/etc/spinegate/spinegate.toml")),
            Path::new("/etc/spinegate"),
        )
    }

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
    fn the_catalogue_makes_unknown_activity_codes_errors() {
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

    #[test]
    fn directory_audit_and_assertion_settings() {
        let c = parse("[role_directory]\nfile = \"roles.json\"\n[audit]\nfile = \"audit/decisions.jsonl\"\n").unwrap();
        assert!(
            matches!(&c.role_directory, super::RoleDirectory::File { path, .. } if path == Path::new("/etc/spinegate/roles.json"))
        );
        assert_eq!(c.audit.file.as_deref(), Some(Path::new("/etc/spinegate/audit/decisions.jsonl")));
        assert!(parse("[role_directory]\nfile = \"roles.yaml\"\n").unwrap_err().to_string().contains(".toml or .json"));
        let ldap = "[role_directory.ldap]\nurl = \"ldaps://ldap.example:636\"\nbase_dn = \"ou=People,o=nhs\"\n";
        assert!(parse(ldap).unwrap_err().to_string().contains("needs ca"));
        let c = parse(&format!("{ldap}ca = [\"ldap-ca.pem\"]\n")).unwrap();
        let super::RoleDirectory::Ldap(l) = &c.role_directory else { panic!("ldap") };
        assert_eq!(l.filter, "(&(objectClass=nhsOrgPersonRole)(uid={user_id}))");
        assert_eq!(l.attributes.organisation, "nhsOrgCode");
        assert!(
            parse("[role_directory.ldap]\nurl = \"http://x\"\nbase_dn = \"o=nhs\"\n")
                .unwrap_err()
                .to_string()
                .contains("ldap://")
        );
        assert!(
            parse("[role_directory.ldap]\nurl = \"ldap://x:389\"\nbase_dn = \"o=nhs\"\nfilter = \"(uid=*)\"\n")
                .unwrap_err()
                .to_string()
                .contains("{user_id}")
        );
        let err = parse(&route("identity_assertion = true\n")).unwrap_err().to_string();
        assert!(err.contains("needs an [identity_assertion] section"), "{err}");
        let c = parse(&format!(
            "[identity_assertion]\nissuer = \"https://gw\"\nkey = \"k.pem\"\n{}",
            route("identity_assertion = true\n")
        ))
        .unwrap();
        assert_eq!(c.identity_assertion.unwrap().lifetime.as_secs(), 60);
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
