//! The role directory: user id → role profiles, for smartcard users (token users bring theirs in
//! the token). Backends: none (nobody holds a role), a TOML or JSON file reloaded when it
//! changes, and LDAP ([`ldap`]).
//!
//! The file looks like this (JSON has the same shape):
//!
//! ```toml
//! [[user]]
//! id = "555000000001"
//! [[user.role]]
//! id = "555254242101"                 # role profile id (URID)
//! org = "A81001"                      # ODS code
//! role_code = "S8000:G8000:R8000"
//! activities = ["B0360"]              # directly granted; the job role's baseline is added
//! workgroups = []                     # optional
//! ```

pub mod ldap;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::Deserialize;
use spinegate_config::RoleDirectory;
use tokio::sync::watch;

use crate::identity::UserId;
use crate::metrics as m;
use spinegate_authz::{RoleData, RoleSlot};

/// A user's role profiles as the directory holds them, with their resolved form.
#[derive(Debug, Default)]
pub struct DirectoryEntry {
    /// The profiles, in directory order.
    pub roles: Vec<RoleData>,
    /// Their activities under the current policy.
    pub slot: RoleSlot,
}

/// Why the directory could not answer (not "the user has no roles", which is an empty entry).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The directory did not answer in time, or refused.
    #[error("role directory unavailable: {0}")]
    Unavailable(String),
}

/// Why a directory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DirectorySetupError {
    /// The file is unreadable or malformed.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The LDAP settings cannot be used (CA or password file).
    #[error("LDAP role directory: {0}")]
    Ldap(String),
}

static NOBODY: LazyLock<Arc<DirectoryEntry>> = LazyLock::new(|| Arc::new(DirectoryEntry::default()));

/// The configured backend.
#[derive(Debug)]
pub enum Directory {
    /// No directory.
    None,
    /// A file.
    File(Arc<FileDirectory>),
    /// LDAP.
    Ldap(Arc<ldap::LdapDirectory>),
}

impl Directory {
    /// Sets up the configured backend (reads the file now; LDAP connects on first use).
    pub fn build(
        config: &RoleDirectory,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, DirectorySetupError> {
        Ok(match config {
            RoleDirectory::None => Directory::None,
            RoleDirectory::File { path, poll_interval } => {
                Directory::File(Arc::new(FileDirectory::load(path, *poll_interval)?))
            }
            RoleDirectory::Ldap(ldap) => Directory::Ldap(Arc::new(ldap::LdapDirectory::new(ldap, provider)?)),
        })
    }

    /// The user's role profiles; an empty entry when the directory has none for them.
    pub async fn lookup(&self, user: &UserId) -> Result<Arc<DirectoryEntry>, DirectoryError> {
        match self {
            Directory::None => Ok(Arc::clone(&NOBODY)),
            Directory::File(file) => Ok(file.lookup(user)),
            Directory::Ldap(ldap) => ldap.lookup(user).await,
        }
    }
}

/// Keeps the gateway's role directory current until `stopped`: polls a file directory for
/// changes. `current` gives whichever directory a reload has put in place.
pub async fn keep_current(current: impl Fn() -> Arc<Directory>, mut stopped: watch::Receiver<bool>) {
    loop {
        let poll = match &*current() {
            Directory::File(file) => {
                let file = Arc::clone(file);
                let poll = file.poll;
                // File reads and parsing stay off the request threads.
                let _ = tokio::task::spawn_blocking(move || file.reload_if_changed()).await;
                poll
            }
            Directory::None | Directory::Ldap(_) => Duration::from_secs(1),
        };
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stopped.changed() => return,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    user: Vec<FileUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    id: String,
    #[serde(default)]
    role: Vec<FileRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRole {
    id: String,
    org: String,
    role_code: String,
    #[serde(default)]
    activities: Vec<String>,
    #[serde(default)]
    workgroups: Vec<String>,
}

/// What the file was when last read: changes are noticed by length, modification time and, when
/// those agree, nothing else (a rewrite in the same second with the same length is picked up at
/// the next change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp { len: meta.len(), modified: meta.modified().ok() })
}

/// A role directory file, swapped whole when it changes; a file that fails to parse leaves the
/// last good contents in place (logged and counted).
#[derive(Debug)]
pub struct FileDirectory {
    path: PathBuf,
    poll: Duration,
    users: ArcSwap<HashMap<UserId, Arc<DirectoryEntry>>>,
    stamp: std::sync::Mutex<Option<Stamp>>,
    /// The lookup counter, registered at first use (after the recorder is installed): looking it
    /// up per call would cost more than the lookup.
    hits: std::sync::OnceLock<metrics::Counter>,
    /// Lookups of users the file does not list.
    absent: std::sync::OnceLock<metrics::Counter>,
}

impl FileDirectory {
    /// Reads `path` (must parse).
    pub fn load(path: &Path, poll: Duration) -> Result<Self, DirectorySetupError> {
        let stamp = stamp(path);
        let users = parse_file(path)?;
        metrics::gauge!(m::DIRECTORY_USERS).set(users.len() as f64);
        Ok(Self {
            path: path.to_path_buf(),
            poll,
            users: ArcSwap::from_pointee(users),
            stamp: std::sync::Mutex::new(stamp),
            hits: std::sync::OnceLock::new(),
            absent: std::sync::OnceLock::new(),
        })
    }

    fn lookup(&self, user: &UserId) -> Arc<DirectoryEntry> {
        let users = self.users.load();
        let (entry, counter) = match users.get(user) {
            Some(entry) => (Arc::clone(entry), &self.hits),
            None => (Arc::clone(&NOBODY), &self.absent),
        };
        counter
            .get_or_init(|| {
                let result = if Arc::ptr_eq(&entry, &NOBODY) { "absent" } else { "hit" };
                metrics::counter!(m::DIRECTORY_LOOKUPS, "backend" => "file", "result" => result)
            })
            .increment(1);
        entry
    }

    /// Re-reads the file if it changed; returns whether new contents were installed.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.path);
        {
            let mut last = self.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *last == now {
                return false;
            }
            *last = now;
        }
        match parse_file(&self.path) {
            Ok(users) => {
                tracing::info!(path = %self.path.display(), users = users.len(), "role directory reloaded");
                metrics::gauge!(m::DIRECTORY_USERS).set(users.len() as f64);
                metrics::counter!(m::DIRECTORY_RELOADS, "result" => "ok").increment(1);
                self.users.store(Arc::new(users));
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "role directory not reloaded; the last good contents stay in use");
                metrics::counter!(m::DIRECTORY_RELOADS, "result" => "error").increment(1);
                false
            }
        }
    }
}

