//! What every section's parsing shares, below all of them: the validation context [`Ctx`] that
//! turns a span into an error with file, line and column, [`HumanDuration`], and the helpers
//! serde defaults are written with. No section is named here.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::error::{ConfigError, Location};

/// A duration written as `"30s"`, `"5m"`, `"90d"` (humantime syntax).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(HumanDuration).map_err(|e| {
            serde::de::Error::custom(format!("invalid duration {text:?}: {e} (write e.g. \"30s\", \"5m\", \"90d\")"))
        })
    }
}

/// Carries the text and file name so every check can point at its span.
pub(crate) struct Ctx<'a> {
    text: &'a str,
    origin: Option<&'a Path>,
    base: &'a Path,
}

impl<'a> Ctx<'a> {
    /// A context for `text`, read from `origin`, with relative paths resolved against `base`.
    pub(crate) fn new(text: &'a str, origin: Option<&'a Path>, base: &'a Path) -> Self {
        Self { text, origin, base }
    }
}

impl Ctx<'_> {
    /// An error at `span`.
    pub(crate) fn invalid(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        // Defaults carry the empty span 0..0; point at the file start for them.
        ConfigError::Invalid {
            location: Location::of_span(self.text, &span, self.origin.map(Path::to_path_buf)),
            message: message.into(),
        }
    }

    /// An error with no single place in the file.
    pub(crate) fn global(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Global { file: self.origin.map(Path::to_path_buf), message: message.into() }
    }

    /// A path, made absolute against the file's directory.
    pub(crate) fn path(&self, p: &Spanned<String>) -> Result<PathBuf, ConfigError> {
        if p.get_ref().trim().is_empty() {
            return Err(self.invalid(p.span(), "path is empty"));
        }
        let path = Path::new(p.get_ref());
        Ok(if path.is_absolute() { path.to_path_buf() } else { self.base.join(path) })
    }

    /// Every path of a list, as [`Ctx::path`] reads one.
    pub(crate) fn paths<'p>(
        &self,
        list: impl IntoIterator<Item = &'p Spanned<String>>,
    ) -> Result<Vec<PathBuf>, ConfigError> {
        list.into_iter().map(|p| self.path(p)).collect()
    }

    /// A socket address such as `0.0.0.0:8443`.
    pub(crate) fn addr(&self, s: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
        s.get_ref().parse().map_err(|e| {
            self.invalid(
                s.span(),
                format!("{:?} is not a socket address (write e.g. \"0.0.0.0:8443\"): {e}", s.get_ref()),
            )
        })
    }

    /// A count of at least 1.
    pub(crate) fn nonzero(&self, n: &Spanned<u64>, what: &str) -> Result<NonZeroUsize, ConfigError> {
        usize::try_from(*n.get_ref())
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(|| self.invalid(n.span(), format!("{what} must be at least 1")))
    }

    /// A timeout that must not be zero: zero would close every connection at once (or, read as
    /// "no limit", leave it unbounded, which is what these settings exist to prevent).
    pub(crate) fn positive(&self, d: &HumanDuration, what: &str) -> Result<Duration, ConfigError> {
        if d.0.is_zero() {
            return Err(self.global(format!("{what} must be longer than 0s")));
        }
        Ok(d.0)
    }
}

/// The TOML `text` read into `T`, or a syntax error with its place.
pub(crate) fn from_toml<T: DeserializeOwned>(text: &str, origin: Option<&Path>) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        location: Location::of_span(text, &e.span().unwrap_or(0..0), origin.map(Path::to_path_buf)),
        message: e.message().trim().to_owned(),
    })
}

/// A default value: it has no place in the file, so it carries the empty span `0..0`.
pub(crate) fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// `n` seconds.
pub(crate) fn secs(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(n))
}

/// The default of switches that are on unless turned off.
pub(crate) fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use crate::testing::MINIMAL;

    #[test]
    fn bad_duration_is_refused_at_its_place() {
        let text = MINIMAL.replace("name = \"pds\"", "name = \"pds\"\nconnect_timeout = \"soon\"");
        let err = crate::testing::parse(&text).unwrap_err().to_string();
        assert!(err.contains("invalid duration \"soon\""), "{err}");
    }
}
