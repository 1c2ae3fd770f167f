//! The server's CPU time and memory, from `/proc/<pid>/stat` and `/proc/<pid>/status`, so
//! results can be given per server core-second: the fair figure when the loader shares the
//! machine.

use std::path::Path;

use serde::Serialize;

/// CPU time of a set of processes, in clock ticks (user + system, all threads).
pub fn cpu_ticks(pids: &[u32]) -> std::io::Result<u64> {
    let mut total = 0;
    for pid in pids {
        let path = format!("/proc/{pid}/stat");
        let text = std::fs::read_to_string(&path)?;
        total += parse_stat_ticks(&text).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{path}: unexpected format"))
        })?;
    }
    Ok(total)
}

/// utime + stime from the text of `/proc/<pid>/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from its closing parenthesis.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on, used if
/// `getconf` is missing).
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// Resident memory of a set of processes, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Resident set size now, KiB.
    pub vm_rss_kib: u64,
    /// Peak resident set size, KiB.
    pub vm_hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of each process and sums them.
pub fn memory(pids: &[u32]) -> std::io::Result<Memory> {
    let mut total = Memory::default();
    for pid in pids {
        let m = parse_status(&std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))?);
        total.vm_rss_kib += m.vm_rss_kib;
        total.vm_hwm_kib += m.vm_hwm_kib;
    }
    Ok(total)
}

/// `VmRSS` and `VmHWM` from the text of `/proc/<pid>/status` (0 when absent).
pub fn parse_status(text: &str) -> Memory {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory { vm_rss_kib: field("VmRSS:"), vm_hwm_kib: field("VmHWM:") }
}

/// The machine, for reports: CPU count and model, kernel.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads `/proc/cpuinfo` and `/proc/sys/kernel/osrelease`.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
            .unwrap_or("unknown")
            .to_owned();
        let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count().max(1);
        let kernel =
            std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()).unwrap_or_default();
        Self { cpus, cpu_model, kernel }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_survive_odd_command_names() {
        let text = "4242 (nginx: worker (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 1 0 99 0 0";
        assert_eq!(parse_stat_ticks(text), Some(1234 + 567));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (a) S 1 2"), None);
    }

    #[test]
    fn own_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        assert!(cpu_ticks(&[me]).is_ok());
        let m = memory(&[me]).unwrap();
        assert!(m.vm_rss_kib > 0 && m.vm_hwm_kib >= m.vm_rss_kib);
        assert!(ticks_per_second() > 0);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let m = parse_status("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n");
        assert_eq!(m, Memory { vm_rss_kib: 1024, vm_hwm_kib: 2048 });
    }
}
