//! Configuration errors, always with a place to look.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// Where in the file an error is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file, when the text came from one.
    pub file: Option<PathBuf>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    /// Converts a byte span of `text` to a line and column.
    pub fn of_span(text: &str, span: &Range<usize>, file: Option<PathBuf>) -> Self {
        let start = span.start.min(text.len());
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { file, line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{}:{}", file.display(), self.line, self.column),
            None => write!(f, "line {}, column {}", self.line, self.column),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, or does not fit the schema (unknown field, wrong type, bad
    /// duration …).
    #[error("{location}: {message}")]
    Syntax {
        /// Where.
        location: Location,
        /// What the parser said.
        message: String,
    },
    /// Well-formed, but inconsistent (a route names an upstream that does not exist …).
    #[error("{location}: {message}")]
    Invalid {
        /// Where.
        location: Location,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Well-formed, but inconsistent in a way that has no single place in the file.
    #[error("{}: {message}", file.as_ref().map_or_else(|| "configuration".to_owned(), |f| f.display().to_string()))]
    Global {
        /// The file.
        file: Option<PathBuf>,
        /// What is wrong.
        message: String,
    },
}
