//! The whole file: [`RawConfig`] composes the sections as written, [`Config`] the validated
//! sections, and [`validate`] orders the sections' validation — sections others depend on first,
//! their results passed down — doing none of it itself.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::error::ConfigError;
use crate::section::admin::{self, Admin, RawAdmin};
use crate::section::audit::{self, Audit, RawAudit};
use crate::section::authorization::{self, Authorization, RawAuthorization};
use crate::section::chain_cache::{self, ChainCacheOptions, RawChainCache};
use crate::section::client_auth::{self, ClientAuth, RawClientAuth};
use crate::section::guidance::{self, Guidance, RawGuidance};
use crate::section::identity_assertion::{self, IdentityAssertion, RawIdentityAssertion};
use crate::section::limits::{self, Limits, RawLimits};
use crate::section::listener::{self, Listener, RawListener};
use crate::section::log::{self, Log, RawLog};
use crate::section::request_headers::{self, RawRequestHeaders, RequestHeaders};
use crate::section::revocation::{self, RawRevocation, Revocation};
use crate::section::role_directory::{self, RawRoleDirectory, RoleDirectory};
use crate::section::route::{self, RawRoute, Route};
use crate::section::tokens::{self, RawTokenIssuer, RawTokens, TokenIssuer, Tokens};
use crate::section::upstream::{self, RawUpstream, Upstream};
use crate::syntax::{Ctx, from_toml};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[admin]`.
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[[listener]]`.
    #[serde(default)]
    pub listener: Vec<Spanned<RawListener>>,
    /// `[client_auth]`.
    #[serde(default)]
    pub client_auth: RawClientAuth,
    /// `[chain_cache]`.
    #[serde(default)]
    pub chain_cache: RawChainCache,
    /// `[limits]`.
    #[serde(default)]
    pub limits: RawLimits,
    /// `[[upstream]]`.
    #[serde(default)]
    pub upstream: Vec<Spanned<RawUpstream>>,
    /// `[[route]]`.
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
    /// `[request_headers]`.
    #[serde(default)]
    pub request_headers: RawRequestHeaders,
    /// `[revocation]`.
    #[serde(default)]
    pub revocation: RawRevocation,
    /// `[tokens]`.
    #[serde(default)]
    pub tokens: RawTokens,
    /// `[[token_issuer]]`.
    #[serde(default)]
    pub token_issuer: Vec<Spanned<RawTokenIssuer>>,
    /// `[log]`.
    #[serde(default)]
    pub log: RawLog,
    /// `[authorization]`.
    #[serde(default)]
    pub authorization: RawAuthorization,
    /// `[role_directory]`.
    #[serde(default)]
    pub role_directory: RawRoleDirectory,
    /// `[audit]`.
    #[serde(default)]
    pub audit: RawAudit,
    /// `[identity_assertion]`.
    pub identity_assertion: Option<RawIdentityAssertion>,
    /// `[guidance]`.
    #[serde(default)]
    pub guidance: RawGuidance,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The admin listener.
    pub admin: Admin,
    /// Client-facing listeners (at least one).
    pub listeners: Vec<Listener>,
    /// Client certificate validation.
    pub client_auth: ClientAuth,
    /// The verified-chain cache.
    pub chain_cache: ChainCacheOptions,
    /// Request and connection limits.
    pub limits: Limits,
    /// Revocation caches, fetches and the deny list.
    pub revocation: Revocation,
    /// Bearer-token settings common to every issuer.
    pub tokens: Tokens,
    /// Accepted token issuers.
    pub token_issuers: Vec<TokenIssuer>,
    /// Upstream clusters, referred to by index from routes.
    pub upstreams: Vec<Upstream>,
    /// Routes in file order; the most specific match wins.
    pub routes: Vec<Route>,
    /// Headers removed from client requests beyond the built-in contract.
    pub request_headers: RequestHeaders,
    /// Logging.
    pub log: Log,
    /// Activity catalogue, baseline activities, organisation relations.
    pub authorization: Authorization,
    /// Where smartcard users' role profiles come from.
    pub role_directory: RoleDirectory,
    /// The audit log.
    pub audit: Audit,
    /// The signed identity assertion, when configured.
    pub identity_assertion: Option<IdentityAssertion>,
    /// What refusal pages and the identity page tell people.
    pub guidance: Guidance,
}

