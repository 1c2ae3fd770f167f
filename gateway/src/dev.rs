//! `spinegate dev`: the whole development world in one process — the dev PKI (created or reused
//! in a directory), the demo patient-data service, and the gateway in front of it, configured by a
//! generated `spinegate.toml` that goes through the same loader as `spinegate run`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spinegate_devpki::crl::{CrlSpec, RevokedEntry};
use spinegate_devpki::demo_service::DemoService;
use spinegate_devpki::ocsp::OcspResponder;
use spinegate_devpki::token::{KeyEndpoint, RoleSpec, TokenIssuer};
use spinegate_devpki::world::{TOKEN_ONLY_USERS, demo_roles};
use spinegate_devpki::{DevWorld, Manifest, ManifestRole, ManifestUser, toml_path, toml_string};

use crate::{Gateway, Options, StartError};

/// The `iss` of the dev token issuer.
pub const DEV_TOKEN_ISSUER: &str = "https://identity.spinegate.dev/care-identity";
/// The audience (client id) the dev gateway accepts tokens for.
pub const DEV_TOKEN_AUDIENCE: &str = "spinegate-dev";
/// How long the dev tokens written to the manifest last.
const DEV_TOKEN_LIFETIME_SECS: u64 = 8 * 3600;
/// The emergency deny list, in the dev directory (kept across starts, like the PKI).
const DEV_DENY_LIST: &str = "deny-list.txt";

/// Where `spinegate dev` listens.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// Directory for the PKI, the generated configuration and the manifest.
    pub dir: PathBuf,
    /// Client-facing listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
}

