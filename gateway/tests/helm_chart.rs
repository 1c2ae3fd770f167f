//! The Helm chart (`helm/spinegate`) and the image (`Dockerfile`) agree with the gateway they
//! deploy, checked without a `helm` binary:
//!
//! - the chart's configuration passes `spinegate check-config`, with generated material at every
//!   path it names — all of them relative to the configuration file, as the chart mounts them;
//! - `values.yaml` validates against `values.schema.json` (a strict draft-07 subset that refuses
//!   keywords it does not implement), and the schema refuses values it does not describe;
//! - every `.Values.…` the templates read exists in `values.yaml`, and every top-level value is read;
//! - the Secrets projected under `/etc/spinegate` are exactly the files the configuration names;
//! - the ports, probes, security context and grace period fit the configuration and the binary;
//! - the Dockerfile runs as the chart's user with the chart's configuration path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};
use spinegate_config::{Config, RoleDirectory};
use spinegate_devpki::crl::CrlSpec;
use spinegate_devpki::{Ca, KeyKind, LeafSpec};

/// Where the chart mounts its configuration directory; relative paths resolve against it.
const CONFIG_DIR: &str = "/etc/spinegate";
/// The configuration file's name in that directory.
const CONFIG_FILE: &str = "spinegate.toml";
/// Files the chart's own ConfigMaps put in the configuration directory (the deployment template
/// projects them; [`chart_configmaps_are_projected_where_the_config_expects_them`] checks).
const CHART_FILES: &[&str] = &["spinegate.toml", "revocation/deny.txt"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the gateway crate sits in the workspace").to_path_buf()
}