impl Config {
    /// Every file the configuration names whose change a reload must pick up, each section
    /// reporting its own, in section order and then file order: listener certificates and keys;
    /// client-auth trust anchors, intermediates and issuer certificates; upstream TLS CAs and
    /// client certificates and keys; the identity assertion key and previous keys. Files their
    /// owners poll (CRLs, the deny list, the role directory file) are not listed, nor
    /// directories ([`Config::file_dirs`]).
    pub fn files(&self) -> Vec<&Path> {
        let listeners = self.listeners.iter().flat_map(Listener::files);
        let upstreams = self.upstreams.iter().flat_map(Upstream::files);
        let assertion = self.identity_assertion.iter().flat_map(IdentityAssertion::files);
        listeners.chain(self.client_auth.files()).chain(upstreams).chain(assertion).collect()
    }

    /// Every directory whose files a reload depends on: the guidance template directory, if
    /// set.
    pub fn file_dirs(&self) -> Vec<&Path> {
        self.guidance.file_dirs().collect()
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, Some(path), base)
}

/// Validates configuration text. `origin` names the file in errors; relative paths in the text are
/// resolved against `base`.
pub fn parse(text: &str, origin: Option<&Path>, base: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = from_toml(text, origin)?;
    validate(&Ctx::new(text, origin, base), raw)
}

/// The sections in the order their errors are reported; a section another needs comes first.
fn validate(ctx: &Ctx<'_>, raw: RawConfig) -> Result<Config, ConfigError> {
    let admin = admin::validate(ctx, &raw.admin)?;
    let listeners = listener::validate(ctx, &raw.listener)?;
    let upstreams = upstream::validate(ctx, &raw.upstream)?;
    let authorization = authorization::validate(ctx, &raw.authorization)?;
    let routes = route::validate(ctx, &raw.route, &upstreams, &authorization)?;
    let identity_assertion = identity_assertion::validate(ctx, raw.identity_assertion.as_ref())?;
    route::check_identity_assertion(ctx, &raw.route, identity_assertion.is_some())?;
    let client_auth = client_auth::validate(ctx, &raw.client_auth)?;
    let chain_cache = chain_cache::validate(ctx, &raw.chain_cache)?;
    let limits = limits::validate(ctx, &raw.limits)?;
    let revocation = revocation::validate(ctx, &raw.revocation)?;
    let guidance = guidance::validate(ctx, &raw.guidance, raw.tokens.backchannel_logout_path.get_ref())?;
    let tokens = tokens::validate(ctx, &raw.tokens)?;
    let token_issuers = tokens::issuers(ctx, &raw.token_issuer)?;
    let request_headers = request_headers::validate(ctx, &raw.request_headers)?;
    let log = log::validate(raw.log);
    let role_directory = role_directory::validate(ctx, &raw.role_directory)?;
    let audit = audit::validate(ctx, &raw.audit)?;
    Ok(Config {
        admin,
        listeners,
        client_auth,
        chain_cache,
        limits,
        revocation,
        tokens,
        token_issuers,
        upstreams,
        routes,
        request_headers,
        log,
        authorization,
        role_directory,
        audit,
        identity_assertion,
        guidance,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::testing::{MINIMAL, parse, parse_with};
    use crate::{Alpn, ClientCertificatePolicy, ConfigError, TlsVersion, UserIdSource};

    #[test]
    fn minimal_text_gets_documented_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.admin.listen, "127.0.0.1:9901".parse().unwrap());
        assert_eq!(c.listeners[0].client_certificate, ClientCertificatePolicy::Require);
        assert_eq!(c.listeners[0].tls_versions, vec![TlsVersion::Tls13, TlsVersion::Tls12]);
        assert_eq!(c.listeners[0].alpn, vec![Alpn::H2, Alpn::Http11]);
        assert_eq!(c.listeners[0].certificates[0].cert, Path::new("/etc/spinegate/server.pem"));
        assert_eq!(c.client_auth.expiry_warning.as_secs(), 90 * 86_400);
        assert_eq!(c.client_auth.max_chain_length.get(), 4);
        assert_eq!(c.client_auth.identity.user_id, UserIdSource::SubjectCnPrefix { separator: '_' });
        assert_eq!(c.client_auth.identity.require_ou.as_deref(), Some("People"));
        assert_eq!(c.routes[0].path_prefix, "/Patient");
        assert_eq!(c.upstreams[0].endpoints[0].authority(), "127.0.0.1:9000");
    }

    #[test]
    fn unknown_field_is_refused_with_line_and_column() {
        let text = MINIMAL.replace("name = \"pds\"", "name = \"pds\"\nretries = 3");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with("/etc/spinegate/spinegate.toml:"), "{err}");
        assert!(err.contains("retries"), "{err}");
        let line = text.lines().position(|l| l.starts_with("retries")).unwrap() + 1;
        assert!(err.contains(&format!(":{line}:1")), "{err}");
    }

    #[test]
    fn configurations_compare_by_value() {
        assert_eq!(parse(MINIMAL).unwrap(), parse(MINIMAL).unwrap());
        let faster = parse_with("[limits]\nhandshake_timeout = \"5s\"\n").unwrap();
        assert_ne!(parse(MINIMAL).unwrap(), faster);
        assert_eq!(parse(MINIMAL).unwrap().listeners, faster.listeners, "restart-only settings compare alone");
    }

    /// A file naming every kind of file, those a reload watches and those it leaves to their
    /// owners.
    const EVERY_FILE: &str = r#"