/// Why the dev world could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// Creating or loading the dev PKI failed.
    #[error("dev PKI: {0}")]
    Pki(#[from] spinegate_devpki::Error),
    /// The demo service or the OCSP responder could not bind.
    #[error("dev services: {0}")]
    Demo(std::io::Error),
    /// The generated configuration was refused (a bug, reported as such).
    #[error("generated configuration: {0}")]
    Config(#[from] spinegate_config::ConfigError),
    /// The gateway did not start.
    #[error(transparent)]
    Gateway(#[from] StartError),
}

/// A running dev world.
#[derive(Debug)]
pub struct DevWorldRunning {
    /// The gateway.
    pub gateway: Gateway,
    /// The demo patient-data service.
    pub demo: DemoService,
    /// The dev OCSP responder for the smartcard issuing CA.
    pub ocsp: OcspResponder,
    /// The dev token issuer's key endpoint.
    pub keys: KeyEndpoint,
    /// What was written to `DIR/manifest.json`.
    pub manifest: Manifest,
    /// Path of the manifest.
    pub manifest_path: PathBuf,
}

impl DevWorldRunning {
    /// Stops the gateway (draining for up to `deadline`) and the demo service.
    pub async fn shutdown(self, deadline: Duration) {
        self.gateway.shutdown(deadline).await;
        self.demo.shutdown().await;
        self.ocsp.shutdown();
        drop(self.keys);
    }
}

/// Creates or reuses the dev PKI in `options.dir`, starts the demo service and the gateway, and
/// writes `DIR/manifest.json`.
pub async fn start(options: &DevOptions, gateway_options: Options) -> Result<DevWorldRunning, DevError> {
    let world = DevWorld::open_or_create(&options.dir)?;
    let demo = DemoService::spawn(SocketAddr::from(([127, 0, 0, 1], 0))).await.map_err(DevError::Demo)?;
    // Revocation: an OCSP responder and a CRL for the issuing CA, both saying bob is revoked.
    let ocsp = OcspResponder::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        std::sync::Arc::clone(&world.issuing),
        world.users.iter().map(|u| u.serial.clone()),
    )
    .await
    .map_err(DevError::Demo)?;
    let mut crl = CrlSpec::new(time::OffsetDateTime::now_utc().unix_timestamp().unsigned_abs());
    for user in world.users.iter().filter(|u| u.revoked) {
        ocsp.revoke(&user.serial);
        crl.revoked.push(RevokedEntry { reason: Some(1), ..RevokedEntry::now(&user.serial) });
    }
    let crl_path = options.dir.join("pki/smartcard-issuing.crl");
    let crl_der = world.issuing.crl(&crl)?;
    std::fs::write(&crl_path, crl_der)
        .map_err(|source| spinegate_devpki::Error::Io { path: crl_path.clone(), source })?;

    // Tokens: an issuer with its key endpoint on loopback.
    let issuer = std::sync::Arc::new(std::sync::Mutex::new(TokenIssuer::new(DEV_TOKEN_ISSUER)?));
    let keys = KeyEndpoint::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), std::sync::Arc::clone(&issuer))
        .await
        .map_err(DevError::Demo)?;

    // The deny list is the operator's: created empty once, never rewritten.
    let deny_path = options.dir.join(DEV_DENY_LIST);
    if !deny_path.exists() {
        std::fs::write(
            &deny_path,
            "# Emergency deny list: one `user <12-digit id>` or `serial <hex>` per line.\n\
             # A user listed here is refused however they sign in (card or token), within a second.\n",
        )
        .map_err(|source| spinegate_devpki::Error::Io { path: deny_path.clone(), source })?;
    }
    let config_path = options.dir.join("spinegate.toml");
    let text = config_text(&world, options, demo.addr(), &ocsp.url(), &crl_path, &keys.jwks_url());
    std::fs::write(&config_path, &text)
        .map_err(|source| spinegate_devpki::Error::Io { path: config_path.clone(), source })?;
    let config = spinegate_config::load(&config_path)?;
    let gateway = Gateway::start(config, gateway_options).await?;

    let gateway_addr = gateway.listener_addrs()[0];
    let tokens = {
        let issuer = issuer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let token = |name: &str, user_id: &str, amr: &str| {
            issuer.token(&issuer.care_identity_claims(
                DEV_TOKEN_AUDIENCE,
                user_id,
                amr,
                3,
                &dev_roles(name),
                DEV_TOKEN_LIFETIME_SECS,
            ))
        };
        let mut users: Vec<ManifestUser> = world
            .users
            .iter()
            .map(|u| ManifestUser {
                name: u.name.to_owned(),
                user_id: u.user_id.to_owned(),
                cert: Some(u.cert_path.clone()),
                key: Some(u.key_path.clone()),
                certificate_state: u.state.as_str().to_owned(),
                not_after: u.not_after.format(&time::format_description::well_known::Rfc3339).ok(),
                revoked: u.revoked,
                token: Some(token(u.name, u.user_id, "N3_SMARTCARD")),
                authenticator: Some("smartcard".to_owned()),
                role_profiles: manifest_roles(u.name),
            })
            .collect();
        users.extend(TOKEN_ONLY_USERS.iter().map(|&(name, user_id, amr)| ManifestUser {
            name: name.to_owned(),
            user_id: user_id.to_owned(),
            cert: None,
            key: None,
            certificate_state: "none".to_owned(),
            not_after: None,
            revoked: false,
            token: Some(token(name, user_id, amr)),
            authenticator: Some(crate::auth::Authenticator::from_amr(&[amr.to_owned()]).as_str().to_owned()),
            role_profiles: manifest_roles(name),
        }));
        users
    };
    let manifest = Manifest {
        gateway_url: format!("https://localhost:{}", gateway_addr.port()),
        admin_url: format!("http://{}", gateway.admin_addr()),
        server_ca: world.tls_root_path(),
        upstream_url: format!("http://{}", demo.addr()),
        config: config_path,
        ocsp_url: ocsp.url(),
        crl: Some(crl_path),
        jwks_url: keys.jwks_url(),
        token_issuer: DEV_TOKEN_ISSUER.to_owned(),
        audit_log: Some(options.dir.join("audit.jsonl")),
        role_directory: Some(world.roles_path()),
        assertion_jwks_url: Some(format!("http://{}/.well-known/jwks.json", gateway.admin_addr())),
        deny_list: Some(PathBuf::from(DEV_DENY_LIST)),
        h3: true,
        users: tokens,
    };
    // Each token also as a file, for `curl -H "Authorization: Bearer $(cat DIR/tokens/grace.jwt)"`.
    let token_dir = options.dir.join("tokens");
    std::fs::create_dir_all(&token_dir)
        .map_err(|source| spinegate_devpki::Error::Io { path: token_dir.clone(), source })?;
    for user in &manifest.users {
        if let Some(token) = &user.token {
            let path = token_dir.join(format!("{}.jwt", user.name));
            std::fs::write(&path, token).map_err(|source| spinegate_devpki::Error::Io { path, source })?;
        }
    }
    let manifest_path = options.dir.join("manifest.json");
    manifest.write(&manifest_path)?;
    Ok(DevWorldRunning { gateway, demo, ocsp, keys, manifest, manifest_path })
}

/// A demo user's role profiles as token claims.
fn dev_roles(name: &str) -> Vec<RoleSpec> {
    demo_roles(name)
        .map(|r| RoleSpec {
            person_roleid: r.id.to_owned(),
            org_code: r.org.to_owned(),
            role_code: r.role_code.to_owned(),
            role_name: role_name(r.role_code).to_owned(),
            activity_codes: r.activities.iter().map(|a| (*a).to_owned()).collect(),
        })
        .collect()
}

fn role_name(role_code: &str) -> &'static str {
    if role_code == spinegate_devpki::world::CLINICIAN {
        "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\""
    } else {
        "\"Admin & Clerical\":\"Admin & Clerical\":\"Admin/Clinical Support Access Role\""
    }
}

