//! The audit log: one JSON line per access decision, allowed or refused, written by a dedicated
//! thread from a bounded queue so a slow disk never holds a request. A full queue drops the
//! record and counts it (`spinegate_audit_records_dropped_total`): the request is not delayed
//! and the loss is visible.
//!
//! A file is appended to with mode 0640, and reopened when it is moved away (log rotation) or
//! deleted: the writer compares the path's inode with the open file's every second.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use serde::Serialize;
use spinegate_config::Audit as AuditConfig;

use crate::metrics as m;

/// One decision.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AuditRecord {
    /// When, RFC 3339 UTC (the gateway clock's seconds).
    pub time: String,
    /// The request id (also in the access log and `X-Request-ID`); always the gateway's own.
    pub request_id: String,
    /// The client's id for the request (`X-Correlation-ID`, else its `X-Request-ID`).
    pub correlation_id: Option<String>,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// `ok`, or the refusal's reason code.
    pub reason: &'static str,
    /// The client's address.
    pub client: String,
    /// HTTP method.
    pub method: String,
    /// The canonical path judged and forwarded (without the query); for a path refused as
    /// `invalid_path`, the path as sent, cut to 512 bytes.
    pub path: Option<Box<str>>,
    /// The route, when one matched.
    pub route: Option<Arc<str>>,
    /// The Care Identity user id, once authenticated.
    pub user_id: Option<String>,
    /// `smartcard` or `token`.
    pub auth_method: Option<&'static str>,
    /// What the user authenticated with (`smartcard`, `security_key`, …).
    pub authenticator: Option<&'static str>,
    /// `AAL1`–`AAL3`.
    pub assurance: Option<&'static str>,
    /// The selected role profile id.
    pub role_profile: Option<Arc<str>>,
    /// Its role code.
    pub role_code: Option<Arc<str>>,
    /// The selected role's organisation.
    pub organisation: Option<Arc<str>>,
    /// The organisation the request named (path or `NHSD-End-User-Organisation-ODS`).
    pub requested_organisation: Option<String>,
    /// The NHS number the path or query carries, when it does.
    pub patient: Option<String>,
}

enum Message {
    Record(Box<AuditRecord>),
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Where records go.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Sink {
    Stdout,
    File(PathBuf),
}

/// The audit log's sending side.
#[derive(Debug)]
pub struct Audit {
    sender: SyncSender<Message>,
    target: Sink,
}

impl Audit {
    /// Opens the file (or standard output) and starts the writer thread.
    pub fn start(config: &AuditConfig) -> io::Result<Self> {
        let target = config.file.clone().map_or(Sink::Stdout, Sink::File);
        let out = Output::open(&target)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(config.queue.get());
        std::thread::Builder::new().name("spinegate-audit".into()).spawn(move || write_loop(receiver, out))?;
        Ok(Self { sender, target })
    }

    /// Queues a record; never waits. A full queue drops it (counted, and logged at most once a
    /// second by the metrics, not per record).
    pub fn record(&self, record: AuditRecord) {
        match self.sender.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => metrics::counter!(m::AUDIT_DROPPED).increment(1),
            Err(TrySendError::Disconnected(_)) => metrics::counter!(m::AUDIT_WRITE_ERRORS).increment(1),
        }
    }

    /// Waits (at most `deadline`) until everything queued before this call is written and flushed.
    pub fn flush(&self, deadline: Duration) -> bool {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        // A blocking send: flushing is for shutdown and tests, never the request path.
        if self.sender.send(Message::Flush(done)).is_err() {
            return false;
        }
        wait.recv_timeout(deadline).is_ok()
    }

    /// The file written to, when not standard output.
    pub fn file(&self) -> Option<&Path> {
        match &self.target {
            Sink::File(p) => Some(p),
            Sink::Stdout => None,
        }
    }
}

struct Output {
    target: Sink,
    writer: BufWriter<Box<dyn Write + Send>>,
    inode: Option<u64>,
}

impl Output {
    fn open(target: &Sink) -> io::Result<Self> {
        let (writer, inode): (Box<dyn Write + Send>, _) = match target {
            Sink::Stdout => (Box::new(io::stdout()), None),
            Sink::File(path) => {
                let file = open_append(path)?;
                let inode = inode_of_file(&file);
                (Box::new(file), inode)
            }
        };
        Ok(Self { target: target.clone(), writer: BufWriter::with_capacity(64 * 1024, writer), inode })
    }