fn chart(relative: &str) -> PathBuf {
    repo().join("helm/spinegate").join(relative)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn values() -> Value {
    yaml(&chart("values.yaml"))
}

fn schema() -> Value {
    let path = chart("values.schema.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every template file's name and text.
fn templates() -> Vec<(String, String)> {
    let dir = chart("templates");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("the templates directory is readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "tpl" || e == "txt"))
        .map(|p| (p.file_name().expect("a file").to_string_lossy().into_owned(), read(&p)))
        .collect();
    out.sort();
    assert!(out.len() >= 8, "the chart has its templates: {out:?}");
    out
}

fn template(name: &str) -> String {
    read(&chart(&format!("templates/{name}")))
}

/// The chart's configuration as the pods see it: mounted at /etc/spinegate/spinegate.toml.
fn mounted_config() -> Config {
    let text = read(&chart("files/spinegate.toml"));
    let origin = Path::new(CONFIG_DIR).join(CONFIG_FILE);
    spinegate_config::parse(&text, Some(&origin), Path::new(CONFIG_DIR)).unwrap_or_else(|e| panic!("{e}"))
}

fn at<'a>(value: &'a Value, dotted: &str) -> &'a Value {
    dotted.split('.').fold(value, |v, key| v.get(key).unwrap_or_else(|| panic!("values.yaml has no {dotted}")))
}

fn int(value: &Value, dotted: &str) -> u64 {
    at(value, dotted).as_u64().unwrap_or_else(|| panic!("{dotted} is not a whole number"))
}

// ----------------------------------------------------------------------------------------------
// The files the configuration names

/// What a file named by the configuration must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Material {
    /// A server certificate chain for these names (the default certificate when empty).
    ServerChain(Vec<String>),
    /// The key of the server certificate at this path.
    ServerKey(PathBuf),
    /// A root the smartcard certificates chain to.
    TrustAnchor,
    /// A smartcard CA below the trust anchor (issuers and intermediates).
    SmartcardCa,
    /// A CRL signed by the smartcard CA.
    Crl,
    /// A CA for a service the gateway connects to (JWKS, LDAP, upstream TLS).
    ServiceCa,
    /// The gateway's client certificate for upstream mutual TLS.
    ClientChain,
    /// Its key.
    ClientKey(PathBuf),
    /// An ECDSA P-256 PKCS#8 key signing identity assertions.
    AssertionKey,
    /// A password or token.
    Secret,
    /// The emergency deny list.
    DenyList,
    /// The role directory file (TOML or JSON by extension).
    RoleDirectory,
}

/// Every file `config` names, with what it must hold, in configuration order.
fn material(config: &Config) -> Vec<(PathBuf, Material)> {
    let mut out = Vec::new();
    for listener in &config.listeners {
        for c in &listener.certificates {
            out.push((c.cert.clone(), Material::ServerChain(c.server_names.clone())));
            out.push((c.key.clone(), Material::ServerKey(c.cert.clone())));
        }
    }
    let auth = &config.client_auth;
    out.extend(auth.trust_anchors.iter().map(|p| (p.clone(), Material::TrustAnchor)));
    out.extend(auth.intermediates.iter().map(|p| (p.clone(), Material::SmartcardCa)));
    for issuer in &auth.issuers {
        out.push((issuer.certificate.clone(), Material::SmartcardCa));
        out.extend(issuer.revocation.crl_files.iter().map(|p| (p.clone(), Material::Crl)));
    }
    out.extend(auth.revocation.crl_files.iter().map(|p| (p.clone(), Material::Crl)));
    out.extend(config.revocation.deny_list.iter().map(|p| (p.clone(), Material::DenyList)));
    out.extend(config.revocation.admin_token_file.iter().map(|p| (p.clone(), Material::Secret)));
    for issuer in &config.token_issuers {
        out.extend(issuer.jwks_ca.iter().map(|p| (p.clone(), Material::ServiceCa)));
    }
    for tls in config.upstreams.iter().filter_map(|u| u.tls.as_ref()) {
        out.extend(tls.ca.iter().map(|p| (p.clone(), Material::ServiceCa)));
        if let Some((cert, key)) = &tls.client_identity {
            out.push((cert.clone(), Material::ClientChain));
            out.push((key.clone(), Material::ClientKey(cert.clone())));
        }
    }
    match &config.role_directory {
        RoleDirectory::None => {}
        RoleDirectory::File { path, .. } => out.push((path.clone(), Material::RoleDirectory)),
        RoleDirectory::Ldap(ldap) => {
            out.extend(ldap.ca.iter().map(|p| (p.clone(), Material::ServiceCa)));
            out.extend(ldap.bind_password_file.iter().map(|p| (p.clone(), Material::Secret)));
        }
    }
    if let Some(assertion) = &config.identity_assertion {
        out.push((assertion.key.clone(), Material::AssertionKey));
        out.extend(assertion.previous_keys.iter().map(|p| (p.clone(), Material::AssertionKey)));
    }
    out
}

/// The CAs generated material comes from.
struct Pki {
    root: Ca,
    issuing: Ca,
    services: Ca,
    tls: Ca,
}

impl Pki {
    fn new() -> Self {
        let root = Ca::root("Chart Test Smartcard Root CA", KeyKind::EcdsaP256).expect("a root CA");
        let issuing = root.intermediate("Chart Test Smartcard Issuing CA", KeyKind::EcdsaP256).expect("an issuing CA");
        let services = Ca::root("Chart Test Services CA", KeyKind::EcdsaP256).expect("a services CA");
        let tls = Ca::root("Chart Test TLS CA", KeyKind::EcdsaP256).expect("a TLS CA");
        Self { root, issuing, services, tls }
    }

    /// Writes every file of `list`; keys are written with their certificates.
    fn write_all(&self, list: &[(PathBuf, Material)]) {
        let write = |path: &Path, bytes: &[u8]| {
            std::fs::create_dir_all(path.parent().expect("material sits in a directory")).unwrap();
            std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        };
        let key_of = |cert: &Path| {
            list.iter().find_map(|(p, m)| match m {
                Material::ServerKey(c) | Material::ClientKey(c) if c == cert => Some(p.clone()),
                _ => None,
            })
        };
        for (path, what) in list {
            match what {
                Material::ServerChain(names) => {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    let names = if names.is_empty() { vec!["spinegate.example"] } else { names };
                    let leaf = self.tls.issue(&LeafSpec::server(&names)).expect("a server certificate");
                    write(path, leaf.chain_pem().as_bytes());
                    let key = key_of(path).expect("a server certificate has a key");
                    write(&key, leaf.key_pem().as_bytes());
                }
                Material::ClientChain => {
                    let spec = LeafSpec::smartcard("555000000000", "Gateway", "Spinegate").key(KeyKind::EcdsaP256);
                    let leaf = self.services.issue(&spec).expect("a client certificate");
                    write(path, leaf.chain_pem().as_bytes());
                    let key = key_of(path).expect("a client certificate has a key");
                    write(&key, leaf.key_pem().as_bytes());
                }
                Material::ServerKey(_) | Material::ClientKey(_) => {} // with the certificate
                Material::TrustAnchor => write(path, self.root.cert_pem().as_bytes()),
                Material::SmartcardCa => write(path, self.issuing.cert_pem().as_bytes()),
                Material::Crl => write(path, &self.issuing.crl(&CrlSpec::new(1)).expect("a CRL")),
                Material::ServiceCa => write(path, self.services.cert_pem().as_bytes()),
                Material::AssertionKey => {
                    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
                    write(path, key.serialize_pem().as_bytes());
                }
                Material::Secret => write(path, b"chart-test-secret-0123456789abcdef\n"),
                Material::DenyList => write(path, b"# nobody is denied\n"),
                Material::RoleDirectory => write(path, role_directory(path).as_bytes()),
            }
        }
    }
}

/// A one-user role directory in the gateway's file format (see `gateway/src/authz/directory.rs`).
fn role_directory(path: &Path) -> String {
    let role = json!({"id": "555254242101", "org": "A81001", "role_code": "S8000:G8000:R8000", "activities": []});
    let doc = json!({"user": [{"id": "555000000001", "role": [role]}]});
    if path.extension().is_some_and(|e| e == "json") {
        doc.to_string()
    } else {
        "[[user]]\nid = \"555000000001\"\n[[user.role]]\nid = \"555254242101\"\norg = \"A81001\"\n\
         role_code = \"S8000:G8000:R8000\"\nactivities = []\n"
            .to_owned()
    }
}

// ----------------------------------------------------------------------------------------------
// (a) The configuration passes check-config

#[test]
fn chart_config_passes_check_config_with_material_at_its_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(CONFIG_FILE);
    std::fs::copy(chart("files/spinegate.toml"), &file).unwrap();
    let config = spinegate_config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let list = material(&config);
    assert!(!list.is_empty(), "a production configuration names certificates and keys");
    for (path, _) in &list {
        assert!(
            path.starts_with(dir.path()),
            "{} is not relative to the configuration file: the chart mounts everything under {CONFIG_DIR}",
            path.display()
        );
    }
    Pki::new().write_all(&list);

    let out = Command::new(env!("CARGO_BIN_EXE_spinegate")).arg("check-config").arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check-config failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    let warnings: Vec<_> = stdout.lines().filter(|l| l.starts_with("warning:")).collect();
    assert!(warnings.is_empty(), "the chart's configuration has warnings:\n{}", warnings.join("\n"));
}

