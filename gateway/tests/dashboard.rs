//! The Grafana dashboard the Helm chart ships asks only for what `/metrics` exposes: every metric
//! named by a PromQL expression in it (panels, collapsed rows, annotations, template variables)
//! appears in real gateways' scrapes after everyday traffic — cards good and refused, tokens, an
//! untrusted CA, OCSP and CRLs, a dead upstream and a dead LDAP server — with counters and
//! histogram series only under `rate`/`irate`/`increase` and gauges never. The JSON itself is sound:
//! unique panel ids, a datasource and targets on every panel, an `expr` and `refId` on every target.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use spinegate_devpki::crl::CrlSpec;
use spinegate_devpki::ocsp::{CertState, Mode, OcspResponder};
use spinegate_devpki::token::{KeyEndpoint, RoleSpec, TokenIssuer};
use spinegate_devpki::{Ca, Issued, KeyKind, LeafSpec};
use support::{ANY_AUTHENTICATED, Client, Gw, Pki, Resp, client_config, handshake_alert, plain_get, toml, within};

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../helm/spinegate/dashboards/spinegate.json");
/// Every panel and target queries through the dashboard's datasource variable.
const DATASOURCE_UID: &str = "${datasource}";

/// Functions whose argument must be a counter or a histogram's cumulative series.
const COUNTER_FUNCTIONS: &[&str] = &["rate", "irate", "increase", "resets"];
/// Aggregation operators; `sum by (le) (…)` puts a clause between the name and its parenthesis.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Words followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
/// Other words that are not metric names (`group_left` may come without a label list).
const KEYWORDS: &[&str] =
    &["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "group_left", "group_right"];

/// A metric an expression selects.
#[derive(Debug, PartialEq, Eq)]
struct Selected {
    name: String,
    /// Under a counter function (looking through aggregations and plain parentheses).
    rated: bool,
}

/// A PromQL expression and where the dashboard uses it (panel title, annotation or variable).
#[derive(Debug)]
struct Query {
    place: String,
    expr: String,
    /// A variable's series selector: it looks up label values and computes nothing, so a counter
    /// needs no `rate` there.
    lookup: bool,
}

/// Series names and metric types from Prometheus text exposition.
#[derive(Debug, Default)]
struct Exposition {
    series: BTreeSet<String>,
    types: HashMap<String, String>,
}

impl Exposition {
    fn read(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    self.types.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                self.series.insert(line.split(['{', ' ']).next().unwrap_or_default().to_owned());
            }
        }
    }

    /// A series' type: its own, or its histogram's or summary's for `_bucket`, `_sum`, `_count`.
    fn kind(&self, series: &str) -> Option<&str> {
        self.types
            .get(series)
            .or_else(|| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| series.strip_suffix(suffix).and_then(|base| self.types.get(base)))
            })
            .map(String::as_str)
    }
}

// ---------------------------------------------------------------------------------------------
// The PromQL tokenizer.

/// The metrics an expression selects: names before `{` or `[` or standing alone, and
/// `__name__="…"` matchers. Skipped: string literals, label matchers, range and subquery
/// brackets, label lists after `by`/`without`/`on`/`ignoring`/`group_*`, Grafana variables
/// (`$x`, `${x}`), numbers and durations, function and aggregation names, keywords.
fn selected_metrics(expr: &str) -> Vec<Selected> {
    let s: Vec<char> = expr.chars().collect();
    let mut found = Vec::new();
    // One entry per open parenthesis: the function or aggregation it calls, "" when grouping.
    let mut calls: Vec<String> = Vec::new();
    let mut callee: Option<String> = None;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if is_quote(c) {
            i = after_string(&s, i);
        } else if c == '{' {
            let end = closing(&s, i);
            let rated = rated(&calls);
            found.extend(name_matchers(&s[i + 1..end]).into_iter().map(|name| Selected { name, rated }));
            i = end + 1;
        } else if c == '[' {
            i = closing(&s, i) + 1;
        } else if c == '$' {
            i = if s.get(i + 1) == Some(&'{') { closing(&s, i + 1) + 1 } else { after(&s, i + 1, is_name_char) };
        } else if c == '(' {
            calls.push(callee.take().unwrap_or_default());
            i += 1;
        } else if c == ')' {
            calls.pop();
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            i = after(&s, i, |c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let end = after(&s, i, is_name_char);
            let word: String = s[i..end].iter().collect();
            let open = skip_space(&s, end);
            let called = s.get(open) == Some(&'(');
            i = end;
            if called && LABEL_LISTS.contains(&word.as_str()) {
                i = closing(&s, open) + 1;
            } else if called || AGGREGATIONS.contains(&word.as_str()) {
                callee = Some(word);
            } else if !KEYWORDS.contains(&word.as_str()) {
                found.push(Selected { name: word, rated: rated(&calls) });
            }
        } else {
            i += 1;
        }
    }
    found
}