/// A demo user's role profiles for the manifest.
fn manifest_roles(name: &str) -> Vec<ManifestRole> {
    demo_roles(name)
        .map(|r| ManifestRole {
            id: r.id.to_owned(),
            org: r.org.to_owned(),
            role_code: r.role_code.to_owned(),
            activities: r.activities.iter().map(|a| (*a).to_owned()).collect(),
        })
        .collect()
}

fn config_text(
    world: &DevWorld,
    options: &DevOptions,
    upstream: SocketAddr,
    ocsp_url: &str,
    crl: &Path,
    jwks_url: &str,
) -> String {
    let (server_cert, server_key) = world.server_paths();
    let p = toml_path;
    format!(
        r#"# Generated by `spinegate dev`; rewritten at every start.

[admin]
listen = "{admin}"

[[listener]]
name = "clinical"
listen = "{listen}"
# "request": a smartcard certificate when the client has one, a bearer token otherwise.
client_certificate = "request"
# "explain": bob's cancelled and dave's expired cards complete the handshake, and every request
# gets a page (or problem+json) saying what to do; an unknown CA still fails the handshake.
certificate_problems = "explain"

[[listener.certificate]]
cert = {server_cert}
key = {server_key}

# HTTP/3 on the same port number over UDP, advertised with Alt-Svc.
[listener.http3]

[client_auth]
trust_anchors = [{root}]
expiry_warning = "90d"

[[client_auth.issuer]]
name = "dev-smartcard-issuing-ca"
certificate = {issuing}

# The dev OCSP responder first, the dev CRL when it cannot answer.
[client_auth.issuer.revocation]
sources = ["ocsp", "crl"]
ocsp_responder = {ocsp}
crl_files = [{crl}]

# The emergency deny list: add `user <id>` to refuse that person however they sign in.
[revocation]
deny_list = {deny}

# The dev token issuer (Care Identity's shape) on loopback.
[[token_issuer]]
name = "dev-care-identity"
issuer = {token_issuer}
jwks_url = {jwks}
audiences = [{audience}]

[[upstream]]
name = "demo-patient-data"
endpoints = ["http://{upstream}"]
response_timeout = "15s"

# Authorisation: the activities the demo routes ask for (an illustrative catalogue), what every
# clinician holds by job role, and a branch surgery under A81001.
[authorization]
activities = {{ B0360 = "View patient medical record", B0370 = "View Summary Care Record", B0572 = "Manage appointments", B0820 = "View patient demographics", B0825 = "Amend patient demographics" }}

[[authorization.baseline]]
role = "R8000"
activities = ["B0820"]

[[authorization.organisation]]
parent = "A81001"
children = ["Y03641"]

# Card users' role profiles; token users bring theirs in the token. Edit the file to move a user.
[role_directory]
file = {roles}

[audit]
file = {audit}

[identity_assertion]
issuer = "https://spinegate.dev"
key = {assertion_key}

# What refusal pages and https://localhost:<port>/.spinegate/whoami tell people.
[guidance]
organisation = "spinegate dev world"

[guidance.registration_authority]
name = "the dev Registration Authority"
email = "ra@spinegate.dev"
hours = "Monday to Friday, 9am to 5pm"
location = "Room 1, Dev House"

[guidance.hr]
name = "dev HR"
email = "hr@spinegate.dev"

[guidance.service_desk]
name = "the dev service desk"
phone = "0113 496 0999"

[[route]]
name = "patient"
path_prefix = "/Patient"
upstream = "demo-patient-data"
identity_assertion = true

[[route.rule]]
methods = ["GET", "HEAD"]
activities_any = ["B0820"]

[[route.rule]]
methods = ["*"]
activities_all = ["B0825"]

[[route]]
name = "metadata"
path_prefix = "/metadata"
upstream = "demo-patient-data"

[[route.rule]]
methods = ["GET", "HEAD"]
organisation_scope = false

[[route]]
name = "demo"
path_prefix = "/_demo"
upstream = "demo-patient-data"

[[route.rule]]
methods = ["*"]
organisation_scope = false

[log]
level = "info"
format = "text"
"#,
        admin = options.admin,
        listen = options.listen,
        server_cert = p(&server_cert),
        server_key = p(&server_key),
        root = p(&world.root_path()),
        issuing = p(&world.issuing_path()),
        ocsp = toml_string(ocsp_url),
        crl = p(crl),
        token_issuer = toml_string(DEV_TOKEN_ISSUER),
        roles = p(&world.roles_path()),
        audit = p(&options.dir.join("audit.jsonl")),
        deny = p(&options.dir.join(DEV_DENY_LIST)),
        assertion_key = p(&world.assertion_key_path()),
        jwks = toml_string(jwks_url),
        audience = toml_string(DEV_TOKEN_AUDIENCE),
    )
}
