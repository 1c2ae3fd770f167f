//! Shared test harness: a PKI made by devpki, a gateway started from TOML text on 127.0.0.1:0 in
//! front of the demo patient-data service, TLS clients with chosen certificates, and helpers to
//! read TLS alerts and Prometheus counters.

#![allow(dead_code, unreachable_pub, unused_imports)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use spinegate::clock::{Clock, ManualClock};
use spinegate::{Gateway, Options};
use spinegate_devpki::demo_service::DemoService;
pub use spinegate_devpki::toml_path as toml;
use spinegate_devpki::{Ca, Issued, KeyKind, LeafSpec};
pub use spinegate_testkit::http::{Client, RawResp, Resp, handshake_alert, raw_http1, tls_connect};
use spinegate_testkit::tls::ClientTls;
pub use spinegate_testkit::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A smartcard PKI (root -> issuing CA) and a TLS PKI for the gateway's server certificate,
/// written to a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub root: Ca,
    pub issuing: Ca,
    pub tls_root: Ca,
}

impl Pki {
    /// ECDSA keys throughout: these tests are about the gateway, not about RSA.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Ca::root("Test Smartcard Root CA", KeyKind::EcdsaP256).unwrap();
        let issuing = root.intermediate("Test Smartcard Issuing CA", KeyKind::EcdsaP256).unwrap();
        let tls_root = Ca::root("Test TLS Root CA", KeyKind::EcdsaP256).unwrap();
        let server = tls_root.issue(&LeafSpec::server(&["localhost", "127.0.0.1"])).unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("root.pem", root.cert_pem());
        write("issuing.pem", issuing.cert_pem());
        write("tls-root.pem", tls_root.cert_pem());
        write("server.pem", server.chain_pem());
        write("server.key", server.key_pem());
        Self { dir, root, issuing, tls_root }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file into the PKI directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A smartcard certificate from the issuing CA (ECDSA unless the spec says otherwise).
    pub fn card(&self, user_id: &str) -> Issued {
        self.issuing.issue(&LeafSpec::smartcard(user_id, "TEST", "User").key(KeyKind::EcdsaP256)).unwrap()
    }

    /// A certificate from the issuing CA with a custom spec.
    pub fn issue(&self, spec: LeafSpec) -> Issued {
        self.issuing.issue(&spec).unwrap()
    }
}

/// The `[[token_issuer]]` table of the tests' Care Identity service (issuer [`ISSUER`], audience
/// [`AUDIENCE`]) with its key set at `jwks_url`.
pub fn care_identity(jwks_url: &str) -> String {
    format!(
        "[[token_issuer]]\nname = \"care-identity\"\nissuer = {}\njwks_url = {}\naudiences = [{}]\n",
        spinegate_devpki::toml_string(ISSUER),
        spinegate_devpki::toml_string(jwks_url),
        spinegate_devpki::toml_string(AUDIENCE)
    )
}

/// A route rule admitting any authenticated user, whatever their role (for tests about
/// something other than authorisation).
pub const ANY_AUTHENTICATED: &str = "[[route.rule]]\nmethods = [\"*\"]\norganisation_scope = false\n";

/// What the generated gateway configuration says; tests adjust fields before starting.
pub struct Settings {
    /// The `[[route.rule]]` tables of the catch-all route `all`.
    pub rules: String,
    pub client_certificate: &'static str,
    pub upstream_endpoints: Vec<String>,
    pub upstream_extra: String,
    pub client_auth_extra: String,
    /// Body of `[client_auth.revocation]`; revocation is off unless a test turns it on.
    pub revocation_policy: String,
    /// Body of `[revocation]`.
    pub revocation: String,
    pub listener_extra: String,
    pub certificates: String,
    pub limits: String,
    /// More of `[admin]`, after its `listen`.
    pub admin_extra: String,
    pub extra: String,
}