/// Whether the innermost function around this point (not an aggregation) takes a counter.
fn rated(calls: &[String]) -> bool {
    calls
        .iter()
        .rev()
        .find(|f| !f.is_empty() && !AGGREGATIONS.contains(&f.as_str()))
        .is_some_and(|f| COUNTER_FUNCTIONS.contains(&f.as_str()))
}

/// Metric names given by exact `__name__` matchers inside `{…}`.
fn name_matchers(s: &[char]) -> Vec<String> {
    let mut names = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if is_quote(s[i]) {
            i = after_string(s, i);
        } else if is_name_char(s[i]) {
            let end = after(s, i, is_name_char);
            let op_start = skip_space(s, end);
            let op_end = after(s, op_start, |c| matches!(c, '=' | '!' | '~'));
            let value = skip_space(s, op_end);
            let op: String = s[op_start..op_end].iter().collect();
            if s[i..end].iter().collect::<String>() == "__name__"
                && op == "="
                && s.get(value).is_some_and(|&c| is_quote(c))
            {
                let value_end = after_string(s, value);
                names.push(s[value + 1..value_end.saturating_sub(1).max(value + 1)].iter().collect());
            }
            i = value.max(end);
        } else {
            i += 1;
        }
    }
    names
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '\'' | '`')
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The index after the run of `keep` characters starting at `i`.
fn after(s: &[char], i: usize, keep: impl Fn(char) -> bool) -> usize {
    s[i..].iter().position(|&c| !keep(c)).map_or(s.len(), |n| i + n)
}

fn skip_space(s: &[char], i: usize) -> usize {
    after(s, i, char::is_whitespace)
}

/// The index after the string literal opening at `i` (backquoted strings have no escapes).
fn after_string(s: &[char], i: usize) -> usize {
    let quote = s[i];
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            '\\' if quote != '`' => j += 2,
            c if c == quote => return j + 1,
            _ => j += 1,
        }
    }
    s.len()
}

