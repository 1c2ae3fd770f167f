//! The deny-list source: the hot-reloaded file and the admin endpoint's entries, published
//! together in the snapshot; every change advances the generation.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Revocation, Snapshot, lock};
use crate::deny::{DenyEntry, DenyList};

impl Revocation {
    /// Watches a deny-list file (hot-reloaded); a file that does not parse keeps the last good
    /// list and is logged.
    pub fn set_deny_file(&self, path: Option<PathBuf>) {
        *lock(&self.deny_file) = path.map(|p| (p, None, DenyList::default()));
        self.poll_deny_file();
    }

    pub(super) fn poll_deny_file(&self) {
        let mut guard = lock(&self.deny_file);
        let Some((path, seen, list)) = guard.as_mut() else { return };
        let modified = std::fs::metadata(&*path).and_then(|m| m.modified()).ok();
        if modified == *seen {
            return;
        }
        *seen = modified;
        let parsed = match std::fs::read_to_string(&*path) {
            Ok(text) => DenyList::parse(&text).map_err(|e| e.to_string()),
            // A deleted file is an empty list: removing the file lifts the denials.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DenyList::default()),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(new) => {
                tracing::info!(path = %path.display(), entries = new.len(), "deny list loaded");
                *list = new;
                let combined = list.union(&lock(&self.deny_api));
                drop(guard);
                self.publish_deny(combined);
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "deny list refused; keeping the last good one")
            }
        }
    }

    fn publish_deny(&self, deny: DenyList) {
        let old = self.snapshot.load_full();
        self.snapshot.store(Arc::new(Snapshot { crls: old.crls.clone(), deny }));
        self.bump();
    }

    fn republish_deny(&self) {
        let file = lock(&self.deny_file).as_ref().map(|(_, _, l)| l.clone()).unwrap_or_default();
        let combined = file.union(&lock(&self.deny_api));
        self.publish_deny(combined);
    }

    /// Adds entries through the admin endpoint (this replica only; the file is the cluster-wide
    /// list). Effective for the next request on every connection.
    pub fn deny_add(&self, entries: impl IntoIterator<Item = DenyEntry>) {
        {
            let mut api = lock(&self.deny_api);
            for entry in entries {
                api.insert(entry);
            }
        }
        self.republish_deny();
    }

    /// Removes entries added through the admin endpoint.
    pub fn deny_remove(&self, entries: &[DenyEntry]) {
        {
            let mut api = lock(&self.deny_api);
            for entry in entries {
                api.remove(entry);
            }
        }
        self.republish_deny();
    }
}
