//! Operations without dropping a request: the configuration, the server certificate and the
//! policy swapped by editing files while clients keep sending (new handshakes see the new
//! certificate at once, open connections keep working), a broken file refused while the last
//! good one serves, SIGHUP, readiness, and SIGTERM draining in-flight requests before exit 0 —
//! on the real `spinegate run` binary — readiness, and logs that never carry a credential.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::Full;
use spinegate::serve::Hangup;
use spinegate_devpki::LeafSpec;
use spinegate_devpki::demo_service::DemoService;
use support::{Client, Gw, Pki, Settings, client_config, toml, within};

/// The serial of the server certificate a new handshake gets.
async fn server_serial(gw_addr: SocketAddr, pki: &Pki, card: &spinegate_devpki::Issued) -> Vec<u8> {
    let tls = support::tls_connect(gw_addr, client_config(pki, Some(card), &[b"http/1.1"])).await.unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    cert.raw_serial().to_vec()
}

/// Waits (bounded) until `f` says yes.
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn certificates_and_policy_swap_under_load_without_a_failed_request() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let config = pki.write("spinegate.toml", &gw.text);
    gw.gateway.watch(config.clone(), Hangup::listen());
    let card = Arc::new(pki.card("555000000001"));
    let before = server_serial(gw.addr, &pki, &card).await;

    // Clients: two on long-lived connections, two opening a connection per request.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for fresh in [false, false, true, true] {
        let (stop, card) = (Arc::clone(&stop), Arc::clone(&card));
        let (addr, config) = (gw.addr, client_config(&pki, Some(&card), &[b"h2"]));
        workers.push(tokio::spawn(async move {
            let mut client = Client::connect(addr, Arc::clone(&config)).await.unwrap();
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if fresh {
                    client = Client::connect(addr, Arc::clone(&config)).await.unwrap();
                }
                let r = within(10, client.get("/Patient/9000000009")).await;
                outcomes.push(r.map(|r| r.status.as_u16()).map_err(|e| e.to_string()));
            }
            outcomes
        }));
    }

    // A renewed server certificate (same name, new key and serial), written the way a Secret
    // update lands: the files replaced under the watched directory.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let renewed = pki.tls_root.issue(&LeafSpec::server(&["localhost", "127.0.0.1"])).unwrap();
    let tmp = pki.write("server.pem.new", &renewed.chain_pem());
    std::fs::rename(&tmp, pki.path("server.pem")).unwrap();
    let tmp = pki.write("server.key.new", &renewed.key_pem());
    std::fs::rename(&tmp, pki.path("server.key")).unwrap();
    eventually("the new server certificate in new handshakes", async || {
        server_serial(gw.addr, &pki, &card).await != before
    })
    .await;

    // A policy change: a route that did not exist now answers (the catch-all rule is
    // unchanged, so the clients' requests keep passing).
    let with_route = format!(
        "{}\n[[route]]\nname = \"metadata-only\"\npath_prefix = \"/metadata\"\nupstream = \"demo\"\n{}",
        gw.text,
        "[[route.rule]]\nmethods = [\"GET\"]\norganisation_scope = false\nauthenticators = [\"security_key\"]\n"
    );
    std::fs::write(&config, &with_route).unwrap();
    eventually("the new rule", async || {
        let mut c = Client::connect(gw.addr, client_config(&pki, Some(&card), &[b"h2"])).await.unwrap();
        c.get("/metadata").await.unwrap().status == 403
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for worker in workers {
        for outcome in within(20, worker).await.unwrap() {
            assert_eq!(outcome, Ok(200));
            total += 1;
        }
    }
    assert!(total >= 20, "only {total} requests during the swaps");
    assert!(gw.metric("spinegate_config_reloads_total{trigger=\"file\",result=\"ok\"}").await >= 2.0);
}

#[tokio::test]
async fn a_broken_configuration_is_refused_and_the_last_good_one_keeps_serving() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let config = pki.write("spinegate.toml", &gw.text);
    gw.gateway.watch(config.clone(), Hangup::listen());
    let card = pki.card("555000000001");
    let mut client = Client::connect(gw.addr, client_config(&pki, Some(&card), &[b"h2"])).await.unwrap();
    let errors = "spinegate_config_reloads_total{trigger=\"file\",result=\"error\"}";
    let before = gw.metric(errors).await;

    // A syntax error, then a file that parses but names a missing key.
    for broken in [format!("{}\n[[route\n", gw.text), gw.text.replace("server.key", "missing.key")] {
        let failures = gw.metric(errors).await;
        std::fs::write(&config, broken).unwrap();
        eventually("the reload to be refused", async || gw.metric(errors).await > failures).await;
        assert_eq!(client.get("/Patient/9000000009").await.unwrap().status, 200, "the old configuration serves");
        let mut fresh = Client::connect(gw.addr, client_config(&pki, Some(&card), &[b"h2"])).await.unwrap();
        assert_eq!(fresh.get("/Patient/9000000009").await.unwrap().status, 200, "new handshakes too");
        let (status, body) = support::plain_get(gw.admin, "/readyz").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("the last reload") && body.contains("failed"), "{body}");
        assert_eq!(gw.metric("spinegate_config_last_reload_failed").await, 1.0);
    }
    assert!(gw.metric(errors).await >= before + 2.0);

    std::fs::write(&config, &gw.text).unwrap();
    eventually("the fixed file to load", async || gw.metric("spinegate_config_last_reload_failed").await == 0.0).await;
    let (_, body) = support::plain_get(gw.admin, "/readyz").await;
    assert_eq!(body, "ready\n");
}

