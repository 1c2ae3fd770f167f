//! The pages as a person sees them: headless Chromium, driven through chromedriver's WebDriver
//! API, renders the expired-card refusal page and the identity page exactly as a running gateway
//! served them, takes a screenshot of each, and the test checks the rendered text, the page
//! structure, the text contrast (WCAG 2.2 AA) and that the page logged no console errors.
//!
//! How the pages reach Chromium: the token user's identity page is loaded by Chromium itself
//! over TLS from the gateway, the bearer token added through the DevTools protocol. Chromium
//! presents no client certificate here (its certificate selection needs a managed policy written
//! under /etc, which a test must not do), so the card pages go through a loopback relay in this
//! test that opens a real TLS connection to the gateway presenting the card — the gateway sees
//! the card exactly as from a browser — and passes the bytes through unchanged.
//!
//! Chromium and chromedriver are the Debian packages `chromium` and `chromium-driver`, which
//! `.ci/run` installs. Without them this test fails, saying so: it does not skip.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use spinegate_devpki::token::{KeyEndpoint, RoleSpec, TokenIssuer};
use spinegate_devpki::{Issued, KeyKind, LeafSpec};
use support::{AUDIENCE, Gw, ISSUER, Pki, care_identity, client_config, toml, within};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

const CAROL: &str = "555000000003";
const DAVE: &str = "555000000004";
const GRACE: &str = "555000000007";

/// A binary the test needs, from `$name_env` or the usual Debian path.
fn binary(env: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} not found: install the Debian package `{package}` (apt-get install --no-install-recommends chromium \
         chromium-driver; .ci/run does), or set {env}",
        path.display()
    );
    path
}

/// chromedriver, running until dropped; the browser session it drives is ended first.
struct Driver {
    child: Child,
    port: u16,
    session: Option<String>,
}

impl Driver {
    /// Starts chromedriver and waits for it to say it is listening.
    fn start(home: &Path) -> Self {
        let chromedriver = binary("SPINEGATE_CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // HOME is the test's: Chromium's NSS database and profile state stay in the temp dir.
        let mut child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .env("HOME", home)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("started successfully") => break,
                Some(Ok(_)) => continue,
                _ => {
                    let _ = child.kill();
                    panic!("chromedriver exited before it was ready");
                }
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, port, session: None }
    }

    /// A WebDriver command: `method` `path` with a JSON body; the response's `value`.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.port))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.map_or_else(Vec::new, |b| b.to_string().into_bytes()))))
            .unwrap();
        let response = send.send_request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let v: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        assert!(status.is_success(), "WebDriver {method} {path}: {status} {v}");
        v["value"].clone()
    }

    /// Opens a headless Chromium that accepts the gateway's server certificate by its key.
    async fn open(&mut self, profile: &Path, server_spki_sha256: &str) {
        let chromium = binary("SPINEGATE_CHROMIUM", "/usr/bin/chromium", "chromium");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--window-size=1280,1400",
                    format!("--user-data-dir={}", profile.display()),
                    // Loopback only: trust exactly the gateway's test server key.
                    format!("--ignore-certificate-errors-spki-list={server_spki_sha256}"),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = self.call("POST", "/session", Some(capabilities)).await;
        self.session = Some(v["sessionId"].as_str().expect("a session id").to_owned());
    }

    fn session(&self) -> String {
        format!("/session/{}", self.session.as_deref().expect("a browser is open"))
    }

    async fn go(&self, url: &str) {
        self.call("POST", &format!("{}/url", self.session()), Some(json!({"url": url}))).await;
    }

    async fn script(&self, source: &str) -> Value {
        self.call("POST", &format!("{}/execute/sync", self.session()), Some(json!({"script": source, "args": []})))
            .await
    }

    async fn devtools(&self, cmd: &str, params: Value) {
        self.call("POST", &format!("{}/goog/cdp/execute", self.session()), Some(json!({"cmd": cmd, "params": params})))
            .await;
    }

    /// Browser log entries since the last call.
    async fn console(&self) -> Vec<Value> {
        let v = self.call("POST", &format!("{}/se/log", self.session()), Some(json!({"type": "browser"}))).await;
        v.as_array().cloned().unwrap_or_default()
    }

    async fn screenshot(&self, to: &Path) -> Vec<u8> {
        let v = self.call("GET", &format!("{}/screenshot", self.session()), None).await;
        let png = base64_simd::STANDARD.decode_to_vec(v.as_str().expect("base64 PNG")).expect("valid base64");
        std::fs::write(to, &png).unwrap();
        png
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // End the browser through chromedriver, then chromedriver itself (by its own pid).
        if let Some(session) = self.session.take()
            && let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port))
        {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{session} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                self.port
            );
            let _ = s.write_all(request.as_bytes());
            let _ = s.read_to_end(&mut Vec::new());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback relay: plain HTTP in, a TLS connection to the gateway presenting `card` out.
