//! `[log]`: the gateway's own log lines (the audit log is `[audit]`).

use serde::Deserialize;

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `tracing` filter directive; `RUST_LOG` overrides it.
    #[serde(default = "default_level")]
    pub level: String,
    /// `"json"` or `"text"`.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    /// `tracing` filter directive.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

impl Default for RawLog {
    fn default() -> Self {
        Self { level: default_level(), format: default_log_format() }
    }
}

fn default_level() -> String {
    "info".to_owned()
}
fn default_log_format() -> LogFormat {
    LogFormat::Json
}

/// `[log]`, validated: nothing to check (`tracing` reads the filter when it starts).
pub(crate) fn validate(raw: RawLog) -> Log {
    Log { level: raw.level, format: raw.format }
}