[[listener]]
name = "clinical"
listen = "127.0.0.1:8443"
[[listener.certificate]]
cert = "tls/ecdsa.pem"
key = "tls/ecdsa.key"
[[listener.certificate]]
cert = "tls/rsa.pem"
key = "tls/rsa.key"
server_names = ["legacy.example"]

[[listener]]
name = "admin-facing"
listen = "127.0.0.1:8444"
[[listener.certificate]]
cert = "/srv/tls/second.pem"
key = "/srv/tls/second.key"

[client_auth]
trust_anchors = ["ca/root-1.pem", "ca/root-2.pem"]
intermediates = ["ca/intermediate.pem"]
[[client_auth.issuer]]
name = "sub-ca-1"
certificate = "ca/sub-1.pem"
[client_auth.issuer.revocation]
crl_files = ["crl/sub-1.crl"]
[[client_auth.issuer]]
name = "sub-ca-2"
certificate = "ca/sub-2.pem"

[revocation]
deny_list = "deny.txt"
admin_token_file = "admin.token"

[[upstream]]
name = "plain"
endpoints = ["http://127.0.0.1:9000"]

[[upstream]]
name = "pds"
endpoints = ["https://pds.internal"]
[upstream.tls]
ca = ["upstream/ca-1.pem", "upstream/ca-2.pem"]
client_certificate = "upstream/client.pem"
client_key = "upstream/client.key"

[[upstream]]
name = "spine"
endpoints = ["https://spine.internal"]
[upstream.tls]
ca = ["upstream/spine-ca.pem"]

[[token_issuer]]
name = "ci"
issuer = "https://ci.example"
audiences = ["spinegate"]
jwks_url = "https://ci.example/jwks"
jwks_ca = ["ci-ca.pem"]

[role_directory]
file = "roles.toml"

[audit]
file = "audit.jsonl"

[identity_assertion]
issuer = "https://gw.example"
key = "assertion/current.pem"
previous_keys = ["assertion/previous-1.pem", "assertion/previous-2.pem"]

[guidance]
template_dir = "pages"
"#;

    #[test]
    fn files_lists_what_a_reload_depends_on_in_section_order() {
        let c = parse(EVERY_FILE).unwrap();
        let expected = [
            "/etc/spinegate/tls/ecdsa.pem",
            "/etc/spinegate/tls/ecdsa.key",
            "/etc/spinegate/tls/rsa.pem",
            "/etc/spinegate/tls/rsa.key",
            "/srv/tls/second.pem",
            "/srv/tls/second.key",
            "/etc/spinegate/ca/root-1.pem",
            "/etc/spinegate/ca/root-2.pem",
            "/etc/spinegate/ca/intermediate.pem",
            "/etc/spinegate/ca/sub-1.pem",
            "/etc/spinegate/ca/sub-2.pem",
            "/etc/spinegate/upstream/ca-1.pem",
            "/etc/spinegate/upstream/ca-2.pem",
            "/etc/spinegate/upstream/client.pem",
            "/etc/spinegate/upstream/client.key",
            "/etc/spinegate/upstream/spine-ca.pem",
            "/etc/spinegate/assertion/current.pem",
            "/etc/spinegate/assertion/previous-1.pem",
            "/etc/spinegate/assertion/previous-2.pem",
        ];
        assert_eq!(c.files(), expected.map(Path::new));
        assert_eq!(c.file_dirs(), [Path::new("/etc/spinegate/pages")]);
    }

    #[test]
    fn a_minimal_file_depends_on_its_certificates_and_no_directory() {
        let c = parse(MINIMAL).unwrap();
        let expected = ["/etc/spinegate/server.pem", "/etc/spinegate/server.key", "/etc/spinegate/root.pem"];
        assert_eq!(c.files(), expected.map(Path::new));
        assert!(c.file_dirs().is_empty());
    }

    #[test]
    fn errors_come_in_section_order() {
        // An upstream error is reported before a client_auth one, as it always was.
        let text = MINIMAL
            .replace("http://127.0.0.1:9000", "ftp://127.0.0.1:9000")
            .replace("trust_anchors = [\"root.pem\"]", "trust_anchors = [\"root.pem\"]\nmax_chain_length = 1");
        let err = parse(&text).unwrap_err();
        assert!(matches!(&err, ConfigError::Invalid { message, .. } if message.contains("scheme")), "{err}");
    }
}