// ----------------------------------------------------------------------------------------------
// (b) Structure

#[test]
fn values_yaml_validates_against_values_schema() {
    let schema = schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let errors = Validator::new(&schema).errors(&values());
    assert!(errors.is_empty(), "values.yaml does not match values.schema.json:\n{}", errors.join("\n"));
}

/// A change that makes values.yaml wrong.
type Breakage = fn(&mut Value);

#[test]
fn schema_refuses_unknown_and_mistyped_values() {
    let schema = schema();
    let validator = Validator::new(&schema);
    let cases: [(&str, Breakage); 6] = [
        ("unknown top-level value", |v| v["replicas"] = json!(3)),
        ("unknown nested value", |v| v["service"]["nodePort"] = json!(30443)),
        ("port out of range", |v| v["containerPorts"]["https"] = json!(70000)),
        ("service type not in the enum", |v| v["service"]["type"] = json!("ExternalName")),
        ("secret item without a path", |v| v["secrets"]["adminToken"]["items"] = json!([{"key": "token"}])),
        ("string for a boolean", |v| v["autoscaling"]["enabled"] = json!("yes")),
    ];
    for (case, break_it) in cases {
        let mut v = values();
        break_it(&mut v);
        assert!(!validator.errors(&v).is_empty(), "the schema admits a {case}");
    }
}

