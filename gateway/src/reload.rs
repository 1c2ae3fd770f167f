//! Reloading the configuration and the material it names without dropping a request: on SIGHUP,
//! on a change to any watched file (inotify through `notify`; Kubernetes ConfigMap and Secret
//! updates swap a `..data` symlink in the mounted directory, which a directory watch sees), or
//! on request (`Gateway::reload`).
//!
//! A reload builds everything first — configuration, server certificates and keys, trust anchors,
//! upstreams, rules and policy, the assertion key, revocation policies, a new role-directory
//! backend if its settings changed — and only then commits, so a failed reload changes nothing:
//! the last good state keeps serving, and the failure is logged, counted and shown on `/readyz`.
//! Committing swaps the runtime (new handshakes and requests use it at once; requests in flight
//! finish on the one they started with), retires cached chains only if the trust material
//! changed, and hands the revocation checker its new policies, CRL files and deny-list file.
//!
//! Listener and admin addresses, HTTP/3 endpoint settings, connection limits, token settings and
//! issuers, the audit log, logging and the chain-cache and revocation-cache options are start-up
//! settings ([`restart_needed`]); a reload that changes listeners is refused, a change to the
//! others is logged as waiting for a restart while everything else is applied.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spinegate_config::Config;
use tokio::sync::{mpsc, watch};

use crate::directory::Directory;
use crate::metrics as m;
use crate::runtime::{BuildError, ReloadStatus, Runtime, Shared};

/// What asked for a reload (a metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// SIGHUP.
    Signal,
    /// A watched file changed.
    File,
    /// A program called [`crate::Gateway::reload`].
    Api,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Trigger::Signal => "signal",
            Trigger::File => "file",
            Trigger::Api => "api",
        }
    }
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not parse or validate.
    #[error(transparent)]
    Config(#[from] spinegate_config::ConfigError),
    /// Something the configuration names is unusable.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Listeners are added, removed, renamed or moved only by a restart.
    #[error("the [[listener]] list differs from the running one; listeners change only on restart")]
    Listeners,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Records a successful configuration load (start-up).
pub(crate) fn loaded(shared: &Shared) {
    let now = unix_now();
    *shared.reload_status.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
        ReloadStatus { last_success: now, last_failure: None };
    metrics::gauge!(m::CONFIG_LAST_RELOAD_SUCCESS).set(now as f64);
    metrics::gauge!(m::CONFIG_LAST_RELOAD_FAILED).set(0.0);
}

/// Applies `config`, recording the outcome.
pub(crate) async fn reload(shared: &Shared, config: &Config, trigger: Trigger) -> Result<(), ReloadError> {
    let outcome = apply(shared, config).await;
    record(shared, trigger, outcome.as_ref().err());
    outcome
}

/// Reads, validates and applies the file at `path`, recording the outcome.
pub(crate) async fn reload_from(shared: &Shared, path: &Path, trigger: Trigger) -> Result<(), ReloadError> {
    let outcome = match spinegate_config::load(path) {
        Ok(config) => apply(shared, &config).await,
        Err(e) => Err(e.into()),
    };
    record(shared, trigger, outcome.as_ref().err());
    outcome
}

fn record(shared: &Shared, trigger: Trigger, error: Option<&ReloadError>) {
    let now = unix_now();
    let mut status = shared.reload_status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match error {
        None => {
            *status = ReloadStatus { last_success: now, last_failure: None };
            metrics::counter!(m::CONFIG_RELOADS, "trigger" => trigger.label(), "result" => "ok").increment(1);
            metrics::gauge!(m::CONFIG_LAST_RELOAD_SUCCESS).set(now as f64);
            metrics::gauge!(m::CONFIG_LAST_RELOAD_FAILED).set(0.0);
            tracing::info!(trigger = trigger.label(), "configuration reloaded");
        }
        Some(e) => {
            status.last_failure = Some((now, e.to_string()));
            metrics::counter!(m::CONFIG_RELOADS, "trigger" => trigger.label(), "result" => "error").increment(1);
            metrics::gauge!(m::CONFIG_LAST_RELOAD_FAILED).set(1.0);
            tracing::error!(trigger = trigger.label(), error = %e, "configuration not reloaded; the last good one keeps serving");
        }
    }
}

/// The start-up settings (see the module documentation) that differ between `started`, the
/// configuration the process started with, and `config`: a reload applies everything else and
/// logs these as waiting for a restart.
pub(crate) fn restart_needed(started: &Config, config: &Config) -> Vec<&'static str> {
    let http3 = |c: &Config| c.listeners.iter().map(|l| l.http3.clone()).collect::<Vec<_>>();
    let changes = [
        ("admin", started.admin != config.admin),
        ("limits.max_connections", started.limits.max_connections != config.limits.max_connections),
        ("tokens", started.tokens != config.tokens),
        ("token_issuer", started.token_issuers != config.token_issuers),
        ("chain_cache", started.chain_cache != config.chain_cache),
        ("revocation.options", started.revocation.options != config.revocation.options),
        ("revocation.admin_token_file", started.revocation.admin_token_file != config.revocation.admin_token_file),
        ("audit", started.audit != config.audit),
        ("log", started.log != config.log),
        ("listener.http3", http3(started) != http3(config)),
    ];
    changes.into_iter().filter_map(|(name, changed)| changed.then_some(name)).collect()
}

