//! A real Prometheus scrapes the admin listener's `/metrics` and sees the request counter move by
//! exactly the requests sent, and `promtool check metrics` accepts the exposition after traffic
//! has created histograms and labelled counters. Both binaries come from the Debian `prometheus`
//! package, which `.ci/run` installs.

mod support;

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::AlertDescription;
use spinegate_devpki::{Ca, KeyKind, LeafSpec};
use support::{Client, Gw, Pki, client_config, handshake_alert, plain_get, within};
use tokio::net::TcpStream;

/// The metrics recorder is process-global, so under `cargo test` (one process, many threads) two
/// tests' traffic would land in the same counters; nextest runs each test in its own process,
/// where this lock is uncontended.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long Prometheus gets to start, and then to show an expected value.
const PROMETHEUS_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn prometheus_scrapes_the_request_counter_exactly() {
    let _serial = SERIAL.lock().await;
    within(120, async {
        let pki = Pki::new();
        let gw = Gw::start(&pki, |_| {}).await;
        let prometheus = Prometheus::start(gw.admin).await;
        prometheus.wait_for("up{job=\"spinegate\"}", 1.0).await;

        let card = pki.card("555000000001");
        let mut client = Client::connect(gw.addr, client_config(&pki, Some(&card), &[b"h2"])).await.unwrap();
        let counter = "sum(spinegate_requests_total{route=\"all\",status=\"200\"})";
        let ok = [("route", "all"), ("status", "200")];

        // One request first, so the series exists before the baseline Prometheus records.
        assert_eq!(client.get("/Patient/9000000009").await.unwrap().status, 200);
        let baseline = exposed(gw.admin, "spinegate_requests_total", &ok).await;
        prometheus.wait_for(counter, baseline).await;

        const N: u32 = 7;
        for _ in 0..N {
            assert_eq!(client.get("/Patient/9000000009").await.unwrap().status, 200);
        }
        let after = exposed(gw.admin, "spinegate_requests_total", &ok).await;
        assert_eq!(after - baseline, f64::from(N), "/metrics went from {baseline} to {after}");
        prometheus.wait_for(counter, after).await;
        assert_eq!(prometheus.query("up{job=\"spinegate\"}").await, Some(1.0));
    })
    .await;
}