#[test]
fn every_values_reference_in_the_templates_exists_in_values_yaml() {
    let values = values();
    let mut used_top_level = BTreeSet::new();
    for (name, text) in templates() {
        for reference in values_references(&text) {
            let mut at = &values;
            for key in reference.split('.') {
                at = at.get(key).unwrap_or_else(|| panic!("{name} reads .Values.{reference}, which values.yaml lacks"));
            }
            used_top_level.insert(reference.split('.').next().expect("a reference has a key").to_owned());
        }
    }
    let declared: BTreeSet<_> = values.as_object().expect("values.yaml is a mapping").keys().cloned().collect();
    let unused: Vec<_> = declared.difference(&used_top_level).collect();
    assert!(unused.is_empty(), "values no template reads: {unused:?}");
}

#[test]
fn templates_balance_their_blocks() {
    for (name, text) in templates() {
        let mut depth = 0i32;
        for action in actions(&text) {
            let word = action.split_whitespace().next().unwrap_or("");
            match word {
                "if" | "range" | "with" | "define" | "block" => depth += 1,
                "end" => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "{name}: an {{{{ end }}}} closes nothing");
        }
        assert_eq!(depth, 0, "{name}: a block is not closed");
    }
}

#[test]
fn ports_match_the_config_listeners_and_probes_use_the_admin_port() {
    let values = values();
    let config = mounted_config();
    assert_eq!(config.listeners.len(), 1, "the chart exposes one clinical port");
    let listener = config.listeners[0].listen;
    assert!(listener.ip().is_unspecified(), "the listener must bind every interface in a pod, not {listener}");
    assert_eq!(int(&values, "containerPorts.https"), u64::from(listener.port()));
    let admin = config.admin.listen;
    assert!(admin.ip().is_unspecified(), "the kubelet probes the admin listener: it cannot be on {admin}");
    assert_eq!(int(&values, "containerPorts.admin"), u64::from(admin.port()));

    let deployment = template("deployment.yaml");
    for (port, value) in [("https", "containerPorts.https"), ("admin", "containerPorts.admin")] {
        let declared = format!("- name: {port}\n              containerPort: {{{{ .Values.{value} }}}}");
        assert!(deployment.contains(&declared), "deployment.yaml declares port {port} from {value}");
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let block = block_after(&deployment, &format!("{probe}:"));
        assert!(block.contains(&format!("path: {path}")), "{probe} asks {path}:\n{block}");
        assert!(block.contains("port: admin"), "{probe} asks the admin port:\n{block}");
    }
    // HTTP/3: the UDP port is exposed exactly when the configuration serves it.
    let http3 = at(&values, "http3.enabled").as_bool().expect("http3.enabled is a boolean");
    assert_eq!(http3, config.listeners[0].http3.is_some(), "values http3.enabled must match [listener.http3]");
    let udp =
        "- name: h3\n              containerPort: {{ .Values.containerPorts.https }}\n              protocol: UDP";
    assert!(deployment.contains(udp), "deployment.yaml declares the h3 UDP port");
    let service = template("service.yaml");
    assert!(service.contains("targetPort: https") && service.contains("targetPort: admin"), "{service}");
    assert!(service.contains("targetPort: h3\n      protocol: UDP"), "{service}");
    let monitor = template("servicemonitor.yaml");
    assert!(monitor.contains("port: admin") && monitor.contains("path: /metrics"), "{monitor}");
}

#[test]
fn secret_mounts_are_exactly_the_files_the_config_names() {
    let values = values();
    let config = mounted_config();
    assert!(config.audit.file.is_none(), "the root filesystem is read-only: the audit log goes to stdout");

    let mut projected: BTreeSet<String> = CHART_FILES.iter().map(|s| (*s).to_owned()).collect();
    for (name, secret) in at(&values, "secrets").as_object().expect("secrets is a mapping") {
        assert!(secret["existingSecret"].as_str().is_some_and(|s| !s.is_empty()), "secrets.{name} names a Secret");
        for item in secret["items"].as_array().expect("items is a list") {
            let path = item["path"].as_str().expect("an item has a path");
            assert!(projected.insert(path.to_owned()), "two sources project {path}");
        }
    }
    let named: BTreeSet<String> = material(&config)
        .into_iter()
        .map(|(path, _)| {
            let relative = path.strip_prefix(CONFIG_DIR).unwrap_or_else(|_| {
                panic!("{} is outside {CONFIG_DIR}, where the chart mounts everything", path.display())
            });
            relative.to_string_lossy().into_owned()
        })
        .chain(std::iter::once(CONFIG_FILE.to_owned()))
        .collect();
    let missing: Vec<_> = named.difference(&projected).collect();
    assert!(missing.is_empty(), "the configuration names files the chart does not mount: {missing:?}");
    let unused: Vec<_> = projected.difference(&named).collect();
    assert!(unused.is_empty(), "the chart mounts files the configuration does not name: {unused:?}");
}

