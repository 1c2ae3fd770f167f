//! `spinegate dev`: the whole development world in one process — the dev PKI (created or reused
//! in a directory), the demo patient-data service, and the gateway in front of it, configured by a
//! generated `spinegate.toml` that goes through the same loader as `spinegate run`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spinegate_devpki::crl::{CrlSpec, RevokedEntry};
use spinegate_devpki::demo_service::DemoService;
use spinegate_devpki::ocsp::OcspResponder;
use spinegate_devpki::{DevWorld, Manifest, ManifestUser};

use crate::{Gateway, Options, StartError};

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

    let config_path = options.dir.join("spinegate.toml");
    let text = config_text(&world, options, demo.addr(), &ocsp.url(), &crl_path);
    std::fs::write(&config_path, &text)
        .map_err(|source| spinegate_devpki::Error::Io { path: config_path.clone(), source })?;
    let config = spinegate_config::load(&config_path)?;
    let gateway = Gateway::start(config, gateway_options).await?;

    let gateway_addr = gateway.listener_addrs()[0];
    let manifest = Manifest {
        gateway_url: format!("https://localhost:{}", gateway_addr.port()),
        admin_url: format!("http://{}", gateway.admin_addr()),
        server_ca: world.tls_root_path(),
        upstream_url: format!("http://{}", demo.addr()),
        config: config_path,
        ocsp_url: ocsp.url(),
        crl: Some(crl_path),
        users: world
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
            })
            .collect(),
    };
    let manifest_path = options.dir.join("manifest.json");
    manifest.write(&manifest_path)?;
    Ok(DevWorldRunning { gateway, demo, ocsp, manifest, manifest_path })
}

fn config_text(world: &DevWorld, options: &DevOptions, upstream: SocketAddr, ocsp_url: &str, crl: &Path) -> String {
    let (server_cert, server_key) = world.server_paths();
    let p = |path: &Path| toml_string(&path.display().to_string());
    format!(
        r#"# Generated by `spinegate dev`; rewritten at every start.

[admin]
listen = "{admin}"

[[listener]]
name = "clinical"
listen = "{listen}"
client_certificate = "require"

[[listener.certificate]]
cert = {server_cert}
key = {server_key}

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

[[upstream]]
name = "demo-patient-data"
endpoints = ["http://{upstream}"]
response_timeout = "15s"

[[route]]
name = "patient"
path_prefix = "/Patient"
upstream = "demo-patient-data"

[[route]]
name = "metadata"
path_prefix = "/metadata"
upstream = "demo-patient-data"

[[route]]
name = "demo"
path_prefix = "/_demo"
upstream = "demo-patient-data"

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
    )
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