/// Builds everything `config` needs, then commits it all at once.
async fn apply(shared: &Shared, config: &Config) -> Result<(), ReloadError> {
    let current = shared.services.runtime.load_full();
    let running: Vec<(&str, std::net::SocketAddr)> = current.listeners.iter().map(|l| (&*l.name, l.listen)).collect();
    let asked: Vec<(&str, std::net::SocketAddr)> =
        config.listeners.iter().map(|l| (l.name.as_str(), l.listen)).collect();
    if running != asked {
        return Err(ReloadError::Listeners);
    }
    // Build: nothing below is visible to requests until every step has succeeded.
    let runtime = Runtime::build(
        config,
        &shared.services.cache,
        &shared.services.revocation,
        &shared.provider,
        &shared.resumption,
        &shared.services.clock,
    )?;
    let policies = crate::revocation::policies(config).map_err(BuildError::from)?;
    let directory_changed = {
        let current = shared.directory_config.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *current != config.role_directory
    };
    let directory = if directory_changed {
        Some(Directory::build(&config.role_directory, &shared.provider).map_err(BuildError::from)?)
    } else {
        None
    };
    for warning in
        runtime.trust.anchor_warnings(shared.services.clock.now()).into_iter().chain(spinegate_config::lint(config))
    {
        tracing::warn!("{warning}");
    }
    let waiting = restart_needed(&shared.started, config);
    if !waiting.is_empty() {
        tracing::warn!(settings = ?waiting, "these settings changed and take effect only on restart");
    }

    // Commit. Cached chains stay valid unless the trust material changed; when it did, the new
    // store gets a new epoch and the cache retires every entry made under the old one.
    if runtime.trust.digest() == current.trust.digest() {
        runtime.trust.set_epoch(current.trust.epoch());
    } else {
        runtime.trust.set_epoch(shared.services.cache.advance_trust_epoch());
        tracing::info!("trust material changed: verified chains will be checked again");
    }
    shared.services.revocation.set_policies(policies);
    shared.services.revocation.set_deny_file(config.revocation.deny_list.clone());
    if let Some(directory) = directory {
        shared.services.directory.store(Arc::new(directory));
        *shared.directory_config.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            config.role_directory.clone();
        tracing::info!("role directory settings changed: the new directory is in use");
    }
    shared.services.runtime.store(Arc::new(runtime));
    crate::serve::quic::refresh(shared);
    // New CRL files are read now rather than at the next poll.
    shared.services.revocation.load_files().await;
    Ok(())
}

/// What a reload depends on: the configuration file and every file it names that nothing else
/// watches (CRL files, the deny list and the role-directory file are polled by their owners),
/// the guidance template directories (any file in them), and the directories to watch for them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Watched {
    /// Files whose change reloads (absolute).
    pub files: BTreeSet<PathBuf>,
    /// Directories any of whose files' change reloads (absolute).
    pub file_dirs: BTreeSet<PathBuf>,
    /// Directories to watch.
    pub dirs: BTreeSet<PathBuf>,
}

impl Watched {
    /// Whether a change at `path` can change what the configuration loads. Kubernetes updates a
    /// mounted ConfigMap or Secret by swapping its `..data` symlink, so any `..`-prefixed name
    /// in a watched directory counts too. Anything else — a log or audit file written beside the
    /// configuration, an editor's swap file — does not.
    pub(crate) fn concerns(&self, path: &Path) -> bool {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.files.contains(&path)
            || self.file_dirs.contains(&parent)
            || (self.dirs.contains(&parent) && path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("..")))
    }
}

/// What the configuration at `path` (as `config` reads) depends on; see [`Watched`].
pub(crate) fn watched(path: &Path, config: Option<&Config>) -> Watched {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut files: Vec<&Path> = vec![path];
    let mut file_dirs = BTreeSet::new();
    if let Some(config) = config {
        files.extend(config.files());
        file_dirs.extend(config.file_dirs().into_iter().map(absolute));
    }
    let files: BTreeSet<PathBuf> = files.into_iter().map(absolute).collect();
    let mut dirs: BTreeSet<PathBuf> = files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
    dirs.extend(file_dirs.iter().cloned());
    Watched { files, file_dirs, dirs }
}