#[tokio::test]
async fn promtool_accepts_the_metrics_exposition_after_mixed_traffic() {
    let _serial = SERIAL.lock().await;
    let promtool = tool("promtool");
    let body = within(60, async {
        let pki = Pki::new();
        // GET only, so a POST is refused with a labelled reason.
        let gw = Gw::start(&pki, |s| {
            s.rules = "[[route.rule]]\nmethods = [\"GET\"]\norganisation_scope = false\n".into();
        })
        .await;
        let card = pki.card("555000000001");
        for alpn in [&b"h2"[..], b"http/1.1"] {
            let mut client = Client::connect(gw.addr, client_config(&pki, Some(&card), &[alpn])).await.unwrap();
            assert_eq!(client.get("/Patient/9000000009").await.unwrap().status, 200);
            let post = Request::post("/Patient").body(Default::default()).unwrap();
            assert_eq!(client.send(post).await.unwrap().status, 403);
        }
        let rogue = Ca::root("Rogue Root", KeyKind::EcdsaP256).unwrap();
        let eve = rogue.issue(&LeafSpec::smartcard("555000000666", "EVE", "Eve").key(KeyKind::EcdsaP256)).unwrap();
        let alert = handshake_alert(gw.addr, client_config(&pki, Some(&eve), &[b"http/1.1"])).await;
        assert_eq!(alert, Some(AlertDescription::UnknownCA));

        let (status, body) = plain_get(gw.admin, "/metrics").await;
        assert_eq!(status, 200);
        body
    })
    .await;
    // The check is only meaningful if the traffic produced each kind of series.
    for series in [
        "spinegate_request_duration_seconds_bucket{",
        "spinegate_tls_handshake_duration_seconds_bucket{",
        "spinegate_requests_total{",
        "spinegate_client_cert_verifications_total{result=\"unknown_ca\"}",
        "spinegate_tls_handshakes_total{",
    ] {
        assert!(body.contains(series), "{series} missing from /metrics:\n{body}");
    }

    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", promtool.display()));
        // Dropping stdin after the write closes it, which ends promtool's input.
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin is piped"), body.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// A Prometheus server on a free 127.0.0.1 port with its own config and storage in a temporary
/// directory, scraping one target every second. Dropping it kills the process.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(target: SocketAddr) -> Self {
        let binary = tool("prometheus");
        // The free port is only free until someone else binds it: retry on a lost race.
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let config = format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: spinegate\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: [\"{target}\"]\n"
            );
            std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
            let addr = free_port();
            let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
            let child = Command::new(&binary)
                .current_dir(dir.path())
                .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("running {}: {e}", binary.display()));
            let mut prometheus = Self { child, addr, dir };
            if prometheus.ready().await {
                return prometheus;
            }
            if !prometheus.log().contains("address already in use") {
                panic!("prometheus did not become ready within {PROMETHEUS_DEADLINE:?}:\n{}", prometheus.log());
            }
        }
        panic!("prometheus lost the race for a free port three times");
    }

    /// Whether `/-/ready` answers 200 before the deadline; false as soon as the process exits.
    async fn ready(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + PROMETHEUS_DEADLINE;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while tokio::time::Instant::now() < deadline {
            tick.tick().await;
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if matches!(http_get(self.addr, "/-/ready").await, Some((200, _))) {
                return true;
            }
        }
        false
    }

    /// The single value an instant query returns, or `None` for an empty result.
    async fn query(&self, promql: &str) -> Option<f64> {
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={}", percent_encode(promql)))
            .await
            .unwrap_or_else(|| panic!("prometheus API unreachable:\n{}", self.log()));
        assert_eq!(status, 200, "query {promql}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let result = json["data"]["result"].as_array().unwrap_or_else(|| panic!("query {promql}: {body}"));
        assert!(result.len() <= 1, "query {promql} returned several series: {body}");
        // An instant vector sample is `[unix_time, "value"]`.
        result.first().map(|sample| sample["value"][1].as_str().unwrap().parse().unwrap())
    }

    /// Waits, at most the deadline, until `promql` evaluates to `want`.
    async fn wait_for(&self, promql: &str, want: f64) {
        let deadline = tokio::time::Instant::now() + PROMETHEUS_DEADLINE;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut got = None;
        while tokio::time::Instant::now() < deadline {
            tick.tick().await;
            got = self.query(promql).await;
            if got == Some(want) {
                return;
            }
        }
        let targets = http_get(self.addr, "/api/v1/targets").await.map(|(_, b)| b).unwrap_or_default();
        panic!(
            "{promql} is {got:?}, not {want}, after {PROMETHEUS_DEADLINE:?}\ntargets: {targets}\nlog:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of the samples of `name` in the admin listener's `/metrics` whose labels include all
/// of `labels` (0 when there are none).
async fn exposed(admin: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (status, body) = plain_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let series_labels = match series.split_once('{') {
                Some((n, rest)) if n == name => parse_labels(rest.strip_suffix('}')?),
                None if series == name => Vec::new(),
                _ => return None,
            };
            let wanted = labels.iter().all(|(k, v)| series_labels.iter().any(|(sk, sv)| sk == k && sv == v));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// `a="x",b="y\"z"` as pairs, unescaping values.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, e)| e) {
                    Some('n') => value.push('\n'),
                    Some(e) => value.push(e),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        pairs.push((key.trim_start_matches(',').to_owned(), value));
        rest = &after[end..];
    }
    pairs
}

/// A GET over HTTP/1.1 with hyper (Prometheus may answer chunked): status and body, or `None`
/// when nothing listens yet.
async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    let request = Request::get(path).header(http::header::HOST, addr.to_string()).body(Empty::<Bytes>::new()).unwrap();
    let response = send.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for a query-string value).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn free_port() -> SocketAddr {
    StdTcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The path of a Prometheus binary, or a failure that says how to get it.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH: install the Debian package `prometheus` \
                 (apt-get install prometheus), which ships `prometheus` and `promtool`; .ci/run does this"
            )
        })
}
