//! The dev PKI on disk: what `spinegate dev --dir DIR` creates, or reuses when DIR already has it.
//!
//! ```text
//! DIR/pki/smartcard-root.{pem,key}      NHS-style root
//! DIR/pki/smartcard-issuing.{pem,key}   issuing CA for smartcards (under the root)
//! DIR/pki/tls-root.{pem,key}            CA of the gateway's server certificate
//! DIR/pki/server.{pem,key}              the gateway's server certificate (localhost, 127.0.0.1, ::1)
//! DIR/pki/assertion-key.pem             ECDSA P-256 key the gateway signs identity assertions with
//! DIR/users/<name>.{pem,key}            smartcard chain (leaf + issuing CA) and key
//! DIR/roles.toml                        the role directory (written once; edit it to move users)
//! ```
//!
//! Keys are reused across runs; a certificate is re-issued (same key) only when it no longer
//! shows the state its user demonstrates, so `carol` always expires within 90 days and `dave`
//! is always expired.

use std::path::{Path, PathBuf};

use rcgen::KeyPair;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::{Ca, Error, Issued, KeyKind, LeafSpec};

/// What a demo user's certificate demonstrates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserState {
    /// Valid for well over the warning window.
    Valid,
    /// Valid, but ends in about 30 days: responses carry the expiry warning.
    ExpiringSoon,
    /// Ended yesterday: the handshake fails.
    Expired,
}

impl UserState {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Valid => "valid",
            UserState::ExpiringSoon => "expiring_soon",
            UserState::Expired => "expired",
        }
    }

    fn spec(self, spec: LeafSpec) -> LeafSpec {
        match self {
            UserState::Valid => spec,
            UserState::ExpiringSoon => spec.expiring_in(Duration::days(30)),
            UserState::Expired => spec.expired_since(Duration::days(1)),
        }
    }

    /// Whether a certificate ending at `not_after` still shows this state at `now`.
    fn holds(self, not_after: OffsetDateTime, now: OffsetDateTime) -> bool {
        let left = not_after - now;
        match self {
            UserState::Valid => left > Duration::days(180),
            UserState::ExpiringSoon => left > Duration::days(7) && left < Duration::days(60),
            UserState::Expired => left < Duration::ZERO,
        }
    }
}

/// A demo user with a smartcard.
#[derive(Clone, Debug)]
pub struct DevUser {
    /// Short name.
    pub name: &'static str,
    /// 12-digit Care Identity user id.
    pub user_id: &'static str,
    /// Surname as in the certificate.
    pub surname: &'static str,
    /// Forename as in the certificate.
    pub forename: &'static str,
    /// What the certificate demonstrates.
    pub state: UserState,
    /// PEM chain (leaf + issuing CA).
    pub cert_path: PathBuf,
    /// PEM key.
    pub key_path: PathBuf,
    /// The certificate's notAfter.
    pub not_after: OffsetDateTime,
    /// The certificate's serial, big-endian without leading zeros.
    pub serial: Vec<u8>,
    /// Whether the dev PKI has revoked it.
    pub revoked: bool,
}

/// Demo users who sign in with an authenticator and have no smartcard: (name, user id, `amr`).
pub const TOKEN_ONLY_USERS: &[(&str, &str, &str)] = &[("grace", "555000000007", "FIDO2")];

/// The demo users: (name, user id, surname, forename, state, revoked).
pub const DEMO_USERS: &[(&str, &str, &str, &str, UserState, bool)] = &[
    ("alice", "555000000001", "ABLE", "Alice", UserState::Valid, false),
    // bob's card was lost: his valid certificate is revoked (OCSP and the CRL say so).
    ("bob", "555000000002", "BAKER", "Bob", UserState::Valid, true),
    ("carol", "555000000003", "CARTER", "Carol", UserState::ExpiringSoon, false),
    ("dave", "555000000004", "DAVIES", "Dave", UserState::Expired, false),
    // erin is an admin clerk: authenticated, but her role lacks the clinical activities.
    ("erin", "555000000005", "EVANS", "Erin", UserState::Valid, false),
    // frank holds role profiles in two organisations and picks one with NHSD-Session-URID.
    ("frank", "555000000006", "FRANKS", "Frank", UserState::Valid, false),
];

/// A demo user's role profile (the role directory for card users, the token for `grace`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoRole {
    /// The user's short name.
    pub user: &'static str,
    /// Role profile id (URID).
    pub id: &'static str,
    /// ODS code.
    pub org: &'static str,
    /// Role code.
    pub role_code: &'static str,
    /// Directly granted activities (the job role's baseline is added by the gateway).
    pub activities: &'static [&'static str],
}