fn parse_file(path: &Path) -> Result<HashMap<UserId, Arc<DirectoryEntry>>, DirectorySetupError> {
    let bad = |reason: String| DirectorySetupError::File { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let doc: FileDoc = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?,
        _ => toml::from_str(&text).map_err(|e| bad(e.message().trim().to_owned()))?,
    };
    let mut users = HashMap::with_capacity(doc.user.len());
    for user in doc.user {
        let id = UserId::parse(&user.id).ok_or_else(|| bad(format!("user id {:?} is not 12 digits", user.id)))?;
        let mut roles = Vec::with_capacity(user.role.len());
        for role in user.role {
            if role.id.trim().is_empty() {
                return Err(bad(format!("user {id}: a role has an empty id")));
            }
            if roles.iter().any(|r: &RoleData| *r.id == *role.id) {
                return Err(bad(format!("user {id}: role {:?} is listed twice", role.id)));
            }
            let org = role.org.to_ascii_uppercase();
            if !spinegate_vocab::is_ods_code(&org) {
                return Err(bad(format!("user {id}: {:?} is not an ODS code", role.org)));
            }
            roles.push(RoleData {
                id: role.id.into(),
                org: org.into(),
                role_code: role.role_code.into(),
                activity_codes: role.activities.into_iter().map(String::into_boxed_str).collect(),
                workgroups: role.workgroups.into_iter().map(String::into_boxed_str).collect(),
            });
        }
        if users.insert(id, Arc::new(DirectoryEntry { roles, slot: RoleSlot::default() })).is_some() {
            return Err(bad(format!("user {id} is listed twice")));
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
[[user]]
id = "555000000001"
[[user.role]]
id = "555254242101"
org = "a81001"
role_code = "S8000:G8000:R8000"
activities = ["B0360"]
"#;

    #[test]
    fn file_directory_reads_toml_and_json_and_keeps_the_last_good_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roles.toml");
        std::fs::write(&path, ONE).unwrap();
        let d = FileDirectory::load(&path, Duration::from_secs(1)).unwrap();
        let alice = UserId::parse("555000000001").unwrap();
        assert_eq!(&*d.lookup(&alice).roles[0].org, "A81001");
        assert!(d.lookup(&UserId::parse("555000000009").unwrap()).roles.is_empty());

        std::fs::write(&path, format!("{ONE}\n[[user]]\nid = \"bad\"\n")).unwrap();
        assert!(!d.reload_if_changed(), "a bad file is refused");
        assert_eq!(d.lookup(&alice).roles.len(), 1, "last good contents stay");

        std::fs::write(&path, ONE.replace("A81001", "B82001").replace("a81001", "b82001")).unwrap();
        assert!(d.reload_if_changed());
        assert_eq!(&*d.lookup(&alice).roles[0].org, "B82001");

        let json = dir.path().join("roles.json");
        std::fs::write(
            &json,
            r#"{"user":[{"id":"555000000001","role":[{"id":"1","org":"RX1","role_code":"R8000","activities":[]}]}]}"#,
        )
        .unwrap();
        let d = FileDirectory::load(&json, Duration::from_secs(1)).unwrap();
        assert_eq!(&*d.lookup(&alice).roles[0].id, "1");
    }

    #[test]
    fn malformed_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roles.toml");
        for (text, expect) in [
            (ONE.replace("555000000001", "12"), "not 12 digits"),
            (format!("{ONE}{ONE}"), "listed twice"),
            (ONE.replace("a81001", "not an ods!"), "not an ODS code"),
            (ONE.replace("role_code", "rolecode"), "unknown field"),
        ] {
            std::fs::write(&path, &text).unwrap();
            let err = FileDirectory::load(&path, Duration::from_secs(1)).unwrap_err().to_string();
            assert!(err.contains(expect), "{err}");
        }
    }
}