#[test]
fn chart_configmaps_are_projected_where_the_config_expects_them() {
    let deployment = template("deployment.yaml");
    for file in CHART_FILES {
        assert!(deployment.contains(&format!("path: {file}\n")), "deployment.yaml projects {file}");
    }
    let helpers = template("_helpers.tpl");
    assert!(helpers.contains(".Files.Get \"files/spinegate.toml\""), "the config comes from files/spinegate.toml");
    assert_eq!(config_dir(&helpers), CONFIG_DIR);
    assert!(deployment.contains("mountPath: {{ $configDir }}\n              readOnly: true"), "{deployment}");
    assert!(deployment.contains("args: [\"run\", \"--config\", \"{{ $configDir }}/spinegate.toml\"]"));
    assert!(!deployment.contains("subPath:"), "subPath mounts never see updates: reload would miss them");
}

#[test]
fn pods_run_unprivileged_and_outlast_the_drain() {
    let values = values();
    let pod = at(&values, "podSecurityContext");
    let container = at(&values, "containerSecurityContext");
    for ctx in [pod, container] {
        assert_eq!(ctx["runAsNonRoot"], true);
        assert_eq!(ctx["runAsUser"], 10001);
        assert_eq!(ctx["seccompProfile"]["type"], "RuntimeDefault");
    }
    assert_eq!(container["readOnlyRootFilesystem"], true);
    assert_eq!(container["allowPrivilegeEscalation"], false);
    assert_eq!(container["capabilities"]["drop"], json!(["ALL"]));
    let deployment = template("deployment.yaml");
    assert!(deployment.contains("toYaml .Values.containerSecurityContext"), "the container context is applied");
    assert!(deployment.contains("toYaml .Values.podSecurityContext"), "the pod context is applied");
    assert_eq!(deployment.matches("emptyDir:").count(), 1, "one writable volume, /tmp");

    let drain = drain_seconds();
    let grace = int(&values, "terminationGracePeriodSeconds");
    let pre_stop = int(&values, "preStopSleepSeconds");
    assert!(grace > pre_stop + drain, "grace {grace}s must exceed the preStop {pre_stop}s plus the {drain}s drain");
    assert!(
        deployment.contains(&format!("(add {drain} (int .Values.preStopSleepSeconds))")),
        "the template checks too"
    );
}

#[test]
fn dashboard_configmap_carries_the_grafana_sidecar_label() {
    let dashboard = template("dashboard-configmap.yaml");
    assert!(dashboard.contains(".Files.Get \"dashboards/spinegate.json\""), "{dashboard}");
    assert!(dashboard.contains("grafana_dashboard: \"1\""), "{dashboard}");
    let path = chart("dashboards/spinegate.json");
    let json: Value = serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(json.get("panels").is_some(), "{} is a Grafana dashboard", path.display());
    assert_eq!(values()["dashboards"]["enabled"], true);
}

#[test]
fn chart_metadata_follows_the_workspace() {
    let meta = yaml(&chart("Chart.yaml"));
    assert_eq!(meta["apiVersion"], "v2");
    assert_eq!(meta["name"], "spinegate");
    assert_eq!(meta["appVersion"], env!("CARGO_PKG_VERSION"), "appVersion is the workspace version");
    let v = values();
    assert_eq!(v["autoscaling"]["enabled"], true, "autoscaling is on by default");
    assert_eq!(v["serviceMonitor"]["enabled"], false, "the ServiceMonitor needs the Prometheus Operator");
    assert_eq!(v["networkPolicy"]["enabled"], false);
    assert_eq!(v["rollOnConfigChange"], false, "the gateway reloads its configuration itself");
    assert!(template("hpa.yaml").contains("apiVersion: autoscaling/v2"));
    assert!(template("servicemonitor.yaml").contains("apiVersion: monitoring.coreos.com/v1"));
}

