//! The LDAP role directory against a real slapd on 127.0.0.1: one slapd per test, configured
//! from `tests/ldap/` (a test schema and the entries), loaded with `slapadd`, changed with
//! `ldapmodify`, and killed when the test ends. slapd's own log (`-d stats`) is the second
//! witness beside the metrics for how many searches and connections the gateway made.
//!
//! slapd and ldap-utils must be installed (`.ci/run` installs them); without them every test
//! fails saying so.

mod support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use spinegate::directory::ldap::LdapDirectory;
use spinegate::directory::{DirectoryEntry, DirectoryError};
use spinegate::identity::UserId;
use spinegate_authz::RoleData;
use spinegate_config::Ldap;
use spinegate_config::authz::RawLdapAttributes;
use spinegate_devpki::{Ca, KeyKind, LeafSpec};

const SUFFIX: &str = "dc=spine,dc=nhs";
const ROLES: &str = "ou=roles,dc=spine,dc=nhs";
const SERVICE_DN: &str = "cn=spinegate,ou=services,dc=spine,dc=nhs";
const SERVICE_PASSWORD: &str = "correct horse battery staple";
const FILTER: &str = "(&(objectClass=nhsOrgPersonRole)(uid={user_id}))";

/// The metrics recorder is process-wide: tests that compare counters must not overlap when the
/// harness runs them as threads of one process (`cargo test`; nextest gives each its own).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A slapd child process with its configuration and database in a temporary directory.
struct Slapd {
    dir: tempfile::TempDir,
    port: u16,
    tls_port: Option<u16>,
    child: Option<Child>,
    _serial: MutexGuard<'static, ()>,
}

impl Slapd {
    /// slapd on plain `ldap://`.
    fn start() -> Self {
        Self::start_with(None)
    }

    /// slapd, also serving `ldaps://` and StartTLS with `tls` (certificate chain, key, CA) when
    /// given.
    fn start_with(tls: Option<(&str, &str)>) -> Self {
        let serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let slapd = tool("slapd");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let tls_lines = match tls {
            Some((chain, key)) => {
                std::fs::write(dir.path().join("server.pem"), chain).unwrap();
                std::fs::write(dir.path().join("server.key"), key).unwrap();
                format!(
                    "TLSCertificateFile {d}/server.pem\nTLSCertificateKeyFile {d}/server.key\n",
                    d = dir.path().display()
                )
            }
            None => String::new(),
        };
        let modules = match module_dir() {
            Some(path) => format!("modulepath {}\nmoduleload back_mdb\n", path.display()),
            None => String::new(), // built into slapd
        };
        let d = dir.path().display();
        let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ldap");
        let config = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include {schema}/nhs.schema\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             {modules}{tls_lines}\
             database mdb\n\
             maxsize 16777216\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"cn=admin,{SUFFIX}\"\n\
             rootpw admin-secret\n\
             directory {d}/db\n\
             access to attrs=userPassword by anonymous auth by * none\n\
             access to dn.subtree=\"ou=restricted,{SUFFIX}\" by users read by * none\n\
             access to * by * read\n",
            schema = schema.display(),
        );
        std::fs::write(dir.path().join("slapd.conf"), config).unwrap();
        let load = Command::new(tool("slapadd"))
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .arg("-l")
            .arg(schema.join("roles.ldif"))
            .output()
            .unwrap();
        assert!(load.status.success(), "slapadd failed: {}", String::from_utf8_lossy(&load.stderr));
        let mut this =
            Slapd { dir, port: free_port(), tls_port: tls.map(|_| free_port()), child: None, _serial: serial };
        this.launch(&slapd);
        this
    }

    /// Starts slapd on this instance's ports and waits (bounded) until it accepts connections.
    fn launch(&mut self, slapd: &Path) {
        let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(port) = self.tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{port}/"));
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        // `-d` keeps slapd in the foreground (a child we can kill); `stats` logs every operation.
        let child = Command::new(slapd)
            .args(["-d", "stats", "-h", &urls, "-f"])
            .arg(self.dir.path().join("slapd.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ready = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("slapd exited ({status}):\n{}", self.log());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            assert!(ready.elapsed() < Duration::from_secs(10), "slapd did not listen within 10s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Kills slapd (the database survives for [`Slapd::restart`]).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.launch(&tool("slapd"));
    }

    /// Freezes (`STOP`) or thaws (`CONT`) slapd: connections stay open and nothing answers.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Applies LDIF changes with `ldapmodify`, as the directory's administrator.
    fn modify(&self, ldif: &str) {
        let mut child = Command::new(tool("ldapmodify"))
            .args(["-x", "-H", &self.url(), "-D", &format!("cn=admin,{SUFFIX}"), "-w", "admin-secret"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), ldif.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ldapmodify failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("slapd.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Searches slapd has logged for this user's filter.
    fn searches_for(&self, user: &str) -> usize {
        let needle = format!("filter=\"(&(objectClass=nhsOrgPersonRole)(uid={user}))\"");
        self.log().lines().filter(|l| l.contains(" SRCH ") && l.contains(&needle)).count()
    }

    /// The connections slapd ran searches on (for `user` only, when given), as slapd numbers them.
    fn search_connections(&self, user: Option<&str>) -> BTreeSet<String> {
        let needle = user.map(|u| format!("(uid={u}))\""));
        self.log()
            .lines()
            .filter(|l| l.contains(" SRCH base=") && needle.as_ref().is_none_or(|n| l.contains(n.as_str())))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("conn=")).map(str::to_owned))
            .collect()
    }

    /// A directory on this slapd: anonymous, `ou=roles`, pool of 2, 1s timeout, 60s TTL, as
    /// `adjust` changes it.
    fn directory(&self, adjust: impl FnOnce(&mut Ldap)) -> LdapDirectory {
        spinegate::metrics::install();
        let mut config = Ldap {
            url: self.url(),
            starttls: false,
            ca: Vec::new(),
            bind_dn: None,
            bind_password_file: None,
            base_dn: ROLES.into(),
            filter: FILTER.into(),
            attributes: RawLdapAttributes::default(),
            pool_size: NonZeroUsize::new(2).unwrap(),
            timeout: Duration::from_secs(1),
            cache_ttl: Duration::from_secs(60),
            cache_entries: 1000,
        };
        adjust(&mut config);
        LdapDirectory::new(&config, &spinegate::tls::provider()).unwrap()
    }

    /// A file in this slapd's temporary directory.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped (SIGSTOP) process.
        self.stop();
    }
}

/// An installed program: on PATH, or in the sbin directories slapd lives in.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/libexec"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed. These tests run a real OpenLDAP server: install `slapd ldap-utils` \
                 (Debian/Ubuntu: DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils; .ci/run does this)"
            )
        })
}