/// The index of the bracket closing the one at `open` (`s.len()` when unbalanced), skipping
/// string literals.
fn closing(s: &[char], open: usize) -> usize {
    let (opener, closer) = match s[open] {
        '(' => ('(', ')'),
        '[' => ('[', ']'),
        _ => ('{', '}'),
    };
    let mut depth = 0;
    let mut j = open;
    while j < s.len() {
        match s[j] {
            c if is_quote(c) => {
                j = after_string(s, j);
                continue;
            }
            c if c == opener => depth += 1,
            c if c == closer => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
        j += 1;
    }
    s.len()
}

/// The PromQL in a Grafana Prometheus variable query: the selector of `label_values(selector,
/// label)`, the expression of `query_result(expr)`; none for `label_values(label)`,
/// `label_names(…)` and `metrics(…)`, which name no metric.
fn variable_promql(query: &str) -> Option<String> {
    let query = query.trim();
    let inner = |prefix: &str| {
        query
            .strip_prefix(prefix)
            .map(|rest| rest.trim_start().trim_start_matches('('))
            .and_then(|r| r.strip_suffix(')'))
    };
    if let Some(args) = inner("label_values") {
        let s: Vec<char> = args.chars().collect();
        let mut last_comma = None;
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                c if is_quote(c) => i = after_string(&s, i),
                '(' | '{' | '[' => i = closing(&s, i) + 1,
                ',' => {
                    last_comma = Some(i);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        return last_comma.map(|k| s[..k].iter().collect());
    }
    if let Some(expr) = inner("query_result") {
        return Some(expr.to_owned());
    }
    if query.starts_with("label_names") || query.starts_with("metrics(") {
        return None;
    }
    Some(query.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Reading the dashboard.

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel, including those inside collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let top = dashboard["panels"].as_array().expect("the dashboard has panels");
    top.iter().flat_map(|p| std::iter::once(p).chain(p["panels"].as_array().into_iter().flatten())).collect()
}

/// Every PromQL expression: each `expr` anywhere (targets, annotations) and each query
/// variable's query.
fn queries(dashboard: &Value) -> Vec<Query> {
    let mut found = Vec::new();
    collect_exprs(dashboard, "dashboard", &mut found);
    for var in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] != "query" {
            continue;
        }
        // The query is an object in Grafana 10+ and a plain string before.
        let query = var["query"].get("query").unwrap_or(&var["query"]);
        let text = query.as_str().unwrap_or_else(|| panic!("variable {} has no query text", var["name"]));
        if let Some(expr) = variable_promql(text) {
            let place = format!("variable ${}", var["name"].as_str().unwrap_or("?"));
            found.push(Query { place, expr, lookup: true });
        }
    }
    found
}

/// The `expr` strings below `value`, each with the nearest enclosing title or name.
fn collect_exprs(value: &Value, place: &str, found: &mut Vec<Query>) {
    match value {
        Value::Object(map) => {
            let here = map.get("title").or_else(|| map.get("name")).and_then(Value::as_str).unwrap_or(place);
            if let Some(Value::String(expr)) = map.get("expr") {
                found.push(Query { place: here.to_owned(), expr: expr.clone(), lookup: false });
            }
            for v in map.values() {
                collect_exprs(v, here, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, place, found)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// The extractor and the dashboard's shape.

fn names(expr: &str) -> Vec<(String, bool)> {
    selected_metrics(expr).into_iter().map(|s| (s.name, s.rated)).collect()
}

fn n(name: &str, rated: bool) -> (String, bool) {
    (name.to_owned(), rated)
}

#[test]
fn extractor_finds_selected_metrics_and_nothing_else() {
    let q = r#"histogram_quantile(0.99, sum by (le, route) (rate(a_seconds_bucket{instance=~"$instance",route!="rate(x)"}[$__rate_interval])))"#;
    assert_eq!(names(q), [n("a_seconds_bucket", true)]);
    let q = r#"sum(rate(a_total{reason!="ok"}[5m])) by (route) / on (route) group_left sum without (reason) (increase(b_total[1h] offset 1d))"#;
    assert_eq!(names(q), [n("a_total", true), n("b_total", true)]);
    assert_eq!(names(r#"time() - max by (pod) (g{x="y"})"#), [n("g", false)]);
    assert_eq!(names("up"), [n("up", false)]);
    assert_eq!(
        names("x > bool 1e3 and y < .5 or z unless w"),
        [n("x", false), n("y", false), n("z", false), n("w", false)]
    );
    assert_eq!(names(r#"label_replace(g, "dst", "rate(c_total[5m])", "src", '(.*)')"#), [n("g", false)]);
    assert_eq!(names(r#"{__name__="by_name", job=~"rate|sum"} + {__name__=~"re.*"}"#), [n("by_name", false)]);
    assert_eq!(names("max_over_time(rate(c_total[5m])[1h:1m])"), [n("c_total", true)]);
    assert_eq!(names(r#"topk(5, count_values("v", g)) + clamp_min(c_total, 0)"#), [n("g", false), n("c_total", false)]);
    assert_eq!(
        names(r#"sum(rate(c_total{route=~"${route:regex}"}[$__range])) * on() group_right() h"#),
        [n("c_total", true), n("h", false)]
    );
    assert_eq!(names(r#"x{a="}{",b='\'"'} @ end()"#), [n("x", false)]);
    assert_eq!(names("vector(0)"), []);
}

#[test]
fn variable_queries_yield_their_selector() {
    assert_eq!(variable_promql(r#"label_values(m{a=~"$a",b=","}, pod)"#).as_deref(), Some(r#"m{a=~"$a",b=","}"#));
    assert_eq!(variable_promql("label_values(instance)"), None);
    assert_eq!(variable_promql("query_result(topk(5, m))").as_deref(), Some("topk(5, m)"));
    assert_eq!(variable_promql("metrics(spinegate_.*)"), None);
}

#[test]
fn dashboard_is_structurally_sound() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 39), "schemaVersion {}", d["schemaVersion"]);
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "uid {}", d["uid"]);
    let vars: HashMap<&str, &Value> = d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().expect("variable name"), v))
        .collect();
    assert_eq!(vars["datasource"]["type"], "datasource");
    assert_eq!(vars["datasource"]["query"], "prometheus");
    for name in ["instance", "pod", "route"] {
        let var = vars.get(name).unwrap_or_else(|| panic!("no ${name} variable"));
        assert_eq!(var["type"], "query", "${name}");
        assert_eq!(var["datasource"]["uid"], DATASOURCE_UID, "${name}");
    }
    for row in d["panels"].as_array().expect("panels").iter().filter(|p| p["type"] == "row") {
        let nested = row["panels"].as_array().map_or(0, Vec::len);
        assert!(row["collapsed"] == true || nested == 0, "expanded row {} holds panels", row["title"]);
    }
    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap_or_else(|| panic!("panel without a title: {p}"));
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: no numeric id"));
        assert!(ids.insert(id), "{title}: panel id {id} is used twice");
        let (x, w) = (p["gridPos"]["x"].as_u64(), p["gridPos"]["w"].as_u64());
        assert!(
            x.zip(w).is_some_and(|(x, w)| w > 0 && x + w <= 24) && p["gridPos"]["h"].as_u64() > Some(0),
            "{title}: gridPos"
        );
        if p["type"] == "row" {
            assert!(p.get("targets").is_none(), "{title}: a row has no queries");
            continue;
        }
        assert_eq!(p["datasource"]["uid"], DATASOURCE_UID, "{title}: datasource");
        let targets =
            p["targets"].as_array().filter(|t| !t.is_empty()).unwrap_or_else(|| panic!("{title}: no targets"));
        let mut ref_ids = BTreeSet::new();
        for t in targets {
            assert!(t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{title}: target without expr: {t}");
            let ref_id =
                t["refId"].as_str().filter(|r| !r.is_empty()).unwrap_or_else(|| panic!("{title}: no refId: {t}"));
            assert!(ref_ids.insert(ref_id), "{title}: refId {ref_id} is used twice");
            if let Some(ds) = t.get("datasource") {
                assert_eq!(ds["uid"], DATASOURCE_UID, "{title}: target datasource");
            }
        }
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exposed() {
    let queries = queries(&dashboard());
    let mut exposed = Exposition::default();
    for scrape in [everyday_traffic().await, crl_and_deny_list_traffic().await, ldap_down_traffic().await] {
        exposed.read(&scrape);
    }
    let mut missing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut misused = Vec::new();
    for query in &queries {
        let selected = selected_metrics(&query.expr);
        assert!(!selected.is_empty(), "{}: no metric in {}", query.place, query.expr);
        for Selected { name, rated } in selected {
            if !exposed.series.contains(&name) {
                missing.entry(name).or_default().insert(query.place.clone());
                continue;
            }
            match (exposed.kind(&name), rated) {
                _ if query.lookup => {}
                (Some("counter" | "histogram"), false) => {
                    misused.push(format!("{}: {name} is cumulative but not under rate/increase", query.place));
                }
                (Some("gauge"), true) => {
                    misused.push(format!("{}: {name} is a gauge under a counter function", query.place))
                }
                _ => {}
            }
        }
    }
    let missing: Vec<String> = missing.iter().map(|(name, places)| format!("{name} (used by {places:?})")).collect();
    assert!(
        missing.is_empty() && misused.is_empty(),
        "not exposed by /metrics:\n  {}\nmisused:\n  {}",
        missing.join("\n  "),
        misused.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Traffic. The recorder is process-wide, so every gateway's series land in every scrape.

use support::{ALICE, AUDIENCE, CLINICIAN_AND_CLERK_ROLES as ROLES, ERIN, ISSUER};

/// A loopback port with nothing listening.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn get(gw: &Gw, config: Arc<rustls::ClientConfig>, path: &str, token: Option<&str>) -> Resp {
    let mut client = Client::connect(gw.addr, config).await.unwrap();
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    within(10, client.send(request.body(Full::default()).unwrap())).await.unwrap()
}

async fn scrape(gw: &Gw) -> String {
    let (status, body) = plain_get(gw.admin, "/metrics").await;
    assert_eq!(status, 200);
    body
}

/// A gateway with every feature on: smartcards checked by OCSP (stale answers served for an
/// hour), tokens, the role directory file, audit, identity assertions, and a route to an upstream
/// that is down.
struct Everyday {
    pki: Pki,
    gw: Gw,
    ocsp: OcspResponder,
    keys: KeyEndpoint,
    roles: PathBuf,
    alice: Issued,
    erin: Issued,
}

impl Everyday {
    async fn start() -> Self {
        let pki = Pki::new();
        // Rebuilt from the PKI's key so the responder signs as the issuing CA.
        let issuing = Ca::from_der(
            pki.issuing.cert().clone(),
            rcgen::KeyPair::from_pem(&pki.issuing.key_pem()).unwrap(),
            &[],
            false,
        )
        .unwrap();
        let ocsp = OcspResponder::spawn("127.0.0.1:0".parse().unwrap(), Arc::new(issuing), []).await.unwrap();
        let card = |user: &str, serial: u8| {
            let spec = LeafSpec::smartcard(user, "TEST", "User").key(KeyKind::EcdsaP256).ocsp_url(ocsp.url());
            ocsp.set(&[serial; 16], CertState::Good);
            pki.issue(spec.serial(&[serial; 16]))
        };
        let (alice, erin) = (card(ALICE, 0x11), card(ERIN, 0x12));
        let issuer = Arc::new(Mutex::new(TokenIssuer::new(ISSUER).unwrap()));
        let keys = KeyEndpoint::spawn("127.0.0.1:0".parse().unwrap(), issuer).await.unwrap();
        let roles = pki.write("roles.toml", ROLES);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap().serialize_pem();
        let extra = format!(
            "[[token_issuer]]\nname = \"care-identity\"\nissuer = \"{ISSUER}\"\njwks_url = \"{jwks}\"\n\
             audiences = [\"{AUDIENCE}\"]\njwks_refetch_interval = \"30s\"\n\
             [role_directory]\nfile = {roles}\npoll_interval = \"50ms\"\n\
             [audit]\nfile = {audit}\n\
             [identity_assertion]\nissuer = \"https://spinegate.test\"\nkey = {key}\n\
             [authorization]\nactivities = {{ B0360 = \"View patient medical record\", B0572 = \"Manage appointments\" }}\n\
             [[upstream]]\nname = \"down\"\nendpoints = [\"http://127.0.0.1:{down}\"]\n\
             [[route]]\nname = \"patient\"\npath_prefix = \"/Patient\"\nupstream = \"demo\"\nidentity_assertion = true\n\
             [[route.rule]]\nmethods = [\"GET\"]\nactivities_any = [\"B0360\"]\n\
             [[route]]\nname = \"down\"\npath_prefix = \"/down\"\nupstream = \"down\"\n{ANY_AUTHENTICATED}",
            jwks = keys.jwks_url(),
            audit = toml(&pki.path("audit.jsonl")),
            key = toml(&pki.write("assertion.pem", &key)),
            down = dead_port(),
            roles = toml(&roles)
        );
        let gw = Gw::start(&pki, |s| {
            s.client_certificate = "request";
            s.revocation_policy = "sources = [\"ocsp\"]\nunknown = { serve_stale_for = \"1h\" }".into();
            s.revocation = "fetch_timeout = \"2s\"\nmax_age = \"60s\"\n".into();
            s.extra = extra;
        })
        .await;
        Self { pki, gw, ocsp, keys, roles, alice, erin }
    }

    fn tls(&self, card: Option<&Issued>) -> Arc<rustls::ClientConfig> {
        client_config(&self.pki, card, &[b"h2"])
    }
}

/// Cards allowed (the second session resumed) and refused, an untrusted CA, a dead upstream,
/// tokens, a role file change, configuration reloads good and bad, and an OCSP responder that
/// stops answering; returns the scrape.
async fn everyday_traffic() -> String {
    let w = Everyday::start().await;
    let alice_tls = w.tls(Some(&w.alice));
    for _ in 0..2 {
        let r = get(&w.gw, Arc::clone(&alice_tls), "/Patient/9000000009", None).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = get(&w.gw, w.tls(Some(&w.erin)), "/Patient/9000000009", None).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let r = get(&w.gw, Arc::clone(&alice_tls), "/down/anything", None).await;
    assert!(r.status.is_server_error(), "{}", r.status);

    // A card from a CA nobody trusts fails the handshake.
    let rogue = Ca::root("Rogue Root", KeyKind::EcdsaP256).unwrap();
    let eve = rogue.issue(&LeafSpec::smartcard("555000000666", "EVE", "Eve").key(KeyKind::EcdsaP256)).unwrap();
    let alert = within(10, handshake_alert(w.gw.addr, w.tls(Some(&eve)))).await;
    assert_eq!(alert, Some(rustls::AlertDescription::UnknownCA));

    token_traffic(&w).await;
    role_file_change(&w.gw, &w.roles).await;

    // One reload that takes and one that cannot: listeners change only on restart.
    w.gw.reload(&w.pki, &w.gw.text).await;
    let renamed = w.gw.text.replacen("name = \"test\"", "name = \"renamed\"", 1);
    let config = spinegate_config::parse(&renamed, None, w.pki.dir.path()).unwrap();
    assert!(w.gw.gateway.reload(&config).await.is_err(), "renaming a listener needs a restart");

    // Past its freshness, with the responder saying tryLater, alice's good answer is served stale.
    w.ocsp.set_mode(Mode::TryLater);
    w.gw.clock.advance(Duration::from_secs(61));
    let r = get(&w.gw, w.tls(Some(&w.alice)), "/Patient/9000000009", None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    assert!(w.gw.gateway.audit().flush(Duration::from_secs(5)));
    scrape(&w.gw).await
}

/// A good token, tokens with unknown keys (one refetch, then suppressed), a forged logout.
async fn token_traffic(w: &Everyday) {
    let role = RoleSpec {
        person_roleid: "555254242108".into(),
        org_code: "RX1".into(),
        role_code: "S8000:G8000:R8000".into(),
        role_name: "Clinical Practitioner".into(),
        activity_codes: vec!["B0360".into()],
    };
    let (good, unknown_kids) = {
        let issuer = w.keys.issuer().lock().unwrap();
        let claims = issuer.care_identity_claims(AUDIENCE, "555000000007", "FIDO2", 3, &[role], 3600);
        let unknown = (0..2).map(|i| issuer.sign_raw(&json!({"alg": "RS256", "kid": format!("random-{i}")}), &claims));
        (issuer.token(&claims), unknown.collect::<Vec<_>>())
    };
    let tls = w.tls(None);
    assert_eq!(get(&w.gw, Arc::clone(&tls), "/metadata", Some(&good)).await.status, 200);
    for token in &unknown_kids {
        assert_eq!(get(&w.gw, Arc::clone(&tls), "/metadata", Some(token)).await.status, 401);
    }
    let mut client = Client::connect(w.gw.addr, tls).await.unwrap();
    let logout = Request::post("/.spinegate/backchannel-logout")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(bytes::Bytes::from_static(b"logout_token=not.a.token")))
        .unwrap();
    assert_eq!(within(10, client.send(logout)).await.unwrap().status, 400);
}

/// Adds a user to the role directory file and waits (bounded) for the gateway to reload it.
async fn role_file_change(gw: &Gw, roles: &Path) {
    let more = format!("{ROLES}\n[[user]]\nid = \"555000000008\"\n");
    std::fs::write(roles, more).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.metric("spinegate_role_directory_reloads_total{result=\"ok\"}").await < 1.0 {
        assert!(Instant::now() < deadline, "the role directory file was not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gateway checking a CRL file, with an emergency deny list; returns its scrape (which
/// publishes the CRL gauges).
async fn crl_and_deny_list_traffic() -> String {
    let pki = Pki::new();
    let alice = pki.card(ALICE);
    let crl = pki.path("issuing.crl");
    std::fs::write(&crl, pki.issuing.crl(&CrlSpec::new(1)).unwrap()).unwrap();
    let deny = pki.write("deny.txt", "user 555000000099  # lost card\n");
    let gw = Gw::start(&pki, |s| {
        s.revocation = format!("deny_list = {deny}\n", deny = toml(&deny));
        s.extra = format!(
            "[[client_auth.issuer]]\nname = \"crl-issuing\"\ncertificate = {}\n\
             [client_auth.issuer.revocation]\nsources = [\"crl\"]\ncrl_files = [{crl}]\n",
            toml(&pki.path("issuing.pem")),
            crl = toml(&crl)
        );
    })
    .await;
    assert_eq!(get(&gw, client_config(&pki, Some(&alice), &[b"http/1.1"]), "/metadata", None).await.status, 200);
    scrape(&gw).await
}

/// A gateway whose LDAP role directory is down: the lookup fails (timed and counted), and a rule
/// that needs no role still admits the card.
async fn ldap_down_traffic() -> String {
    let pki = Pki::new();
    let alice = pki.card(ALICE);
    let ldap = format!(
        "[role_directory.ldap]\nurl = \"ldap://127.0.0.1:{}\"\nbase_dn = \"dc=spine,dc=nhs\"\ntimeout = \"1s\"\n",
        dead_port()
    );
    let gw = Gw::start(&pki, |s| s.extra = ldap).await;
    assert_eq!(get(&gw, client_config(&pki, Some(&alice), &[b"http/1.1"]), "/metadata", None).await.status, 200);
    scrape(&gw).await
}