#[test]
fn dockerfile_runs_as_the_charts_user_with_the_charts_config_path() {
    let docker = read(&repo().join("Dockerfile"));
    let instructions: Vec<&str> = docker.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let find = |prefix: &str| -> Vec<&str> {
        instructions.iter().filter_map(|l| l.strip_prefix(prefix)).map(str::trim).collect::<Vec<_>>()
    };

    let toolchain = read(&repo().join("rust-toolchain.toml"));
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .expect("rust-toolchain.toml names a channel")
        .trim_matches('"');
    let minor = channel.rsplit_once('.').map_or(channel, |(minor, _)| minor);
    let from = find("FROM ");
    assert!(from.first().is_some_and(|f| f.starts_with(&format!("rust:{minor}-"))), "build on rust {minor}: {from:?}");
    assert!(
        docker.contains("cargo build --release --locked -p spinegate --bin spinegate"),
        "the image builds the locked release binary"
    );

    let user = find("USER ");
    assert_eq!(user.last().copied(), Some("10001:10001"), "the runtime stage runs as uid 10001");
    assert_eq!(values()["podSecurityContext"]["runAsUser"], 10001);
    assert_eq!(find("ENTRYPOINT "), ["[\"/usr/local/bin/spinegate\"]"]);
    let config_path = format!("{CONFIG_DIR}/{CONFIG_FILE}");
    assert_eq!(find("CMD "), [format!("[\"run\", \"--config\", \"{config_path}\"]")]);
    let values = values();
    let expose: BTreeSet<u64> =
        find("EXPOSE ").iter().flat_map(|l| l.split_whitespace()).map(|p| p.parse().expect("a port")).collect();
    let ports = BTreeSet::from([int(&values, "containerPorts.https"), int(&values, "containerPorts.admin")]);
    assert_eq!(expose, ports, "EXPOSE names the chart's container ports");

    let ignore = read(&repo().join(".dockerignore"));
    for excluded in ["target/", ".git"] {
        assert!(ignore.lines().any(|l| l.trim() == excluded), ".dockerignore leaves out {excluded}");
    }
}

// ----------------------------------------------------------------------------------------------
// Reading templates

/// The text of every `{{ … }}` action, trim markers and comments removed.
fn actions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").unwrap_or_else(|| panic!("unclosed action at {:?}", &rest[start..]));
        let inner = after[..end].trim_start_matches('-').trim_end_matches('-').trim();
        if !inner.starts_with("/*") {
            out.push(inner.to_owned());
        }
        rest = &after[end + 2..];
    }
    out
}

/// Each `.Values.a.b` path read by the actions of `text`.
fn values_references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for action in actions(text) {
        for (i, _) in action.match_indices(".Values.") {
            let path: String = action[i + ".Values.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            let path = path.trim_end_matches('.');
            if !path.is_empty() {
                out.insert(path.to_owned());
            }
        }
    }
    out
}

/// The lines after `key` that are indented deeper than it.
fn block_after(text: &str, key: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim() != key);
    let head = lines.next().unwrap_or_else(|| panic!("no {key}"));
    let indent = head.len() - head.trim_start().len();
    lines.take_while(|l| l.len() - l.trim_start().len() > indent).collect::<Vec<_>>().join("\n")
}

/// The configuration directory `_helpers.tpl` defines.
fn config_dir(helpers: &str) -> String {
    let define =
        helpers.split("{{- define \"spinegate.configDir\" -}}").nth(1).expect("spinegate.configDir is defined");
    define.split("{{").next().expect("the define has a body").trim().to_owned()
}

/// How long `spinegate run` drains after SIGTERM, read from `main.rs` so the chart follows it.
fn drain_seconds() -> u64 {
    let main = read(&repo().join("gateway/src/main.rs"));
    let marker = "gateway.shutdown(Duration::from_secs(";
    let at = main.find(marker).expect("main.rs drains the gateway with gateway.shutdown(Duration::from_secs(N))");
    let digits: String = main[at + marker.len()..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("the drain is a whole number of seconds")
}

// ----------------------------------------------------------------------------------------------
// A JSON Schema (draft-07) validator for the keywords values.schema.json uses. A keyword it does
// not implement is a failure, never silently ignored.

const ANNOTATIONS: &[&str] = &["$schema", "title", "description", "definitions", "default", "examples"];

struct Validator<'a> {
    root: &'a Value,
}

