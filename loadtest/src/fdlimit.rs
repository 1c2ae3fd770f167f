//! The loader's open-file limit. Every connection held is a file descriptor, so holding
//! thousands needs more than the usual soft limit of 1,024. The limit is read from
//! `/proc/self/limits` and raised with util-linux `prlimit` on the loader's own pid: the crate
//! forbids unsafe code and none of its dependencies offers `setrlimit` safely.

use std::process::Command;

/// The open-file limit (`u64::MAX` for unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit: what `open` and `accept` are held to.
    pub soft: u64,
    /// The hard limit: how far an unprivileged process may raise the soft one.
    pub hard: u64,
}

/// Why the loader cannot have enough open files.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    /// `/proc/self/limits` could not be read.
    #[error("reading /proc/self/limits")]
    Read(#[source] std::io::Error),
    /// It has no `Max open files` line with numbers.
    #[error("/proc/self/limits has no readable \"Max open files\" line")]
    Format,
    /// The limit is below what is needed and `prlimit` did not raise it.
    #[error(
        "{needed} open files are needed, the limit is {soft} (hard {hard}) and `prlimit` could not raise it: \
         run with `ulimit -n {needed}` or more"
    )]
    TooLow {
        /// Open files needed.
        needed: u64,
        /// The soft limit after trying.
        soft: u64,
        /// The hard limit after trying.
        hard: u64,
    },
}

/// The loader's open-file limit now.
pub fn open_files() -> Result<OpenFiles, FdLimitError> {
    let text = std::fs::read_to_string("/proc/self/limits").map_err(FdLimitError::Read)?;
    parse_limits(&text).ok_or(FdLimitError::Format)
}

/// Makes sure the loader may hold `needed` open files, raising its limit if it must (the hard
/// limit too when the loader has the privilege). Returns the limit in force.
pub fn ensure_open_files(needed: u64) -> Result<OpenFiles, FdLimitError> {
    let now = open_files()?;
    if now.soft >= needed {
        return Ok(now);
    }
    let hard = now.hard.max(needed);
    // A failure here shows in the limit read back, which is what matters.
    let _ = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={needed}:{}", limit_text(hard)))
        .stderr(std::process::Stdio::null())
        .status();
    let after = open_files()?;
    if after.soft >= needed {
        Ok(after)
    } else {
        Err(FdLimitError::TooLow { needed, soft: after.soft, hard: after.hard })
    }
}

/// The `Max open files` soft and hard limits from the text of `/proc/<pid>/limits`.
pub fn parse_limits(text: &str) -> Option<OpenFiles> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace().map(|v| match v {
        "unlimited" => Some(u64::MAX),
        number => number.parse().ok(),
    });
    Some(OpenFiles { soft: values.next()??, hard: values.next()?? })
}

fn limit_text(value: u64) -> String {
    if value == u64::MAX { "unlimited".to_owned() } else { value.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max cpu time              unlimited            unlimited            seconds   \n\
        Max open files            1024                 524288               files     \n\
        Max locked memory         8388608              8388608              bytes     \n";

    #[test]
    fn open_files_line_is_read() {
        assert_eq!(parse_limits(LIMITS), Some(OpenFiles { soft: 1024, hard: 524_288 }));
        let unlimited = LIMITS.replace("524288 ", "unlimited");
        assert_eq!(parse_limits(&unlimited), Some(OpenFiles { soft: 1024, hard: u64::MAX }));
        assert_eq!(parse_limits("Max cpu time unlimited unlimited seconds"), None);
        assert_eq!(parse_limits("Max open files  many  more  files"), None);
    }

    #[test]
    fn own_limit_is_readable_and_a_small_need_is_met() {
        let now = open_files().unwrap();
        assert!(now.soft <= now.hard);
        assert_eq!(ensure_open_files(16).unwrap(), now, "nothing to raise");
    }
}