/// The clinical job role (Clinical Practitioner Access Role).
pub const CLINICIAN: &str = "S8000:G8000:R8000";
/// An admin clerk's job role.
pub const ADMIN_CLERK: &str = "S8001:G8005:R8008";

/// Every demo role profile. The dev gateway's baseline gives R8000 "view demographics" (B0820);
/// the profiles grant "view detailed record" (B0360) directly.
pub const DEMO_ROLES: &[DemoRole] = &[
    DemoRole { user: "alice", id: "555254242101", org: "A81001", role_code: CLINICIAN, activities: &["B0360"] },
    DemoRole { user: "bob", id: "555254242102", org: "A81001", role_code: CLINICIAN, activities: &["B0360"] },
    DemoRole { user: "carol", id: "555254242103", org: "A81001", role_code: CLINICIAN, activities: &["B0360"] },
    DemoRole { user: "dave", id: "555254242104", org: "A81001", role_code: CLINICIAN, activities: &["B0360"] },
    DemoRole { user: "erin", id: "555254242105", org: "A81001", role_code: ADMIN_CLERK, activities: &["B0572"] },
    DemoRole { user: "frank", id: "555254242106", org: "A81001", role_code: CLINICIAN, activities: &["B0360"] },
    DemoRole { user: "frank", id: "555254242107", org: "A81002", role_code: CLINICIAN, activities: &["B0360"] },
    DemoRole { user: "grace", id: "555254242108", org: "A81001", role_code: CLINICIAN, activities: &["B0360"] },
];

/// The role profiles of `user`.
pub fn demo_roles(user: &str) -> impl Iterator<Item = &'static DemoRole> + '_ {
    DEMO_ROLES.iter().filter(move |r| r.user == user)
}

/// The dev PKI, loaded or created.
pub struct DevWorld {
    /// The directory it lives in.
    pub dir: PathBuf,
    /// Smartcard root CA.
    pub root: Ca,
    /// Smartcard issuing CA (shared with the dev OCSP responder).
    pub issuing: std::sync::Arc<Ca>,
    /// CA of the gateway's server certificate.
    pub tls_root: Ca,
    /// Demo users.
    pub users: Vec<DevUser>,
}

impl std::fmt::Debug for DevWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevWorld").field("dir", &self.dir).field("users", &self.users).finish_non_exhaustive()
    }
}

impl DevWorld {
    /// Loads the dev PKI from `dir`, creating whatever is missing or no longer fit.
    pub fn open_or_create(dir: &Path) -> Result<Self, Error> {
        for sub in ["pki", "users"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|source| Error::Io { path: d, source })?;
        }
        let pki = dir.join("pki");
        let (root, issuing, fresh_cas) = match load_ca(&pki, "smartcard-root", &[], true)
            .and_then(|root| Ok((root, load_ca(&pki, "smartcard-issuing", &[], false)?)))
        {
            Ok((root, issuing)) => (root, issuing, false),
            Err(_) => {
                let root = Ca::root("spinegate Dev Smartcard Root CA", KeyKind::Rsa2048)?;
                let issuing = root.intermediate("spinegate Dev Smartcard Issuing CA 1", KeyKind::Rsa2048)?;
                store_ca(&pki, "smartcard-root", &root)?;
                store_ca(&pki, "smartcard-issuing", &issuing)?;
                (root, issuing, true)
            }
        };
        let tls_root = match load_ca(&pki, "tls-root", &[], true) {
            Ok(ca) => ca,
            Err(_) => {
                let ca = Ca::root("spinegate Dev TLS Root CA", KeyKind::EcdsaP256)?;
                store_ca(&pki, "tls-root", &ca)?;
                ca
            }
        };
        let _ = ensure_leaf(
            &pki.join("server.pem"),
            &pki.join("server.key"),
            &tls_root,
            |not_after, now| not_after - now > Duration::days(30),
            || LeafSpec::server(&["localhost", "127.0.0.1", "::1"]),
            false,
        )?;