    /// Reopens the file when the path no longer names the open file (rotated or removed).
    fn reopen_if_moved(&mut self) {
        let Sink::File(path) = &self.target else { return };
        let current = std::fs::metadata(path).ok().and_then(|m| inode_of_meta(&m));
        if current.is_some() && current == self.inode {
            return;
        }
        let path = path.clone();
        match Output::open(&self.target) {
            Ok(fresh) => {
                let _ = self.writer.flush();
                *self = fresh;
                tracing::info!(path = %path.display(), "audit log reopened");
            }
            Err(e) => {
                metrics::counter!(m::AUDIT_WRITE_ERRORS).increment(1);
                tracing::error!(path = %path.display(), error = %e, "audit log cannot be reopened");
            }
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    options.open(path)
}

#[cfg(unix)]
fn inode_of_meta(meta: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(meta.ino())
}

#[cfg(not(unix))]
fn inode_of_meta(_: &std::fs::Metadata) -> Option<u64> {
    None
}

fn inode_of_file(file: &File) -> Option<u64> {
    file.metadata().ok().and_then(|m| inode_of_meta(&m))
}

/// After writing a batch the writer rests this long before looking again. Records sent while it
/// rests queue without waking it, so under load the writer wakes about fifty times a second
/// instead of once per request (each wake is a context switch on the request path's cores); a
/// record still reaches the file within about this long.
const BATCH_PAUSE: Duration = Duration::from_millis(20);

fn write_loop(receiver: Receiver<Message>, mut out: Output) {
    let mut line = Vec::with_capacity(1024);
    let mut checked = std::time::Instant::now();
    loop {
        match receiver.recv_timeout(Duration::from_secs(1)) {
            Ok(message) => {
                let mut written = u64::from(handle(message, &mut out, &mut line));
                // Batch what is already queued; flush once the queue is empty.
                while let Ok(next) = receiver.try_recv() {
                    written += u64::from(handle(next, &mut out, &mut line));
                }
                if out.writer.flush().is_err() {
                    metrics::counter!(m::AUDIT_WRITE_ERRORS).increment(1);
                }
                metrics::counter!(m::AUDIT_RECORDS).increment(written);
                std::thread::sleep(BATCH_PAUSE);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if checked.elapsed() >= Duration::from_secs(1) {
            checked = std::time::Instant::now();
            out.reopen_if_moved();
        }
    }
    let _ = out.writer.flush();
}

/// Writes one message; true when it was a record and it was written.
fn handle(message: Message, out: &mut Output, line: &mut Vec<u8>) -> bool {
    match message {
        Message::Record(record) => {
            line.clear();
            if serde_json::to_writer(&mut *line, &record).is_err() {
                return false;
            }
            line.push(b'\n');
            if out.writer.write_all(line).is_err() {
                metrics::counter!(m::AUDIT_WRITE_ERRORS).increment(1);
                return false;
            }
            true
        }
        Message::Flush(done) => {
            if out.writer.flush().is_err() {
                metrics::counter!(m::AUDIT_WRITE_ERRORS).increment(1);
            }
            let _ = done.send(());
            false
        }
    }
}

/// The NHS number a request's canonical path or query carries: a path segment of ten digits
/// with a valid modulus-11 check digit (`;` parameters aside), or an `identifier` query value
/// ending `|<NHS number>`.
pub(crate) fn patient_in(path: &str, query: Option<&str>) -> Option<String> {
    if let Some(found) = path.split('/').map(|s| s.split(';').next().unwrap_or(s)).find(|s| is_nhs_number(s)) {
        return Some(found.to_owned());
    }
    query.unwrap_or("").split('&').filter_map(|pair| pair.split_once('=')).find_map(|(key, value)| {
        if key != "identifier" && key != "patient.identifier" {
            return None;
        }
        let number =
            value.rsplit_once('|').or_else(|| value.rsplit_once("%7C")).or_else(|| value.rsplit_once("%7c"))?.1;
        is_nhs_number(number).then(|| number.to_owned())
    })
}

/// Ten digits whose last is the modulus-11 check digit of the first nine.
pub(crate) fn is_nhs_number(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..9].iter().zip((2..=10).rev()).map(|(d, w)| u32::from(d - b'0') * w).sum();
    let check = 11 - sum % 11;
    let check = if check == 11 { 0 } else { check };
    check != 10 && check == u32::from(b[9] - b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_numbers_are_found_in_paths_and_identifier_queries() {
        assert!(is_nhs_number("9000000009"));
        assert!(!is_nhs_number("9000000008"), "check digit");
        assert!(!is_nhs_number("900000000"), "length");
        assert_eq!(patient_in("/Patient/9000000009", None), Some("9000000009".into()));
        assert_eq!(patient_in("/Patient/9000000009;v=1", None), Some("9000000009".into()));
        assert_eq!(patient_in("/Patient/9000000008", None), None);
        assert_eq!(
            patient_in("/Patient", Some("identifier=https://fhir.nhs.uk/Id/nhs-number%7C9000000017")),
            Some("9000000017".into())
        );
        assert_eq!(
            patient_in("/Patient", Some("identifier=https://fhir.nhs.uk/Id/nhs-number|9000000017")),
            Some("9000000017".into())
        );
        assert_eq!(patient_in("/metadata", None), None);
    }

    #[test]
    fn records_are_written_as_json_lines_and_the_file_is_reopened_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit =
            Audit::start(&AuditConfig { file: Some(path.clone()), queue: std::num::NonZeroUsize::new(16).unwrap() })
                .unwrap();
        let record = |id: &str| AuditRecord {
            time: "2026-11-29T12:00:00Z".into(),
            request_id: id.into(),
            correlation_id: None,
            decision: "allow",
            reason: "ok",
            client: "127.0.0.1".into(),
            method: "GET".into(),
            path: Some("/Patient/9000000009".into()),
            route: Some("patient".into()),
            user_id: Some("555000000001".into()),
            auth_method: Some("smartcard"),
            authenticator: Some("smartcard"),
            assurance: Some("AAL3"),
            role_profile: Some("555254242101".into()),
            role_code: Some("S8000:G8000:R8000".into()),
            organisation: Some("A81001".into()),
            requested_organisation: None,
            patient: Some("9000000009".into()),
        };
        audit.record(record("r1"));
        assert!(audit.flush(Duration::from_secs(5)));
        let text = std::fs::read_to_string(&path).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["request_id"], "r1");
        assert_eq!(line["patient"], "9000000009");
        assert_eq!(line["requested_organisation"], serde_json::Value::Null);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        }

        // Rotation: the file is moved away; within the writer's one-second check, new records go
        // to a new file at the path.
        std::fs::rename(&path, dir.path().join("audit.jsonl.1")).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        while !path.exists() && std::time::Instant::now() < deadline {
            n += 1;
            audit.record(record(&format!("r{}", n + 1)));
            audit.flush(Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(path.exists(), "the audit log was not reopened after rotation");
    }
}