/// Where the packaged back_mdb module is; `None` when slapd has it built in.
fn module_dir() -> Option<PathBuf> {
    [
        "/usr/lib/ldap",
        "/usr/lib64/openldap",
        "/usr/lib/openldap",
        "/usr/libexec/openldap",
        "/usr/local/libexec/openldap",
    ]
    .map(PathBuf::from)
    .into_iter()
    .find(|dir| dir.join("back_mdb.la").exists() || dir.join("back_mdb.so").exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// `spinegate_role_directory_lookups_total{backend="ldap",result=…}` now.
fn lookups(result: &str) -> u64 {
    let text = spinegate::metrics::install().render();
    let label = format!("result=\"{result}\"");
    text.lines()
        .filter(|l| l.starts_with(spinegate::metrics::DIRECTORY_LOOKUPS) && l.contains("backend=\"ldap\""))
        .filter(|l| l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Counts of (hit, miss, error) lookups.
fn counts() -> [u64; 3] {
    ["hit", "miss", "error"].map(lookups)
}

fn delta(before: [u64; 3]) -> [u64; 3] {
    let now = counts();
    [0, 1, 2].map(|i| now[i] - before[i])
}

fn role(id: &str, org: &str, role_code: &str, activities: &[&str], workgroups: &[&str]) -> RoleData {
    RoleData {
        id: id.into(),
        org: org.into(),
        role_code: role_code.into(),
        activity_codes: activities.iter().map(|a| Box::from(*a)).collect(),
        workgroups: workgroups.iter().map(|w| Box::from(*w)).collect(),
    }
}

/// The roles, ordered by id (the directory returns them in its own order).
fn sorted(entry: &DirectoryEntry) -> Vec<RoleData> {
    let mut roles = entry.roles.clone();
    roles.sort_by(|a, b| a.id.cmp(&b.id));
    roles
}

fn unavailable(answer: Result<Arc<DirectoryEntry>, DirectoryError>) -> String {
    match answer {
        Err(DirectoryError::Unavailable(reason)) => reason,
        Ok(entry) => panic!("expected Unavailable, got {} roles", entry.roles.len()),
    }
}

#[tokio::test]
async fn a_user_with_two_role_profiles_gets_both_with_every_field() {
    let slapd = Slapd::start();
    let directory = slapd.directory(|_| {});
    let before = counts();
    let entry = directory.lookup(&user("555000000001")).await.unwrap();
    assert_eq!(
        sorted(&entry),
        [
            role("555254242101", "A81001", "S8000:G8000:R8000", &["B0360", "B0370"], &["WG-ALPHA", "WG-BETA"]),
            role("555254242102", "RX1", "S0080:G0450:R5080", &["B0820", "B0825"], &[]),
        ],
        "org upper-cased; multi-valued attributes complete; absent workgroups empty"
    );
    assert_eq!(delta(before), [0, 1, 0], "one miss");
    let again = directory.lookup(&user("555000000001")).await.unwrap();
    assert!(Arc::ptr_eq(&entry, &again), "the second lookup is the cached answer");
    assert_eq!(delta(before), [1, 1, 0]);
    assert_eq!(slapd.searches_for("555000000001"), 1);
}

#[tokio::test]
async fn a_user_without_role_profiles_gets_an_empty_entry() {
    let slapd = Slapd::start();
    let directory = slapd.directory(|_| {});
    let before = counts();
    let entry = directory.lookup(&user("555000000002")).await.unwrap();
    assert!(entry.roles.is_empty());
    assert_eq!(delta(before), [0, 1, 0], "an empty answer is an answer, not an error");
    assert!(directory.lookup(&user("555000000002")).await.unwrap().roles.is_empty());
    assert_eq!(slapd.searches_for("555000000002"), 1, "and it is cached like any other");
}

#[tokio::test]
async fn incomplete_entries_are_skipped_and_the_rest_kept() {
    let slapd = Slapd::start();
    let directory = slapd.directory(|_| {});
    let entry = directory.lookup(&user("555000000004")).await.unwrap();
    // Skipped: no org, no role code, no id, a malformed ODS code, two orgs, and both entries
    // that claim one role profile id (which one is right cannot be told).
    assert_eq!(sorted(&entry), [role("555254242401", "A81002", "S8000:G8000:R8000", &["B0360"], &[])]);
}

#[tokio::test]
async fn directory_values_with_filter_syntax_match_nobody() {
    let slapd = Slapd::start();
    let directory = slapd.directory(|_| {});
    // Entries whose uid is `*`, `555000000003*`, `555000000003)(uid=*` and `555000000003\2a`: the
    // user id goes into the filter escaped (RFC 4515), so only the literal value matches.
    let entry = directory.lookup(&user("555000000003")).await.unwrap();
    assert_eq!(sorted(&entry), [role("555254242301", "Y12345", "S8000:G8000:R8001", &[], &[])]);
    assert!(slapd.log().contains("filter=\"(&(objectClass=nhsOrgPersonRole)(uid=555000000003))\""));
}

#[tokio::test]
async fn a_changed_entry_shows_after_the_ttl_and_not_before() {
    let slapd = Slapd::start();
    let ttl = Duration::from_secs(2);
    let directory = slapd.directory(|c| c.cache_ttl = ttl);
    let erin = user("555000000005");
    let cached_no_earlier_than = Instant::now();
    assert_eq!(&*directory.lookup(&erin).await.unwrap().roles[0].org, "A81001");
    slapd
        .modify(&format!("dn: cn=555254242501,{ROLES}\nchangetype: modify\nreplace: nhsOrgCode\nnhsOrgCode: B82001\n"));
    let before = counts();
    assert_eq!(&*directory.lookup(&erin).await.unwrap().roles[0].org, "A81001", "within the TTL: cached");
    assert_eq!(delta(before), [1, 0, 0]);
    assert_eq!(slapd.searches_for("555000000005"), 1);

    // Poll (bounded) until the change shows: it must not show before the TTL, and must soon after.
    loop {
        let elapsed = cached_no_earlier_than.elapsed();
        let org = directory.lookup(&erin).await.unwrap().roles[0].org.clone();
        if &*org == "B82001" {
            assert!(elapsed >= ttl, "the change showed after {elapsed:?}, before the TTL");
            break;
        }
        assert!(elapsed < ttl + Duration::from_secs(2), "the change did not show within the TTL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(slapd.searches_for("555000000005"), 2, "one more search after the TTL");
}

#[tokio::test]
async fn concurrent_lookups_for_one_user_share_one_search() {
    let slapd = Slapd::start();
    let directory = Arc::new(slapd.directory(|_| {}));
    let before = counts();
    // On this single-threaded runtime every task reaches the directory before the search task
    // first runs, so all 32 are in flight at once.
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let directory = Arc::clone(&directory);
            tokio::spawn(async move { directory.lookup(&user("555000000007")).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().unwrap());
    }
    assert!(answers.iter().all(|a| Arc::ptr_eq(a, &answers[0])), "every caller got the same answer");
    assert_eq!(answers[0].roles.len(), 1);
    assert_eq!(delta(before), [31, 1, 0], "one miss searched; 31 waited for it");
    assert_eq!(slapd.searches_for("555000000007"), 1, "slapd saw one search");
}

#[tokio::test]
async fn simple_bind_with_the_password_file_reads_what_anonymous_cannot() {
    let slapd = Slapd::start();
    let password = slapd.write("bind-password", &format!("{SERVICE_PASSWORD}\n"));
    let bound = slapd.directory(|c| {
        c.base_dn = format!("ou=restricted,{SUFFIX}");
        c.bind_dn = Some(SERVICE_DN.into());
        c.bind_password_file = Some(password.clone());
    });
    let anonymous = slapd.directory(|c| c.base_dn = format!("ou=restricted,{SUFFIX}"));
    let frank = user("555000000006");
    assert_eq!(
        sorted(&bound.lookup(&frank).await.unwrap()),
        [role("555254242601", "RX1", "S8000:G8000:R8000", &[], &[])]
    );
    assert!(slapd.log().contains(&format!("BIND dn=\"{SERVICE_DN}\" method=128")));
    // slapd hides the whole subtree from an anonymous client and answers noSuchObject: that
    // is Unavailable (as a mistyped base DN is), never "no roles".
    let reason = unavailable(anonymous.lookup(&frank).await);
    assert!(reason.contains("noSuchObject"), "{reason}");
}

#[tokio::test]
async fn a_wrong_bind_password_is_unavailable() {
    let slapd = Slapd::start();
    let password = slapd.write("bind-password", "not the password\n");
    let directory = slapd.directory(|c| {
        c.bind_dn = Some(SERVICE_DN.into());
        c.bind_password_file = Some(password.clone());
    });
    let before = counts();
    let reason = unavailable(directory.lookup(&user("555000000001")).await);
    assert!(reason.contains("bind") && reason.contains("invalidCredentials"), "{reason}");
    assert!(!reason.contains("not the password"), "the reason never carries the password");
    assert_eq!(delta(before), [0, 0, 1]);
    // Not cached: the next lookup tries again.
    unavailable(directory.lookup(&user("555000000001")).await);
    assert_eq!(slapd.log().matches(&format!("BIND dn=\"{SERVICE_DN}\"")).count(), 2);
}

#[tokio::test]
async fn a_stopped_server_is_unavailable_within_the_timeout_and_errors_are_not_cached() {
    let mut slapd = Slapd::start();
    let timeout = Duration::from_secs(1);
    let directory = slapd.directory(|c| c.timeout = timeout);
    directory.lookup(&user("555000000001")).await.unwrap(); // leaves a pooled connection
    slapd.stop();

    let started = Instant::now();
    let reason = unavailable(directory.lookup(&user("555000000002")).await);
    assert!(started.elapsed() < timeout, "answered in {:?}", started.elapsed());
    assert!(reason.contains("cannot connect"), "the dead pooled connection was replaced by a new attempt: {reason}");

    slapd.restart();
    let before = counts();
    assert!(directory.lookup(&user("555000000002")).await.unwrap().roles.is_empty(), "back without waiting");
    assert_eq!(delta(before), [0, 1, 0]);
}

#[tokio::test]
async fn a_server_that_stops_answering_is_unavailable_after_the_timeout_then_recovers() {
    let slapd = Slapd::start();
    let timeout = Duration::from_millis(500);
    let directory = slapd.directory(|c| c.timeout = timeout);
    directory.lookup(&user("555000000001")).await.unwrap();
    slapd.signal("STOP");

    let started = Instant::now();
    let reason = unavailable(directory.lookup(&user("555000000002")).await);
    let took = started.elapsed();
    assert!(took >= timeout && took < timeout + Duration::from_secs(1), "answered in {took:?}");
    assert!(reason.contains("within"), "{reason}");

    slapd.signal("CONT");
    let used = slapd.search_connections(None);
    assert!(directory.lookup(&user("555000000004")).await.is_ok());
    let replacement = slapd.search_connections(Some("555000000004"));
    assert!(
        replacement.is_disjoint(&used),
        "the timed-out connection was dropped and replaced: {used:?} {replacement:?}"
    );
}

#[tokio::test]
async fn cached_answers_serve_until_the_ttl_while_the_server_is_down_then_fail() {
    let mut slapd = Slapd::start();
    let ttl = Duration::from_secs(2);
    let directory = slapd.directory(|c| c.cache_ttl = ttl);
    let alice = user("555000000001");
    let cached_no_earlier_than = Instant::now();
    directory.lookup(&alice).await.unwrap();
    slapd.stop();

    let before = counts();
    assert_eq!(directory.lookup(&alice).await.unwrap().roles.len(), 2, "within the TTL: the cached answer");
    assert_eq!(delta(before), [1, 0, 0]);
    loop {
        let elapsed = cached_no_earlier_than.elapsed();
        match directory.lookup(&alice).await {
            Ok(_) => assert!(elapsed < ttl + Duration::from_secs(2), "a cached answer outlived its TTL"),
            Err(_) => {
                assert!(elapsed >= ttl, "failed after {elapsed:?}, before the TTL");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_are_pooled_and_reused() {
    let slapd = Slapd::start();
    let directory = Arc::new(slapd.directory(|c| c.pool_size = NonZeroUsize::new(2).unwrap()));
    for n in 0..10 {
        directory.lookup(&user(&format!("5550000001{n:02}"))).await.unwrap();
    }
    assert_eq!(slapd.search_connections(None).len(), 1, "sequential lookups reuse one connection");

    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let directory = Arc::clone(&directory);
            tokio::spawn(async move { directory.lookup(&user(&format!("5550000002{n:02}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(slapd.searches_for("555000000239"), 1);
    assert!(slapd.search_connections(None).len() <= 2, "never more than pool_size connections");
}

#[tokio::test]
async fn starttls_and_ldaps_verify_the_server_with_the_configured_ca() {
    let ca = Ca::root("Directory TLS Root", KeyKind::EcdsaP256).unwrap();
    let server = ca.issue(&LeafSpec::server(&["localhost", "127.0.0.1"])).unwrap();
    let slapd = Slapd::start_with(Some((&server.chain_pem(), &server.key_pem())));
    let ca_file = slapd.write("ca.pem", &ca.cert_pem());
    let stranger = slapd.write("other-ca.pem", &Ca::root("Other Root", KeyKind::EcdsaP256).unwrap().cert_pem());
    let ldaps = format!("ldaps://127.0.0.1:{}", slapd.tls_port.unwrap());
    let alice = user("555000000001");

    let starttls = slapd.directory(|c| {
        c.starttls = true;
        c.ca = vec![ca_file.clone()];
    });
    assert_eq!(starttls.lookup(&alice).await.unwrap().roles.len(), 2);
    let direct = slapd.directory(|c| {
        c.url = ldaps.clone();
        c.ca = vec![ca_file.clone()];
    });
    assert_eq!(direct.lookup(&alice).await.unwrap().roles.len(), 2);

    for (url, starttls) in [(slapd.url(), true), (ldaps.clone(), false)] {
        let untrusted = slapd.directory(|c| {
            c.url = url;
            c.starttls = starttls;
            c.ca = vec![stranger.clone()];
        });
        let reason = unavailable(untrusted.lookup(&alice).await);
        assert!(reason.contains("UnknownIssuer"), "{reason}");
    }
}

#[test]
fn setup_refuses_unusable_settings_and_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let secret = write("password", "s3cret-value\n");
    let empty = write("empty", "\n");
    let not_pem = write("ca.pem", "not a certificate");
    let base = Ldap {
        url: "ldap://127.0.0.1:1".into(),
        starttls: false,
        ca: Vec::new(),
        bind_dn: Some(SERVICE_DN.into()),
        bind_password_file: Some(secret.clone()),
        base_dn: ROLES.into(),
        filter: FILTER.into(),
        attributes: RawLdapAttributes::default(),
        pool_size: NonZeroUsize::new(1).unwrap(),
        timeout: Duration::from_secs(1),
        cache_ttl: Duration::from_secs(1),
        cache_entries: 10,
    };
    let provider = spinegate::tls::provider();
    let directory = LdapDirectory::new(&base, &provider).unwrap();
    let shown = format!("{directory:?}");
    assert!(shown.contains(SERVICE_DN) && !shown.contains("s3cret"), "{shown}");

    let refused = |adjust: &dyn Fn(&mut Ldap), expect: &str| {
        let mut config = base.clone();
        adjust(&mut config);
        let err = LdapDirectory::new(&config, &provider).unwrap_err().to_string();
        assert!(err.contains(expect), "{err}");
    };
    refused(&|c| c.bind_password_file = Some(dir.path().join("missing")), "bind password file");
    refused(&|c| c.bind_password_file = Some(empty.clone()), "is empty");
    refused(&|c| c.bind_password_file = None, "bind_dn needs bind_password_file");
    refused(&|c| c.ca = vec![not_pem.clone()], "ca.pem");
    refused(&|c| c.filter = "(uid={user_id}".into(), "not an LDAP search filter");
    refused(&|c| c.timeout = Duration::ZERO, "timeout");
}

/// Through the gateway: a card holder's role profiles come from LDAP and decide the request; with
/// the directory gone (and the answer past its TTL) a rule that needs a role is 503
/// `role_directory_unavailable`, while one that needs none still serves.
#[tokio::test]
async fn the_gateway_authorises_card_holders_from_ldap_and_fails_closed_without_it() {
    let mut slapd = Slapd::start();
    let pki = support::Pki::new();
    let extra = format!(
        "[role_directory.ldap]\nurl = \"{}\"\nbase_dn = \"{ROLES}\"\nfilter = \"{FILTER}\"\ntimeout = \"1s\"\ncache_ttl = \"1s\"\n\
         [[route]]\nname = \"patient\"\npath_prefix = \"/Patient\"\nupstream = \"demo\"\n\
         [[route.rule]]\nmethods = [\"GET\"]\nactivities_any = [\"B0820\"]\n",
        slapd.url()
    );
    let gw = support::Gw::start(&pki, |s| s.extra = extra).await;
    // 555000000001 holds two profiles in LDAP; the one at RX1 has B0820.
    let card = pki.card("555000000001");
    let send = async |urid: Option<&str>, path: &str| {
        let mut client =
            support::Client::connect(gw.addr, support::client_config(&pki, Some(&card), &[b"h2"])).await.unwrap();
        let mut request = http::Request::get(path);
        if let Some(urid) = urid {
            request = request.header("NHSD-Session-URID", urid);
        }
        support::within(10, client.send(request.body(http_body_util::Full::default()).unwrap())).await.unwrap()
    };
    let r = send(None, "/Patient/9000000009").await;
    assert_eq!((r.status.as_u16(), r.json()["reason"].as_str()), (403, Some("role_not_selected")));
    let r = send(Some("555254242102"), "/Patient/9000000009").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.received("nhsd-end-user-organisation-ods").as_deref(), Some("RX1"));
    assert_eq!(r.received("x-spinegate-role-code").as_deref(), Some("S0080:G0450:R5080"));
    let r = send(Some("555254242101"), "/Patient/9000000009").await;
    assert_eq!((r.status.as_u16(), r.json()["reason"].as_str()), (403, Some("activity_not_permitted")));

    slapd.stop();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the cache TTL
    let r = send(Some("555254242102"), "/Patient/9000000009").await;
    assert_eq!((r.status.as_u16(), r.json()["reason"].as_str()), (503, Some("role_directory_unavailable")));
    assert!(r.headers.contains_key("retry-after"));
    // The catch-all route's rule needs no role: it does not wait for the directory.
    assert_eq!(send(None, "/metadata").await.status, 200);
}