/// SIGHUP, listened for from the moment this is made. `spinegate run` makes it before start-up:
/// a hangup that arrives while the listeners open is then neither fatal (the default action of
/// SIGHUP is to end the process) nor lost (it reloads once the watch starts).
#[derive(Debug)]
pub struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    /// Starts listening for SIGHUP (a no-op off Unix). Must run inside a tokio runtime.
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .inspect_err(|e| tracing::warn!(error = %e, "SIGHUP cannot be handled; reload by editing the files"))
                .ok();
            Self { signal }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next SIGHUP; never, if there is none to listen for.
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.signal.as_mut()
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending().await
    }
}

/// Reloads from `path` on SIGHUP and whenever a file it depends on changes (changes within a
/// quarter second are taken together), until `stopped`.
pub(crate) async fn watch(shared: Arc<Shared>, path: PathBuf, mut hangup: Hangup, mut stopped: watch::Receiver<bool>) {
    let (events, mut changed) = mpsc::unbounded_channel::<()>();
    let concerns = Arc::new(std::sync::RwLock::new(Watched::default()));
    let filter = Arc::clone(&concerns);
    let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        let watched = filter.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if event.paths.iter().any(|p| watched.concerns(p)) {
            let _ = events.send(());
        }
    }) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "file watching is unavailable; reload with SIGHUP");
            None
        }
    };
    let mut watching = BTreeSet::new();
    let mut rewatch = |watcher: &mut Option<notify::RecommendedWatcher>, config: Option<&Config>| {
        let Some(w) = watcher.as_mut() else { return };
        let wanted = watched(&path, config);
        for dir in watching.difference(&wanted.dirs) {
            let _ = notify::Watcher::unwatch(w, dir);
        }
        for dir in wanted.dirs.difference(&watching) {
            if let Err(e) = notify::Watcher::watch(w, dir, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch for changes");
            }
        }
        watching = wanted.dirs.clone();
        *concerns.write().unwrap_or_else(std::sync::PoisonError::into_inner) = wanted;
    };
    rewatch(&mut watcher, spinegate_config::load(&path).ok().as_ref());

    loop {
        let trigger = tokio::select! {
            _ = stopped.changed() => return,
            () = hangup.recv() => Trigger::Signal,
            Some(()) = changed.recv() => {
                // Let a burst of events (an editor's save, a symlink swap) settle.
                tokio::time::sleep(Duration::from_millis(250)).await;
                while changed.try_recv().is_ok() {}
                Trigger::File
            }
        };
        if reload_from(&shared, &path, trigger).await.is_ok() {
            rewatch(&mut watcher, spinegate_config::load(&path).ok().as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_the_configuration_depends_on_concern_a_reload() {
        let dir = std::path::absolute("/etc/spinegate").unwrap();
        let watched = watched(&dir.join("spinegate.toml"), None);
        assert!(watched.dirs.contains(&dir));
        assert!(watched.concerns(&dir.join("spinegate.toml")));
        // Kubernetes' atomic volume update.
        assert!(watched.concerns(&dir.join("..data")));
        assert!(watched.concerns(&dir.join("..2026_11_29_17_00_00.123")));
        // Logs, audit records and editors' files beside the configuration do not.
        for other in ["audit.jsonl", "spinegate.log", ".spinegate.toml.swp", "spinegate.toml~"] {
            assert!(!watched.concerns(&dir.join(other)), "{other}");
        }
        assert!(!watched.concerns(Path::new("/var/log/spinegate.toml")));
    }

    /// `config/examples/minimal.toml` followed by `extra`.
    fn config(extra: &str) -> Config {
        let example = include_str!("../../config/examples/minimal.toml");
        spinegate_config::parse(&format!("{example}\n{extra}"), None, Path::new("/etc/spinegate")).unwrap()
    }

    #[test]
    fn a_reload_names_exactly_the_start_up_settings_that_changed() {
        let started = config("");
        assert!(restart_needed(&started, &started.clone()).is_empty());
        // Routes, trust material and rules apply on reload: nothing waits.
        let routes = config("[[route]]\nname = \"other\"\npath_prefix = \"/Other/\"\nupstream = \"patient-data\"\n");
        assert!(restart_needed(&started, &routes).is_empty());
        let changed = config("[log]\nlevel = \"debug\"\n[revocation]\nfetch_timeout = \"9s\"\n");
        assert_eq!(restart_needed(&started, &changed), ["revocation.options", "log"]);
    }

    #[test]
    fn the_files_the_configuration_names_are_watched() {
        let config = config("");
        let watched = watched(Path::new("/etc/spinegate/spinegate.toml"), Some(&config));
        for file in ["spinegate.toml", "tls/server.pem", "tls/server.key", "trust/nhs-root-ca.pem"] {
            assert!(watched.concerns(&Path::new("/etc/spinegate").join(file)), "{file}");
        }
        // The role directory file is polled by the directory, not watched for a reload.
        assert!(!watched.concerns(Path::new("/etc/spinegate/roles.toml")));
    }
}