async fn card_relay(gateway: SocketAddr, config: Arc<rustls::ClientConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut browser, _)) = listener.accept().await {
            let config = Arc::clone(&config);
            tokio::spawn(async move {
                let Ok(tcp) = TcpStream::connect(gateway).await else { return };
                let name = ServerName::try_from("localhost").expect("a valid name");
                let Ok(mut tls) = TlsConnector::from(config).connect(name, tcp).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut browser, &mut tls).await;
            });
        }
    });
    addr
}

/// base64 SHA-256 of the gateway's server certificate's public key.
fn server_spki_sha256(pki: &Pki) -> String {
    let der = spinegate::material::certificates(&pki.path("server.pem")).unwrap().remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.public_key().raw);
    base64_simd::STANDARD.encode_to_string(digest.as_ref())
}

/// Checks a screenshot: a PNG of the window's size with something drawn in it.
fn looks_like_a_page(png: &[u8]) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(width >= 800 && height >= 600, "{width}x{height}");
    // A blank window compresses to a few hundred bytes; text and colour blocks do not.
    assert!(png.len() > 10_000, "a {}-byte screenshot is too plain to be the page", png.len());
}

/// The least contrast of any visible text against its effective background, with the number of
/// text elements measured (WCAG 2.2 relative luminance and contrast ratio).
const CONTRAST: &str = r#"
const lum = (c) => {
  const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const opaque = (c) => { const m = c.match(/[\d.]+/g); return m && (m.length < 4 || Number(m[3]) > 0); };
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const bg = getComputedStyle(e).backgroundColor;
    if (opaque(bg)) return bg;
  }
  return 'rgb(255, 255, 255)';
};
let min = 99, measured = 0, worst = '';
for (const el of document.body.querySelectorAll('*')) {
  const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  const r = el.getBoundingClientRect();
  if (!own || r.width === 0 || r.height === 0) continue;
  const a = lum(getComputedStyle(el).color), b = lum(background(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  measured++;
  if (ratio < min) { min = ratio; worst = el.tagName + ': ' + el.textContent.trim().slice(0, 40); }
}
return {min, measured, worst,
  lang: document.documentElement.lang, title: document.title,
  h1: document.querySelectorAll('h1').length, main: document.querySelectorAll('main').length,
  scripts: document.scripts.length,
  external: [...document.querySelectorAll('link[href], img[src], script[src]')]
    .map((e) => e.getAttribute('href') || e.getAttribute('src')).filter((u) => !u.startsWith('data:')),
  text: document.body.innerText};
"#;

/// Loads `url`, checks the page as rendered, and returns its text. `refused` is the status the
/// page itself was served with, if it is a refusal: Chromium logs that status for the document,
/// which is the page doing its job, not an error in it.
async fn rendered(driver: &Driver, url: &str, shot: &Path, refused: Option<u16>) -> String {
    driver.go(url).await;
    let page = driver.script(CONTRAST).await;
    let png = driver.screenshot(shot).await;
    looks_like_a_page(&png);
    if let Some(dir) = std::env::var_os("SPINEGATE_BROWSER_SHOTS") {
        std::fs::copy(shot, Path::new(&dir).join(shot.file_name().unwrap())).unwrap();
    }
    let errors: Vec<Value> = driver
        .console()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .filter(|e| {
            let own_status = refused.is_some_and(|status| {
                let message = e["message"].as_str().unwrap_or("");
                e["source"] == "network"
                    && message.starts_with(url)
                    && message.contains(&format!("the server responded with a status of {status}"))
            });
            !own_status
        })
        .collect();
    assert!(errors.is_empty(), "{url} logged errors: {errors:?}");
    assert_eq!(page["lang"], "en-GB");
    assert_eq!((page["h1"].as_u64(), page["main"].as_u64()), (Some(1), Some(1)), "one h1, one main landmark");
    assert_eq!(page["scripts"], 0, "no scripts");
    assert_eq!(page["external"], json!([]), "no external assets");
    assert!(page["measured"].as_u64().unwrap() >= 8, "{page}");
    let min = page["min"].as_f64().unwrap();
    assert!(min >= 4.5, "text contrast {min:.2} is below WCAG AA 4.5:1 ({})", page["worst"]);
    page["text"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_the_expired_card_page_and_the_identity_pages() {
    let pki = Pki::new();
    let roles = pki.write("roles.toml", &support::clinician(CAROL, "555254242103", "RX1"));
    let issuer = Arc::new(Mutex::new(TokenIssuer::new(ISSUER).unwrap()));
    let keys = KeyEndpoint::spawn("127.0.0.1:0".parse().unwrap(), issuer).await.unwrap();
    let extra = format!(
        "{}\
         [role_directory]\nfile = {roles}\n\
         [guidance]\norganisation = \"Test Hospitals NHS Trust\"\n\
         [guidance.registration_authority]\nname = \"the Test Hospitals Registration Authority\"\nphone = \"0113 496 0000\"\n",
        care_identity(&keys.jwks_url()),
        roles = toml(&roles)
    );
    let gw = Gw::start(&pki, |s| {
        s.client_certificate = "request";
        s.extra = extra;
    })
    .await;
    let dave = pki.issue(
        LeafSpec::smartcard(DAVE, "DAVIES", "Dave").key(KeyKind::EcdsaP256).expired_since(time::Duration::hours(2)),
    );
    let carol: Issued = pki.issue(
        LeafSpec::smartcard(CAROL, "CARTER", "Carol").key(KeyKind::EcdsaP256).expiring_in(time::Duration::days(30)),
    );
    let token = {
        let roles = [RoleSpec {
            person_roleid: "555254242108".into(),
            org_code: "RX1".into(),
            role_code: "S8000:G8000:R8000".into(),
            role_name: "Clinical Practitioner".into(),
            activity_codes: vec!["B0360".into()],
        }];
        let issuer = keys.issuer().lock().unwrap();
        issuer.token(&issuer.care_identity_claims(AUDIENCE, GRACE, "FIDO2", 3, &roles, 3600))
    };
    let dave_relay = card_relay(gw.addr, client_config(&pki, Some(&dave), &[b"http/1.1"])).await;
    let carol_relay = card_relay(gw.addr, client_config(&pki, Some(&carol), &[b"http/1.1"])).await;

    let home = tempfile::tempdir().unwrap();
    let mut driver = Driver::start(home.path());
    within(60, driver.open(&home.path().join("profile"), &server_spki_sha256(&pki))).await;

    // The expired card: the handshake completed, and the gateway answered with the page.
    let url = format!("http://{dave_relay}/Patient/9000000009");
    let text = within(60, rendered(&driver, &url, &home.path().join("expired.png"), Some(401))).await;
    for expected in [
        "Your smartcard certificate has expired",
        "The certificate on your smartcard has expired, so the card cannot be used to sign in.",
        "What to do now",
        "Go in person to the Test Hospitals Registration Authority with your smartcard and photo ID",
        "Who can help",
        "Telephone: 0113 496 0000",
        "Error code: certificate_expired (HTTP 401)",
    ] {
        assert!(text.contains(expected), "{expected:?} not rendered in:\n{text}");
    }

    // A card user's identity page, inside the renewal window.
    let url = format!("http://{carol_relay}/.spinegate/whoami");
    let text = within(60, rendered(&driver, &url, &home.path().join("whoami-card.png"), None)).await;
    for expected in [
        "Your sign-in",
        CAROL,
        "Smartcard",
        "AAL3",
        "555254242103",
        "Renew your smartcard certificate before",
        "days left",
    ] {
        assert!(text.contains(expected), "{expected:?} not rendered in:\n{text}");
    }

    // A token user's identity page, fetched by Chromium itself over TLS with its bearer token.
    within(30, driver.devtools("Network.enable", json!({}))).await;
    let headers = json!({"headers": {"Authorization": format!("Bearer {token}")}});
    within(30, driver.devtools("Network.setExtraHTTPHeaders", headers)).await;
    let url = format!("https://localhost:{}/.spinegate/whoami", gw.addr.port());
    let text = within(60, rendered(&driver, &url, &home.path().join("whoami-token.png"), None)).await;
    for expected in ["Your sign-in", GRACE, "Care Identity, with a security key", "Your Care Identity sign-in ends at"]
    {
        assert!(text.contains(expected), "{expected:?} not rendered in:\n{text}");
    }
    drop(driver);
}