impl Settings {
    pub fn text(&self, pki: &Pki, demo: SocketAddr) -> String {
        let endpoints = if self.upstream_endpoints.is_empty() {
            format!("\"http://{demo}\"")
        } else {
            self.upstream_endpoints.iter().map(|e| format!("\"{e}\"")).collect::<Vec<_>>().join(", ")
        };
        let certificates = if self.certificates.is_empty() {
            format!(
                "[[listener.certificate]]\ncert = {}\nkey = {}\n",
                toml(&pki.path("server.pem")),
                toml(&pki.path("server.key"))
            )
        } else {
            self.certificates.clone()
        };
        format!(
            r#"
[admin]
listen = "127.0.0.1:0"
{admin_extra}

[[listener]]
name = "test"
listen = "127.0.0.1:0"
client_certificate = "{client_certificate}"
{listener_extra}
{certificates}

[client_auth]
trust_anchors = [{root}]
{client_auth_extra}

[client_auth.revocation]
{revocation_policy}

[[client_auth.issuer]]
name = "test-issuing"
certificate = {issuing}

[limits]
{limits}

[revocation]
{revocation}

[[upstream]]
name = "demo"
endpoints = [{endpoints}]
{upstream_extra}

[[route]]
name = "all"
path_prefix = "/"
upstream = "demo"
{rules}

{extra}
"#,
            client_certificate = self.client_certificate,
            admin_extra = self.admin_extra,
            listener_extra = self.listener_extra,
            root = toml(&pki.path("root.pem")),
            issuing = toml(&pki.path("issuing.pem")),
            client_auth_extra = self.client_auth_extra,
            revocation_policy = self.revocation_policy,
            revocation = self.revocation,
            limits = self.limits,
            upstream_extra = self.upstream_extra,
            extra = self.extra,
            rules = self.rules
        )
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rules: ANY_AUTHENTICATED.into(),
            client_certificate: "require",
            upstream_endpoints: Vec::new(),
            upstream_extra: String::new(),
            client_auth_extra: String::new(),
            revocation_policy: "sources = []".into(),
            revocation: String::new(),
            listener_extra: String::new(),
            certificates: String::new(),
            limits: String::new(),
            admin_extra: String::new(),
            extra: String::new(),
        }
    }
}

/// A running gateway in front of a demo service.
pub struct Gw {
    pub gateway: Gateway,
    pub demo: DemoService,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub clock: Arc<ManualClock>,
    /// The configuration text it started from.
    pub text: String,
}