impl<'a> Validator<'a> {
    fn new(root: &'a Value) -> Self {
        Self { root }
    }

    fn errors(&self, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(self.root, value, "", &mut errors);
        errors
    }

    fn resolve(&self, reference: &str) -> &'a Value {
        let name = reference.strip_prefix("#/definitions/").unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        self.root["definitions"].get(name).unwrap_or_else(|| panic!("$ref to a missing definition {reference}"))
    }

    fn check(&self, schema: &'a Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = schema.as_object().unwrap_or_else(|| panic!("schema at {at} is not an object"));
        if let Some(reference) = schema.get("$ref") {
            // Draft-07: keywords beside $ref are ignored; only annotations belong there.
            let extra: Vec<_> = schema.keys().filter(|k| *k != "$ref" && !ANNOTATIONS.contains(&k.as_str())).collect();
            assert!(extra.is_empty(), "keywords beside $ref at {at} would be ignored: {extra:?}");
            let target = self.resolve(reference.as_str().expect("$ref is a string"));
            return self.check(target, value, at, errors);
        }
        for (keyword, arg) in schema {
            match keyword.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "type" => {
                    let types: Vec<&str> = match arg {
                        Value::String(t) => vec![t],
                        Value::Array(ts) => ts.iter().map(|t| t.as_str().expect("type names")).collect(),
                        _ => panic!("type at {at} is neither a name nor a list"),
                    };
                    if !types.iter().any(|t| has_type(value, t)) {
                        errors.push(format!("{at}: {value} is not of type {types:?}"));
                    }
                }
                "enum" => {
                    if !arg.as_array().expect("enum is a list").contains(value) {
                        errors.push(format!("{at}: {value} is not one of {arg}"));
                    }
                }
                "minimum" => {
                    if let (Some(v), Some(min)) = (value.as_f64(), arg.as_f64())
                        && v < min
                    {
                        errors.push(format!("{at}: {v} is below {min}"));
                    }
                }
                "maximum" => {
                    if let (Some(v), Some(max)) = (value.as_f64(), arg.as_f64())
                        && v > max
                    {
                        errors.push(format!("{at}: {v} is above {max}"));
                    }
                }
                "minLength" => {
                    let min = arg.as_u64().expect("minLength is a count") as usize;
                    if let Some(s) = value.as_str()
                        && s.chars().count() < min
                    {
                        errors.push(format!("{at}: {s:?} is shorter than {min}"));
                    }
                }
                "required" => {
                    if let Some(object) = value.as_object() {
                        for key in arg.as_array().expect("required is a list") {
                            let key = key.as_str().expect("required names keys");
                            if !object.contains_key(key) {
                                errors.push(format!("{at}: {key} is required"));
                            }
                        }
                    }
                }
                // The two work together: check them once, from `properties` when it is there.
                "properties" | "additionalProperties" => {
                    let once = keyword == "properties" || !schema.contains_key("properties");
                    if let (true, Some(object)) = (once, value.as_object()) {
                        self.check_object(schema, object, at, errors);
                    }
                }
                "items" => {
                    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                        self.check(arg, item, &format!("{at}/{i}"), errors);
                    }
                }
                other => panic!("values.schema.json uses {other:?} at {at}, which this validator does not implement"),
            }
        }
    }

    /// `properties` and `additionalProperties` of `schema` applied to `object`.
    fn check_object(
        &self,
        schema: &'a Map<String, Value>,
        object: &Map<String, Value>,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        let empty = Map::new();
        let properties = schema.get("properties").map_or(&empty, |p| p.as_object().expect("properties is a map"));
        for (name, value) in object {
            let path = format!("{at}/{name}");
            match (properties.get(name), schema.get("additionalProperties")) {
                (Some(sub), _) => self.check(sub, value, &path, errors),
                (None, None | Some(Value::Bool(true))) => {}
                (None, Some(Value::Bool(false))) => errors.push(format!("{path}: not allowed by the schema")),
                (None, Some(sub)) => self.check(sub, value, &path, errors),
            }
        }
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        other => panic!("unknown JSON Schema type {other:?}"),
    }
}
