//! `[role_directory]`: where smartcard users' role profiles come from — nowhere, a TOML or JSON
//! file, or an LDAP directory (`[role_directory.ldap]`).

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::ConfigError;
use crate::syntax::{Ctx, HumanDuration, secs, unspanned};

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

/// `[role_directory.ldap.attributes]`: each entry found is one role profile. Used as written:
/// the validated [`Ldap`] holds it too.
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

impl Default for RawRoleDirectory {
    fn default() -> Self {
        Self { file: None, poll_interval: default_directory_poll(), ldap: None }
    }
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

fn default_directory_poll() -> HumanDuration {
    secs(1)
}
fn default_ldap_filter() -> Spanned<String> {
    unspanned("(&(objectClass=nhsOrgPersonRole)(uid={user_id}))".into())
}
fn default_ldap_pool() -> Spanned<u64> {
    unspanned(4)
}
fn default_ldap_timeout() -> HumanDuration {
    secs(2)
}
fn default_ldap_ttl() -> HumanDuration {
    secs(60)
}
fn default_ldap_entries() -> u64 {
    100_000
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

/// `[role_directory]`, validated: at most one source; a file by its extension; LDAP with TLS
/// material when it speaks TLS and a filter that names the user.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &RawRoleDirectory) -> Result<RoleDirectory, ConfigError> {
    match (&raw.file, &raw.ldap) {
        (None, None) => Ok(RoleDirectory::None),
        (Some(file), None) => {
            let path = ctx.path(file)?;
            match path.extension().and_then(|e| e.to_str()) {
                Some("toml" | "json") => Ok(RoleDirectory::File { path, poll_interval: raw.poll_interval.0 }),
                _ => Err(ctx.invalid(file.span(), "the role directory file must end in .toml or .json")),
            }
        }
        (None, Some(ldap)) => Ok(RoleDirectory::Ldap(Box::new(self::ldap(ctx, ldap)?))),
        (Some(file), Some(_)) => Err(ctx.invalid(file.span(), "give one of file and [role_directory.ldap], not both")),
    }
}

fn ldap(ctx: &Ctx<'_>, ldap: &Spanned<RawLdap>) -> Result<Ldap, ConfigError> {
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
        return Err(ctx.invalid(ldap.span(), "TLS to the directory needs ca = [...] naming the CA that signs it"));
    }
    if l.bind_password_file.is_some() != l.bind_dn.is_some() {
        return Err(ctx.invalid(ldap.span(), "give bind_dn and bind_password_file together (or neither: anonymous)"));
    }
    if l.timeout.0.is_zero() {
        return Err(ctx.invalid(ldap.span(), "timeout must be more than zero"));
    }
    if !l.filter.get_ref().contains("{user_id}") {
        return Err(ctx.invalid(l.filter.span(), "filter must contain {user_id}"));
    }
    Ok(Ldap {
        url: url.clone(),
        starttls: l.starttls,
        ca: ctx.paths(&l.ca)?,
        bind_dn: l.bind_dn.clone(),
        bind_password_file: l.bind_password_file.as_ref().map(|p| ctx.path(p)).transpose()?,
        base_dn: l.base_dn.clone(),
        filter: l.filter.get_ref().clone(),
        attributes: l.attributes.clone(),
        pool_size: ctx.nonzero(&l.pool_size, "pool_size")?,
        timeout: l.timeout.0,
        cache_ttl: l.cache_ttl.0,
        cache_entries: l.cache_entries.max(1),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::RoleDirectory;
    use crate::testing::parse_with as parse;

    #[test]
    fn role_directory_file_and_ldap_settings() {
        let c = parse("[role_directory]\nfile = \"roles.json\"\n").unwrap();
        assert!(
            matches!(&c.role_directory, RoleDirectory::File { path, .. } if path == Path::new("/etc/spinegate/roles.json"))
        );
        assert!(parse("[role_directory]\nfile = \"roles.yaml\"\n").unwrap_err().to_string().contains(".toml or .json"));
        let ldap = "[role_directory.ldap]\nurl = \"ldaps://ldap.example:636\"\nbase_dn = \"ou=People,o=nhs\"\n";
        assert!(parse(ldap).unwrap_err().to_string().contains("needs ca"));
        let c = parse(&format!("{ldap}ca = [\"ldap-ca.pem\"]\n")).unwrap();
        let RoleDirectory::Ldap(l) = &c.role_directory else { panic!("ldap") };
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
    }
}