impl Gw {
    pub async fn start(pki: &Pki, adjust: impl FnOnce(&mut Settings)) -> Self {
        // Gateway logs go to the test's captured output, shown when a test fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("spinegate=debug,spinegate_revocation=debug")
            .try_init();
        let demo = DemoService::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut settings = Settings::default();
        adjust(&mut settings);
        let text = settings.text(pki, demo.addr());
        let config = spinegate_config::parse(&text, None, pki.dir.path()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let clock = Arc::new(ManualClock::new());
        let gateway = Gateway::start(config, Options { clock: Arc::clone(&clock) as Arc<dyn Clock> }).await.unwrap();
        let addr = gateway.listener_addrs()[0];
        let admin = gateway.admin_addr();
        Self { gateway, demo, addr, admin, clock, text }
    }

    /// Reloads the gateway from configuration text (relative paths against `pki`'s directory).
    pub async fn reload(&self, pki: &Pki, text: &str) {
        let config = spinegate_config::parse(text, None, pki.dir.path()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        self.gateway.reload(&config).await.unwrap();
    }

    /// Every record of the audit log at `path`, once the writer has flushed.
    pub fn audit_lines(&self, path: &std::path::Path) -> Vec<serde_json::Value> {
        assert!(self.gateway.audit().flush(Duration::from_secs(5)));
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}")))
            .collect()
    }

    /// A counter or gauge value from `/metrics` (0 when absent). `series` is the exact text before
    /// the value, e.g. `spinegate_client_cert_verifications_total{result="expired"}`.
    pub async fn metric(&self, series: &str) -> f64 {
        metric(self.admin, series).await
    }
}

pub async fn metric(admin: SocketAddr, series: &str) -> f64 {
    let (_, body) = plain_get(admin, "/metrics").await;
    body.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

/// A plain-HTTP GET (the admin listener): status and body.
pub async fn plain_get(addr: SocketAddr, path: &str) -> (u16, String) {
    plain_request(addr, "GET", path, &[], "").await
}

/// A plain-HTTP request with extra header lines and a body: status and body.
pub async fn plain_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(body);
    s.write_all(head.as_bytes()).await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Client TLS settings: trusts the test TLS root, presents `card` when given.
pub fn client_config(pki: &Pki, card: Option<&Issued>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let tls = ClientTls::trusting_ca(pki.tls_root.cert().clone()).alpn(alpn);
    match card {
        Some(card) => tls.card(card.chain.clone(), card.private_key()),
        None => tls,
    }
    .build()
}

/// Client settings presenting an arbitrary chain and key.
pub fn client_config_with_chain(pki: &Pki, chain: Vec<CertificateDer<'static>>, card: &Issued) -> Arc<ClientConfig> {
    ClientTls::trusting_ca(pki.tls_root.cert().clone()).card(chain, card.private_key()).alpn(&[b"http/1.1"]).build()
}

/// The Care Identity issuer the token tests configure.
pub const ISSUER: &str = "https://ci.test/realms/Healthcare";
/// The audience the token tests configure.
pub const AUDIENCE: &str = "spinegate-test";
/// alice: a clinician at RX1.
pub const ALICE: &str = "555000000001";
/// erin: an admin clerk at RX1.
pub const ERIN: &str = "555000000005";

/// Role-directory entries for alice (may view patients, B0360) and erin (an admin clerk, may not).
pub const CLINICIAN_AND_CLERK_ROLES: &str = r#"
[[user]]
id = "555000000001"
[[user.role]]
id = "555254242101"
org = "RX1"
role_code = "S8000:G8000:R8000"
activities = ["B0360"]

[[user]]
id = "555000000005"
[[user.role]]
id = "555254242105"
org = "RX1"
role_code = "S8001:G8005:R8008"
activities = ["B0572"]
"#;

impl Settings {
    /// Sets the listener's `certificate_problems`: `"explain"` (the default) completes the
    /// handshake of a trusted but expired, not yet valid or revoked certificate and refuses each
    /// request with a page; `"alert"` fails the handshake with the TLS alert.
    pub fn certificate_problems(&mut self, mode: &str) {
        self.listener_extra.push_str(&format!("\ncertificate_problems = \"{mode}\"\n"));
    }
}

/// Routes the authorisation and guidance tests share: `/Organization/{ods}` scoped by a path
/// segment (B0360), `/scr` needing assurance level 3, `/cards` for smartcard users only, and a
/// public `/metadata`.
pub const SCOPED_ROUTES: &str = r#"
[[route]]
name = "organisation"
path_prefix = "/Organization"
upstream = "demo"
organisation_segment = 2
[[route.rule]]
methods = ["GET"]
activities_any = ["B0360"]

[[route]]
name = "scr"
path_prefix = "/scr"
upstream = "demo"
[[route.rule]]
methods = ["GET"]
min_assurance = 3
organisation_scope = false

[[route]]
name = "cards-only"
path_prefix = "/cards"
upstream = "demo"
[[route.rule]]
methods = ["*"]
auth_methods = ["smartcard"]
organisation_scope = false

[[route]]
name = "metadata"
path_prefix = "/metadata"
upstream = "demo"
[[route.rule]]
methods = ["GET"]
public = true
"#;

/// A role-directory entry for `user`: one clinician role (`role_id`, B0360: view patient records)
/// at `org`.
pub fn clinician(user: &str, role_id: &str, org: &str) -> String {
    format!(
        "\n[[user]]\nid = \"{user}\"\n[[user.role]]\nid = \"{role_id}\"\norg = \"{org}\"\n\
         role_code = \"S8000:G8000:R8000\"\nactivities = [\"B0360\"]\n"
    )
}

/// frank's role-directory entry: a clinician at RX1 (`555254242106`) and at RX2
/// (`555254242107`), with `extra_rx2` activities added at RX2.
pub fn frank(extra_rx2: &[&str]) -> String {
    let mut rx2 = vec!["\"B0360\"".to_owned()];
    rx2.extend(extra_rx2.iter().map(|a| format!("\"{a}\"")));
    format!(
        "{}[[user.role]]\nid = \"555254242107\"\norg = \"RX2\"\nrole_code = \"S8000:G8000:R8000\"\nactivities = [{}]\n",
        clinician("555000000006", "555254242106", "RX1"),
        rx2.join(", ")
    )
}