        let now = OffsetDateTime::now_utc();
        let mut users = Vec::with_capacity(DEMO_USERS.len());
        for &(name, user_id, surname, forename, state, revoked) in DEMO_USERS {
            let cert_path = dir.join("users").join(format!("{name}.pem"));
            let key_path = dir.join("users").join(format!("{name}.key"));
            let (not_after, serial) = ensure_leaf(
                &cert_path,
                &key_path,
                &issuing,
                |not_after, _| state.holds(not_after, now),
                || state.spec(LeafSpec::smartcard(user_id, surname, forename)),
                fresh_cas,
            )?;
            users.push(DevUser {
                name,
                user_id,
                surname,
                forename,
                state,
                cert_path,
                key_path,
                not_after,
                serial,
                revoked,
            });
        }
        let assertion_key = pki.join("assertion-key.pem");
        if !assertion_key.exists() {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            write(&assertion_key, &key.serialize_pem(), true)?;
        }
        let roles = dir.join("roles.toml");
        if !roles.exists() {
            write(&roles, &role_directory_toml(&users), false)?;
        }
        Ok(Self { dir: dir.to_path_buf(), root, issuing: std::sync::Arc::new(issuing), tls_root, users })
    }

    /// The role directory file (TOML) the dev gateway reads; edit it to move a user.
    pub fn roles_path(&self) -> PathBuf {
        self.dir.join("roles.toml")
    }

    /// The key the dev gateway signs identity assertions with.
    pub fn assertion_key_path(&self) -> PathBuf {
        self.dir.join("pki/assertion-key.pem")
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<&DevUser> {
        self.users.iter().find(|u| u.name == name)
    }

    /// PEM of the smartcard root (the gateway's trust anchor).
    pub fn root_path(&self) -> PathBuf {
        self.dir.join("pki/smartcard-root.pem")
    }

    /// PEM of the smartcard issuing CA.
    pub fn issuing_path(&self) -> PathBuf {
        self.dir.join("pki/smartcard-issuing.pem")
    }

    /// PEM of the CA that signed the gateway's server certificate.
    pub fn tls_root_path(&self) -> PathBuf {
        self.dir.join("pki/tls-root.pem")
    }

    /// The gateway's server certificate chain and key.
    pub fn server_paths(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("pki/server.pem"), self.dir.join("pki/server.key"))
    }
}

/// The role directory for the card users, in the gateway's file format.
fn role_directory_toml(users: &[DevUser]) -> String {
    let mut out = String::from(
        "# The dev role directory: user id -> role profiles. spinegate dev reloads it when it changes;\n\
         # move a user to another organisation by editing `org` here.\n",
    );
    for user in users {
        out.push_str(&format!("\n[[user]]\nid = \"{}\"  # {}\n", user.user_id, user.name));
        for role in demo_roles(user.name) {
            let activities = role.activities.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
            out.push_str(&format!(
                "[[user.role]]\nid = \"{}\"\norg = \"{}\"\nrole_code = \"{}\"\nactivities = [{activities}]\n",
                role.id, role.org, role.role_code
            ));
        }
    }
    out
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

fn write(path: &Path, contents: &str, secret: bool) -> Result<(), Error> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    std::fs::write(path, contents).map_err(io)?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

fn first_cert(path: &Path, pem_text: &str) -> Result<CertificateDer<'static>, Error> {
    pem::parse_many(pem_text)
        .ok()
        .and_then(|blocks| blocks.into_iter().find(|b| b.tag() == "CERTIFICATE"))
        .map(|b| CertificateDer::from(b.into_contents()))
        .ok_or_else(|| Error::Corrupt { path: path.to_path_buf(), message: "no CERTIFICATE block".into() })
}