/// `spinegate run` as a child process, with its listener and admin addresses read from its log.
struct Running {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    /// Every line it has logged so far.
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    fn start(config: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spinegate"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("spinegate is serving") {
                    let _ = sender.send(line.clone());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let line = receiver.recv_timeout(Duration::from_secs(30)).expect("spinegate did not start within 30 s");
        // JSON lines are flattened: the event's fields sit beside `message`.
        let fields: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(fields["listeners"].is_string(), "{line}");
        let addr = fields["listeners"].as_str().unwrap().trim_matches(['[', ']']).parse().unwrap();
        let admin = fields["admin"].as_str().unwrap().parse().unwrap();
        Self { child, addr, admin, log }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    fn wait(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "spinegate did not exit within {secs} s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `/readyz`'s status, or `None` when the admin listener no longer answers (also not ready).
async fn readyz(admin: SocketAddr) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.ok()?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").await.ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

fn config_file(pki: &Pki, demo: SocketAddr) -> std::path::PathBuf {
    let text = Settings::default().text(pki, demo);
    pki.write("spinegate.toml", &format!("{text}\n[log]\nformat = \"json\"\nlevel = \"info\"\n"))
}

#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    let pki = Pki::new();
    let demo = DemoService::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let config = config_file(&pki, demo.addr());
    let mut running = Running::start(&config);
    let signals = "spinegate_config_reloads_total{trigger=\"signal\",result=\"ok\"}";
    assert_eq!(support::metric(running.admin, signals).await, 0.0);
    // The log level is a start-up setting: the reload succeeds and says a restart is needed.
    let text = std::fs::read_to_string(&config).unwrap().replace("level = \"info\"", "level = \"debug\"");
    std::fs::write(&config, text).unwrap();
    running.signal("HUP");
    eventually("the SIGHUP reload", async || support::metric(running.admin, signals).await >= 1.0).await;
    let warned = |l: &String| l.contains("only on restart") && l.contains("\\\"log\\\"");
    eventually("the restart warning", async || running.log.lock().unwrap().iter().any(warned)).await;
    let card = pki.card("555000000001");
    let mut client = Client::connect(running.addr, client_config(&pki, Some(&card), &[b"h2"])).await.unwrap();
    assert_eq!(client.get("/Patient/9000000009").await.unwrap().status, 200);
    // The client's connection stays open and idle: shutdown closes it (HTTP/2 GOAWAY) rather than
    // waiting for the drain deadline.
    let sent = Instant::now();
    running.signal("TERM");
    let status = tokio::task::spawn_blocking(move || running.wait(35)).await.unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(sent.elapsed() < Duration::from_secs(5), "an idle connection held the drain for {:?}", sent.elapsed());
    drop(client);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let pki = Pki::new();
    let demo = DemoService::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut running = Running::start(&config_file(&pki, demo.addr()));
    let card = Arc::new(pki.card("555000000001"));
    let mut requests = Vec::new();
    for _ in 0..5 {
        let config = client_config(&pki, Some(&card), &[b"h2"]);
        let addr = running.addr;
        requests.push(tokio::spawn(async move {
            let mut client = Client::connect(addr, config).await.unwrap();
            let request = Request::get("/_demo/slow?ms=1500").body(Full::default()).unwrap();
            within(20, client.send(request)).await.map(|r| r.status.as_u16()).map_err(|e| e.to_string())
        }));
    }
    // Wait until all five are in flight.
    eventually("five requests in flight", async || {
        support::metric(running.admin, "spinegate_requests_in_flight").await == 5.0
    })
    .await;
    let sent = Instant::now();
    running.signal("TERM");
    // While draining the gateway is not ready, and it accepts no new connections.
    eventually("/readyz to fail", async || readyz(running.admin).await != Some(200)).await;
    for request in requests {
        assert_eq!(request.await.unwrap(), Ok(200), "an in-flight request was dropped");
    }
    let status = tokio::task::spawn_blocking(move || running.wait(35)).await.unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(sent.elapsed() < Duration::from_secs(30), "drained without waiting for the deadline");
    assert!(tokio::net::TcpStream::connect(demo.addr()).await.is_ok(), "the upstream is untouched");
}

#[tokio::test]
async fn readiness_follows_crl_freshness_and_the_drain() {
    let pki = Pki::new();
    let crl = pki.path("issuing.crl");
    std::fs::write(&crl, pki.issuing.crl(&spinegate_devpki::crl::CrlSpec::new(1)).unwrap()).unwrap();
    let gw = Gw::start(&pki, |s| {
        s.extra = format!(
            "[[client_auth.issuer]]\nname = \"crl-issuing\"\ncertificate = {}\n[client_auth.issuer.revocation]\nsources = [\"crl\"]\ncrl_files = [{crl}]\n",
            toml(&pki.path("issuing.pem")), crl = toml(&crl));
    })
    .await;
    assert_eq!(support::plain_get(gw.admin, "/readyz").await, (200, "ready\n".to_owned()));
    assert_eq!(gw.metric("spinegate_ready").await, 1.0);
    // A day and a bit later the CRL is past its nextUpdate and nothing newer has come.
    gw.clock.advance(Duration::from_secs(86_400 + 120));
    let (status, body) = support::plain_get(gw.admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("past its nextUpdate"), "{body}");
    assert_eq!(gw.metric("spinegate_ready").await, 0.0);
    // A fresh CRL arrives (the file is polled): ready again.
    let mut spec = spinegate_devpki::crl::CrlSpec::new(2);
    spec.this_update += time::Duration::days(1);
    spec.next_update = Some(spec.this_update + time::Duration::days(1));
    std::fs::write(&crl, pki.issuing.crl(&spec).unwrap()).unwrap();
    eventually("readiness after a fresh CRL", async || support::plain_get(gw.admin, "/readyz").await.0 == 200).await;
    // Draining: not ready.
    let admin = gw.admin;
    let drain = tokio::spawn(async move { gw.gateway.shutdown(Duration::from_secs(5)).await });
    eventually("not ready while draining", async || readyz(admin).await != Some(200)).await;
    within(10, drain).await.unwrap();
}

#[tokio::test]
async fn logs_are_json_lines_with_an_access_log_and_never_a_credential() {
    use spinegate_devpki::token::{KeyEndpoint, TokenIssuer};
    let pki = Pki::new();
    let demo = DemoService::spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let issuer = Arc::new(std::sync::Mutex::new(TokenIssuer::new("https://ci.test/issuer").unwrap()));
    let keys = KeyEndpoint::spawn("127.0.0.1:0".parse().unwrap(), issuer).await.unwrap();
    let mut settings = Settings { client_certificate: "request", ..Settings::default() };
    settings.extra = format!(
        "[[token_issuer]]\nname = \"ci\"\nissuer = \"https://ci.test/issuer\"\njwks_url = \"{}\"\naudiences = [\"spinegate-test\"]\n",
        keys.jwks_url()
    );
    let config = pki.write(
        "spinegate.toml",
        &format!("{}\n[log]\nformat = \"json\"\nlevel = \"debug\"\n", settings.text(&pki, demo.addr())),
    );
    let running = Running::start(&config);
    let card = pki.card("555000000001");
    let token = {
        let issuer = keys.issuer().lock().unwrap();
        issuer.token(&issuer.care_identity_claims("spinegate-test", "555000000021", "FIDO2", 3, &[], 3600))
    };
    let forged = format!("{}x", &token[..token.len() - 1]);
    let mut client = Client::connect(running.addr, client_config(&pki, Some(&card), &[b"h2"])).await.unwrap();
    assert_eq!(client.get("/Patient/9000000009").await.unwrap().status, 200);
    let mut anonymous = Client::connect(running.addr, client_config(&pki, None, &[b"h2"])).await.unwrap();
    for t in [&token, &forged] {
        let request = Request::get("/Patient/9000000009")
            .header("authorization", format!("Bearer {t}"))
            .body(Full::default())
            .unwrap();
        anonymous.send(request).await.unwrap();
    }
    running.signal("TERM");
    drop((client, anonymous));
    let status = tokio::task::spawn_blocking({
        let mut running = running;
        move || (running.wait(35), running.log.lock().unwrap().clone())
    })
    .await
    .unwrap();
    let (exit, lines) = status;
    assert!(exit.success());
    let access: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .filter(|v| v["target"] == "spinegate::access")
        .collect();
    assert!(access.len() >= 3, "{lines:?}");
    for line in &access {
        for field in ["request_id", "status", "reason", "duration_ms", "route", "method"] {
            assert!(line.get(field).is_some(), "access log line without {field}: {line}");
        }
    }
    let all = lines.join("\n");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!all.contains(signature) && !all.contains(&forged[forged.len() - 40..]), "a token reached the log");
    let der = spinegate_token::jose::b64_encode(&card.cert);
    assert!(!all.contains(&der[..60]) && !all.contains("BEGIN CERTIFICATE"), "a certificate reached the log");
}

#[tokio::test]
async fn files_written_beside_the_configuration_do_not_reload_it() {
    let pki = Pki::new();
    let gw = Gw::start(&pki, |_| {}).await;
    let config = pki.write("spinegate.toml", &gw.text);
    gw.gateway.watch(config.clone(), Hangup::listen());
    let reloads = "spinegate_config_reloads_total{trigger=\"file\",result=\"ok\"}";
    // Give the watcher time to start, then write an audit log and a log file beside the config,
    // as `spinegate dev` and many deployments do.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..20 {
        std::fs::write(pki.path("audit.jsonl"), format!("{{\"n\":{i}}}\n")).unwrap();
        std::fs::write(pki.path("spinegate.log"), format!("line {i}\n")).unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(gw.metric(reloads).await, 0.0, "unrelated files reloaded the configuration");
    // The configuration itself still does.
    std::fs::write(&config, format!("{}\n# touched\n", gw.text)).unwrap();
    eventually("the file reload", async || gw.metric(reloads).await >= 1.0).await;
}
