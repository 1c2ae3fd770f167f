//! # spinegate-guidance
//!
//! Guidance for people: refusals that say what happened, what to do now and who can help, in the
//! format the client asked for, and the signed-in user's identity page. It knows the reason table
//! (`spinegate-vocab`), role profiles (`spinegate-authz`) and `[guidance]` (`spinegate-config`);
//! it does no I/O on the request path and never sees a socket.
//!
//! ## Layout
//! - [`negotiate`]: `Accept` → [`Format`] (HTML page, FHIR `OperationOutcome`, problem+json).
//! - `text`: the built-in wording per refusal reason; `[guidance]` replaces parts of it.
//! - `template`: the escaping template language of the HTML pages.
//! - `refusal`: a refusal body in each format; [`response`]: a refusal as a whole response
//!   (status, `Retry-After`, `WWW-Authenticate`, close, page headers); `whoami`: the identity
//!   page.
//!
//! A [`Guidance`] is built from `[guidance]` with each configuration (templates read and parsed,
//! wording resolved), so a request only fills in values. Everything inserted into a page is
//! HTML-escaped, everything in a JSON body is JSON-escaped, and no page carries internal detail:
//! upstream addresses and error chains stay in the log.

pub mod negotiate;
mod refusal;
pub mod response;
mod template;
mod text;
mod whoami;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use spinegate_config::ContactKind;
use spinegate_vocab::Reason;

pub use negotiate::{Format, accept_of, negotiate};
pub use refusal::{Details, Refusal};
pub use response::{RefusalContext, page_headers, refusal_response, status_of};
pub use whoami::{TokenShown, WhoAmI};

use template::{Template, TemplateError};

/// The built-in refusal page layout.
pub(crate) const PAGE_TEMPLATE: &str = include_str!("templates/page.html");
/// The built-in identity page layout.
pub(crate) const WHOAMI_TEMPLATE: &str = include_str!("templates/whoami.html");

/// The request header that names the role profile a request acts in.
pub(crate) const SESSION_HEADER: &str = "NHSD-Session-URID";

/// Why `[guidance]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GuidanceError {
    /// The template directory or a template in it cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A template does not parse.
    #[error("{}: {source}", path.display())]
    Template {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: TemplateError,
    },
    /// A file in the template directory that is no template (a misspelt name would otherwise be
    /// ignored silently).
    #[error("{}: not a template name; the templates are page.html and whoami.html", path.display())]
    UnknownTemplate {
        /// The file.
        path: PathBuf,
    },
}

/// One reason's wording after `[[guidance.page]]` overrides.
#[derive(Clone, Debug)]
struct Wording {
    title: String,
    what_happened: Vec<String>,
    what_to_do: Vec<String>,
    who_can_help: Vec<ContactKind>,
}

/// Everything the pages need from one configuration, ready to fill in.
#[derive(Debug)]
pub struct Guidance {
    config: spinegate_config::Guidance,
    wording: HashMap<Reason, Wording>,
    page: Template,
    whoami: Template,
}

static BUILTIN: LazyLock<Guidance> = LazyLock::new(|| {
    Guidance::build(&spinegate_config::Guidance::default()).expect("the built-in templates parse (unit-tested)")
});

impl Guidance {
    /// Resolves the wording and reads and parses the templates `config` names.
    pub fn build(config: &spinegate_config::Guidance) -> Result<Self, GuidanceError> {
        let mut page = None;
        let mut whoami = None;
        if let Some(dir) = &config.template_dir {
            let read_err = |path: &Path| {
                let path = path.to_path_buf();
                move |source| GuidanceError::Read { path, source }
            };
            for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
                let path = entry.map_err(read_err(dir))?.path();
                let slot = match path.file_name().and_then(|n| n.to_str()) {
                    Some("page.html") => &mut page,
                    Some("whoami.html") => &mut whoami,
                    Some(name) if name.ends_with(".html") => return Err(GuidanceError::UnknownTemplate { path }),
                    // Other files (a README, editor backups, Kubernetes' `..data`) are not templates.
                    _ => continue,
                };
                let source = read_template(&path)?;
                *slot = Some(Template::parse(&source).map_err(|source| GuidanceError::Template { path, source })?);
            }
        }
        let builtin = |name: &str, source: &str| {
            Template::parse(source).map_err(|source| GuidanceError::Template { path: PathBuf::from(name), source })
        };
        let page = match page {
            Some(t) => t,
            None => builtin("built-in page.html", PAGE_TEMPLATE)?,
        };
        let whoami = match whoami {
            Some(t) => t,
            None => builtin("built-in whoami.html", WHOAMI_TEMPLATE)?,
        };
        let wording = Reason::ALL.iter().map(|&reason| (reason, wording(config, reason))).collect();
        Ok(Self { config: config.clone(), wording, page, whoami })
    }

    /// The built-in guidance (no `[guidance]` settings).
    pub fn builtin() -> &'static Guidance {
        &BUILTIN
    }

    /// Where the identity page is served.
    pub fn whoami_path(&self) -> &str {
        &self.config.whoami_path
    }

    fn wording(&self, reason: Reason) -> &Wording {
        // Invariant: `build` resolves every reason in `Reason::ALL`.
        &self.wording[&reason]
    }
}

fn read_template(path: &Path) -> Result<String, GuidanceError> {
    let bytes = std::fs::read(path).map_err(|source| GuidanceError::Read { path: path.to_path_buf(), source })?;
    String::from_utf8(bytes).map_err(|_| GuidanceError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
    })
}