fn load_ca(dir: &Path, stem: &str, parents: &[CertificateDer<'static>], is_root: bool) -> Result<Ca, Error> {
    let cert_path = dir.join(format!("{stem}.pem"));
    let cert = first_cert(&cert_path, &read(&cert_path)?)?;
    let key = KeyPair::from_pem(&read(&dir.join(format!("{stem}.key")))?)?;
    Ca::from_der(cert, key, parents, is_root)
}

fn store_ca(dir: &Path, stem: &str, ca: &Ca) -> Result<(), Error> {
    write(&dir.join(format!("{stem}.key")), &ca.key_pem(), true)?;
    write(&dir.join(format!("{stem}.pem")), &ca.cert_pem(), false)
}

/// Makes sure `cert_path` holds a certificate from `ca` that `fit` accepts, re-issuing it (with
/// the stored key when there is one) otherwise. Returns its notAfter and serial.
fn ensure_leaf(
    cert_path: &Path,
    key_path: &Path,
    ca: &Ca,
    fit: impl Fn(OffsetDateTime, OffsetDateTime) -> bool,
    spec: impl Fn() -> LeafSpec,
    force: bool,
) -> Result<(OffsetDateTime, Vec<u8>), Error> {
    let now = OffsetDateTime::now_utc();
    if !force && let Ok(text) = read(cert_path) {
        let fits = pem::parse_many(&text).ok().and_then(|blocks| {
            let ders: Vec<Vec<u8>> = blocks.into_iter().map(pem::Pem::into_contents).collect();
            let (_, leaf) = x509_parser::parse_x509_certificate(ders.first()?).ok()?;
            let not_after = OffsetDateTime::from_unix_timestamp(leaf.validity().not_after.timestamp()).ok()?;
            // The chain must still end in this CA: a regenerated CA invalidates old leaves.
            let issued_here = ders.get(1).map(Vec::as_slice) == ca.chain().first().map(|c| c.as_ref())
                || (ca.chain().is_empty() && leaf.issuer().as_raw() == subject_of(ca)?.as_slice());
            (issued_here && fit(not_after, now)).then(|| (not_after, serial_bytes(leaf.raw_serial())))
        });
        if let (Some(found), true) = (fits, key_path.exists()) {
            return Ok(found);
        }
    }
    let mut spec = spec();
    if let Ok(key_pem) = read(key_path) {
        spec = spec.reuse_key_pem(key_pem);
    }
    let issued: Issued = ca.issue(&spec)?;
    write(key_path, &issued.key_pem(), true)?;
    write(cert_path, &issued.chain_pem(), false)?;
    let serial = x509_parser::parse_x509_certificate(&issued.cert)
        .map(|(_, c)| serial_bytes(c.raw_serial()))
        .map_err(|e| Error::Corrupt { path: cert_path.to_path_buf(), message: e.to_string() })?;
    Ok((spec.not_after(), serial))
}

fn serial_bytes(raw: &[u8]) -> Vec<u8> {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len().saturating_sub(1));
    raw[start..].to_vec()
}

fn subject_of(ca: &Ca) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(ca.cert()).ok()?;
    Some(cert.subject().as_raw().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_is_created_then_reused_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let first = DevWorld::open_or_create(dir.path()).unwrap();
        let alice_pem = std::fs::read(&first.user("alice").unwrap().cert_path).unwrap();
        let root_pem = std::fs::read(first.root_path()).unwrap();

        let second = DevWorld::open_or_create(dir.path()).unwrap();
        assert_eq!(std::fs::read(second.root_path()).unwrap(), root_pem);
        assert_eq!(std::fs::read(&second.user("alice").unwrap().cert_path).unwrap(), alice_pem);
    }

    #[test]
    fn demo_users_show_their_states() {
        let dir = tempfile::tempdir().unwrap();
        let world = DevWorld::open_or_create(dir.path()).unwrap();
        let now = OffsetDateTime::now_utc();
        let left = |name| world.user(name).unwrap().not_after - now;
        assert!(left("alice") > Duration::days(365));
        assert!(left("carol") > Duration::days(29) && left("carol") <= Duration::days(30));
        assert!(left("dave") < Duration::ZERO);

        let pem_text = std::fs::read_to_string(&world.user("alice").unwrap().cert_path).unwrap();
        let blocks = pem::parse_many(&pem_text).unwrap();
        assert_eq!(blocks.len(), 2, "leaf + issuing CA");
        let (_, leaf) = x509_parser::parse_x509_certificate(blocks[0].contents()).unwrap();
        assert_eq!(leaf.subject().to_string(), "O=nhs, OU=People, CN=555000000001_ABLE_Alice");
        assert_eq!(blocks[1].contents(), world.issuing.cert().as_ref());
    }

    #[test]
    fn leaf_in_wrong_state_is_reissued_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let world = DevWorld::open_or_create(dir.path()).unwrap();
        let carol = world.user("carol").unwrap();
        let key_before = std::fs::read(&carol.key_path).unwrap();
        // Replace carol's certificate with a long-lived one: no longer "expiring soon".
        let long = world
            .issuing
            .issue(
                &LeafSpec::smartcard("555000000003", "CARTER", "Carol")
                    .reuse_key_pem(String::from_utf8(key_before.clone()).unwrap()),
            )
            .unwrap();
        std::fs::write(&carol.cert_path, long.chain_pem()).unwrap();

        let again = DevWorld::open_or_create(dir.path()).unwrap();
        let carol = again.user("carol").unwrap();
        assert!(carol.not_after - OffsetDateTime::now_utc() < Duration::days(31));
        assert_eq!(std::fs::read(&carol.key_path).unwrap(), key_before);
    }
}