fn wording(config: &spinegate_config::Guidance, reason: Reason) -> Wording {
    let builtin = text::builtin(reason);
    let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let custom = config.pages.get(&reason);
    Wording {
        title: custom.and_then(|c| c.title.clone()).unwrap_or_else(|| builtin.title.to_owned()),
        what_happened: custom.and_then(|c| c.what_happened.clone()).unwrap_or_else(|| owned(builtin.what_happened)),
        what_to_do: custom.and_then(|c| c.what_to_do.clone()).unwrap_or_else(|| owned(builtin.what_to_do)),
        who_can_help: custom.and_then(|c| c.who_can_help.clone()).unwrap_or_else(|| builtin.who_can_help.to_vec()),
    }
}

/// A date as people write it: `3 March 2026` (UTC).
pub(crate) fn human_date(unix: u64) -> String {
    let secs = i64::try_from(unix).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!("{} {} {}", t.day(), t.month(), t.year()),
        Err(_) => "an unknown date".to_owned(),
    }
}

/// A time as people write it: `14:05 (UTC) on 3 March 2026`.
pub(crate) fn human_time(unix: u64) -> String {
    let secs = i64::try_from(unix).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!("{:02}:{:02} (UTC) on {}", t.hour(), t.minute(), human_date(unix)),
        Err(_) => "an unknown time".to_owned(),
    }
}

/// Whole days in `secs`, as people say it: `29 days`, `1 day`, `less than a day`.
pub(crate) fn days(secs: u64) -> String {
    match secs / 86_400 {
        0 => "less than a day".to_owned(),
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    }
}

/// RFC 3339, for JSON.
fn rfc3339(unix: u64) -> Option<String> {
    let secs = i64::try_from(unix).ok()?;
    time::OffsetDateTime::from_unix_timestamp(secs).ok()?.format(&time::format_description::well_known::Rfc3339).ok()
}

/// A `tel:` URI for a number as written (`0113 496 0000` → `01134960000`).
fn phone_uri(phone: &str) -> String {
    phone.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect()
}

/// The contact list of a page.
fn contacts(config: &spinegate_config::Guidance, kinds: &[ContactKind]) -> Vec<template::Scope> {
    kinds
        .iter()
        .map(|&kind| {
            let c = config.contact(kind);
            let mut s = template::Scope::new();
            s.text("name", &c.name)
                .text("help_with", text::helps_with(kind))
                .opt("phone", c.phone.as_deref())
                .opt("phone_uri", c.phone.as_deref().map(phone_uri))
                .opt("email", c.email.as_deref())
                .opt("url", c.url.as_deref())
                .opt("hours", c.hours.as_deref())
                .opt("location", c.location.as_deref());
            s
        })
        .collect()
}

/// The values both pages share.
fn common_scope(config: &spinegate_config::Guidance, title: &str, request_id: &str) -> template::Scope {
    let mut s = template::Scope::new();
    s.text("lang", &config.language)
        .text("title", title)
        .opt("organisation", config.organisation.as_deref())
        .text("request_id", request_id)
        .text("whoami_path", &config.whoami_path)
        .text("registration_authority", &config.registration_authority.name)
        .text("hr", &config.hr.name)
        .text("service_desk", &config.service_desk.name);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_templates_parse() {
        let g = Guidance::build(&spinegate_config::Guidance::default()).unwrap();
        assert_eq!(g.whoami_path(), "/.spinegate/whoami");
        assert_eq!(g.wording.len(), Reason::ALL.len());
    }

    #[test]
    fn a_template_directory_replaces_layouts_and_refuses_strangers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("page.html"), "<p>{{title}} / {{request_id}}</p>").unwrap();
        std::fs::write(dir.path().join("README.txt"), "not a template").unwrap();
        let config = spinegate_config::Guidance { template_dir: Some(dir.path().to_path_buf()), ..Default::default() };
        let g = Guidance::build(&config).unwrap();
        assert_eq!(g.page.render(&common_scope(&g.config, "T<", "id")), "<p>T&lt; / id</p>");
        assert_eq!(g.whoami, Guidance::builtin().whoami, "whoami.html keeps the built-in layout");

        std::fs::write(dir.path().join("whoami.html"), "{{nonsense}}").unwrap();
        let err = Guidance::build(&config).unwrap_err().to_string();
        assert!(err.contains("whoami.html") && err.contains("line 1") && err.contains("unknown name"), "{err}");
        std::fs::remove_file(dir.path().join("whoami.html")).unwrap();
        std::fs::write(dir.path().join("pages.html"), "").unwrap();
        assert!(matches!(Guidance::build(&config), Err(GuidanceError::UnknownTemplate { .. })));

        let missing =
            spinegate_config::Guidance { template_dir: Some(dir.path().join("absent")), ..Default::default() };
        assert!(matches!(Guidance::build(&missing), Err(GuidanceError::Read { .. })));
    }

    #[test]
    fn dates_read_as_people_write_them() {
        assert_eq!(human_date(1_772_496_000), "3 March 2026");
        assert_eq!(human_time(1_772_496_000 + 14 * 3600 + 5 * 60), "14:05 (UTC) on 3 March 2026");
        assert_eq!(phone_uri("+44 (0)113 496-0000"), "+4401134960000");
    }
}
