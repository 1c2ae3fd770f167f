//! `[guidance]`: what the refusal pages and `/.spinegate/whoami` tell people — the deployment's
//! organisation, who to contact (Registration Authority, HR, service desk), per-reason wording,
//! and a directory of templates replacing the built-in page layouts — as written, validated.
//!
//! Wording is plain text, never HTML: the gateway escapes everything it inserts, so an override
//! cannot add markup. Text may name values with `{placeholder}` ([`PLACEHOLDERS`]); a paragraph
//! whose placeholder has no value for a request is left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spinegate_vocab::Reason;
use toml::Spanned;

use crate::error::ConfigError;
use crate::syntax::Ctx;

/// The values page text may name as `{name}`.
pub const PLACEHOLDERS: &[&str] = &[
    "organisation",
    "registration_authority",
    "hr",
    "service_desk",
    "not_after",
    "not_before",
    "days_left",
    "requested_role",
    "requested_organisation",
    "role",
    "role_organisation",
    "role_code",
    "retry_after",
    "request_id",
];

/// The contacts a page may list under "who can help", by their configuration names.
pub const CONTACTS: &[&str] = &["registration_authority", "hr", "service_desk"];

/// Longest accepted text value, in characters: these are sentences, not documents.
const MAX_TEXT: usize = 2000;

/// `[guidance]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuidance {
    /// The deployment's organisation, named on pages.
    pub organisation: Option<Spanned<String>>,
    /// The pages' `lang` (BCP 47).
    pub language: Option<Spanned<String>>,
    /// A directory whose `page.html` and/or `whoami.html` replace the built-in templates.
    pub template_dir: Option<Spanned<String>>,
    /// Where the signed-in user's identity page is served on client listeners.
    pub whoami_path: Option<Spanned<String>>,
    /// `[guidance.registration_authority]`.
    pub registration_authority: Option<Spanned<RawContact>>,
    /// `[guidance.hr]`.
    pub hr: Option<Spanned<RawContact>>,
    /// `[guidance.service_desk]`.
    pub service_desk: Option<Spanned<RawContact>>,
    /// `[[guidance.page]]`: per-reason wording.
    #[serde(default)]
    pub page: Vec<Spanned<RawPage>>,
}

/// `[guidance.registration_authority]`, `[guidance.hr]`, `[guidance.service_desk]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContact {
    /// How pages name the contact.
    pub name: Option<Spanned<String>>,
    /// Telephone number.
    pub phone: Option<Spanned<String>>,
    /// Email address.
    pub email: Option<Spanned<String>>,
    /// An `https://` page (e.g. a self-service portal or the team's intranet page).
    pub url: Option<Spanned<String>>,
    /// Opening hours.
    pub hours: Option<Spanned<String>>,
    /// Where to go in person.
    pub location: Option<Spanned<String>>,
}

/// `[[guidance.page]]`: replaces parts of one reason's wording; unset keys keep the built-in text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPage {
    /// The reason code.
    pub reason: Spanned<String>,
    /// Heading (and page title).
    pub title: Option<Spanned<String>>,
    /// Paragraphs saying what happened.
    pub what_happened: Option<Vec<Spanned<String>>>,
    /// Steps saying what to do now.
    pub what_to_do: Option<Vec<Spanned<String>>>,
    /// Contacts listed under "who can help", by name.
    pub who_can_help: Option<Spanned<Vec<String>>>,
}

/// `[guidance]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guidance {
    /// The deployment's organisation, when given.
    pub organisation: Option<String>,
    /// The pages' `lang`.
    pub language: String,
    /// Template overrides directory.
    pub template_dir: Option<PathBuf>,
    /// Path of the identity page.
    pub whoami_path: String,
    /// The Registration Authority.
    pub registration_authority: Contact,
    /// Human resources.
    pub hr: Contact,
    /// The local IT service desk.
    pub service_desk: Contact,
    /// Wording overrides by reason code.
    pub pages: BTreeMap<Reason, PageText>,
}

impl Default for Guidance {
    fn default() -> Self {
        Self {
            organisation: None,
            language: "en-GB".into(),
            template_dir: None,
            whoami_path: DEFAULT_WHOAMI_PATH.into(),
            registration_authority: Contact::named("your Registration Authority"),
            hr: Contact::named("your HR department"),
            service_desk: Contact::named("your local IT service desk"),
            pages: BTreeMap::new(),
        }
    }
}

/// The default identity page path.
pub const DEFAULT_WHOAMI_PATH: &str = "/.spinegate/whoami";

impl Guidance {
    /// The contact by its configuration name ([`CONTACTS`]).
    pub fn contact(&self, kind: ContactKind) -> &Contact {
        match kind {
            ContactKind::RegistrationAuthority => &self.registration_authority,
            ContactKind::Hr => &self.hr,
            ContactKind::ServiceDesk => &self.service_desk,
        }
    }

    /// The directories a reload depends on, every file in them: the template directory, if any.
    pub fn file_dirs(&self) -> impl Iterator<Item = &Path> {
        self.template_dir.as_deref().into_iter()
    }
}

/// Who can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContactKind {
    /// The Registration Authority: cards, certificates, role profiles.
    RegistrationAuthority,
    /// Human resources: starters, leavers, lost cards.
    Hr,
    /// The local IT service desk: equipment, systems, outages.
    ServiceDesk,
}

impl ContactKind {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKind::RegistrationAuthority => "registration_authority",
            ContactKind::Hr => "hr",
            ContactKind::ServiceDesk => "service_desk",
        }
    }

    /// By configuration name.
    pub fn from_name(name: &str) -> Option<Self> {
        [ContactKind::RegistrationAuthority, ContactKind::Hr, ContactKind::ServiceDesk]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// A contact's details; only `name` is always present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    /// How pages name it.
    pub name: String,
    /// Telephone.
    pub phone: Option<String>,
    /// Email address (checked to be one plain address).
    pub email: Option<String>,
    /// `https://` URL.
    pub url: Option<String>,
    /// Opening hours.
    pub hours: Option<String>,
    /// Where to go in person.
    pub location: Option<String>,
}

impl Contact {
    fn named(name: &str) -> Self {
        Self { name: name.into(), ..Self::default() }
    }
}

/// One reason's wording overrides (plain text with `{placeholders}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageText {
    /// Heading.
    pub title: Option<String>,
    /// What happened.
    pub what_happened: Option<Vec<String>>,
    /// What to do now.
    pub what_to_do: Option<Vec<String>>,
    /// Who can help.
    pub who_can_help: Option<Vec<ContactKind>>,
}

/// The placeholder names in `text`, or why it is not valid page text: `{name}` names a value,
/// `{{` and `}}` are literal braces.
pub fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        let (brace, after) = (rest.as_bytes()[i], &rest[i + 1..]);
        if let Some(tail) = after.strip_prefix(brace as char) {
            rest = tail;
            continue;
        }
        if brace == b'}' {
            return Err("a lone `}` (write `}}` for a literal brace)".into());
        }
        let end = after.find('}').ok_or("a `{` without its `}` (write `{{` for a literal brace)")?;
        let name = &after[..end];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("unknown placeholder {{{name}}}; known: {}", PLACEHOLDERS.join(", ")));
        }
        out.push(name);
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// `[guidance]`, validated. `logout_path` is `[tokens]`'s back-channel logout path, which the
/// identity page must not take.
pub(crate) fn validate(ctx: &Ctx<'_>, raw: &RawGuidance, logout_path: &str) -> Result<Guidance, ConfigError> {
    let defaults = Guidance::default();
    let organisation = raw.organisation.as_ref().map(|o| plain(ctx, o, 200)).transpose()?;
    let language = match &raw.language {
        None => defaults.language,
        Some(l) => {
            let tag = l.get_ref();
            let ok = (2..=35).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(ctx.invalid(l.span(), format!("{tag:?} is not a language tag (write e.g. \"en-GB\")")));
            }
            tag.clone()
        }
    };
    let whoami_path = match &raw.whoami_path {
        None => defaults.whoami_path,
        Some(p) => {
            let path = p.get_ref();
            if !path.starts_with('/')
                || path.len() < 2
                || path.bytes().any(|b| !b.is_ascii_graphic() || b"?#%".contains(&b))
            {
                return Err(
                    ctx.invalid(p.span(), "whoami_path must be a plain absolute path such as \"/.spinegate/whoami\"")
                );
            }
            if path == logout_path {
                return Err(ctx.invalid(p.span(), "whoami_path is the back-channel logout path"));
            }
            path.clone()
        }
    };
    let contact = |raw: &Option<Spanned<RawContact>>, default: Contact| match raw {
        None => Ok(default),
        Some(c) => self::contact(ctx, c.get_ref(), default),
    };
    let mut pages = BTreeMap::new();
    for page in &raw.page {
        let p = page.get_ref();
        let name = p.reason.get_ref();
        let reason = Reason::from_code(name).ok_or_else(|| {
            let known: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
            ctx.invalid(p.reason.span(), format!("{name:?} is not a reason code; known: {}", known.join(", ")))
        })?;
        let texts = |list: &Option<Vec<Spanned<String>>>| {
            list.as_ref().map(|l| l.iter().map(|t| text(ctx, t)).collect::<Result<Vec<_>, _>>()).transpose()
        };
        let who_can_help = match &p.who_can_help {
            None => None,
            Some(list) => {
                let mut kinds = Vec::new();
                for name in list.get_ref() {
                    let kind = ContactKind::from_name(name).ok_or_else(|| {
                        ctx.invalid(list.span(), format!("{name:?} is not a contact; use {}", CONTACTS.join(", ")))
                    })?;
                    if kinds.contains(&kind) {
                        return Err(ctx.invalid(list.span(), format!("{name:?} is listed twice")));
                    }
                    kinds.push(kind);
                }
                Some(kinds)
            }
        };
        let text = PageText {
            title: p.title.as_ref().map(|t| text(ctx, t)).transpose()?,
            what_happened: texts(&p.what_happened)?,
            what_to_do: texts(&p.what_to_do)?,
            who_can_help,
        };
        if pages.insert(reason, text).is_some() {
            return Err(ctx.invalid(page.span(), format!("reason {name:?} has two [[guidance.page]] entries")));
        }
    }
    Ok(Guidance {
        organisation,
        language,
        template_dir: raw.template_dir.as_ref().map(|d| ctx.path(d)).transpose()?,
        whoami_path,
        registration_authority: contact(&raw.registration_authority, defaults.registration_authority)?,
        hr: contact(&raw.hr, defaults.hr)?,
        service_desk: contact(&raw.service_desk, defaults.service_desk)?,
        pages,
    })
}

fn contact(ctx: &Ctx<'_>, raw: &RawContact, default: Contact) -> Result<Contact, ConfigError> {
    let field = |f: &Option<Spanned<String>>| f.as_ref().map(|v| plain(ctx, v, 300)).transpose();
    let email = match &raw.email {
        None => None,
        Some(e) => {
            let v = e.get_ref();
            let ok = v.len() <= 254
                && v.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
                && v.bytes().filter(|b| *b == b'@').count() == 1
                && v.bytes().all(|b| b.is_ascii_graphic() && !b"\"'<>()[]\\,;:".contains(&b));
            if !ok {
                return Err(ctx.invalid(e.span(), format!("{v:?} is not a plain email address")));
            }
            Some(v.clone())
        }
    };
    let url = match &raw.url {
        None => None,
        Some(u) => {
            let v = u.get_ref();
            let ok = v.len() <= 500
                && v.strip_prefix("https://").is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
                && v.bytes().all(|b| b.is_ascii_graphic() && !b"\"'<>\\`".contains(&b));
            if !ok {
                return Err(ctx.invalid(u.span(), format!("{v:?} is not an https:// URL")));
            }
            Some(v.clone())
        }
    };
    let phone = match &raw.phone {
        None => None,
        Some(p) => {
            let v = p.get_ref();
            let ok = !v.trim().is_empty()
                && v.len() <= 40
                && v.chars().all(|c| c.is_ascii_digit() || " +()-.".contains(c) || c.is_ascii_alphabetic());
            if !ok {
                return Err(ctx.invalid(p.span(), format!("{v:?} is not a telephone number")));
            }
            Some(v.clone())
        }
    };
    Ok(Contact {
        name: field(&raw.name)?.unwrap_or(default.name),
        phone,
        email,
        url,
        hours: field(&raw.hours)?,
        location: field(&raw.location)?,
    })
}

/// Plain text without placeholders (contact details, the organisation's name).
fn plain(ctx: &Ctx<'_>, value: &Spanned<String>, max: usize) -> Result<String, ConfigError> {
    let v = value.get_ref();
    if v.trim().is_empty() {
        return Err(ctx.invalid(value.span(), "is empty"));
    }
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ctx.invalid(value.span(), format!("must be one line of at most {max} characters")));
    }
    Ok(v.clone())
}

/// Page text: one paragraph or step, with known placeholders.
fn text(ctx: &Ctx<'_>, value: &Spanned<String>) -> Result<String, ConfigError> {
    let v = value.get_ref();
    if v.trim().is_empty() {
        return Err(ctx.invalid(value.span(), "is empty"));
    }
    if v.chars().count() > MAX_TEXT || v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ctx.invalid(value.span(), format!("must be text of at most {MAX_TEXT} characters")));
    }
    placeholders(v).map_err(|e| ctx.invalid(value.span(), e))?;
    Ok(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CertificateProblems;
    use crate::testing::{MINIMAL, parse_with as parse};

    /// The error for `extra`, with the 1-based line of the file it points at.
    fn refused(extra: &str) -> (String, usize) {
        match parse(extra).unwrap_err() {
            ConfigError::Invalid { location, message } => (message, location.line),
            other => (other.to_string(), 0),
        }
    }

    fn line_of(extra: &str, needle: &str) -> usize {
        let text = format!("{MINIMAL}\n{extra}");
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn defaults_explain_and_use_the_built_in_words() {
        let c = parse("").unwrap();
        assert_eq!(c.listeners[0].certificate_problems, CertificateProblems::Explain);
        assert_eq!(c.guidance, Guidance::default());
        assert_eq!(c.guidance.whoami_path, "/.spinegate/whoami");
        assert_eq!(c.guidance.registration_authority.name, "your Registration Authority");
        let alert = MINIMAL.replace("name = \"clinical\"", "name = \"clinical\"\ncertificate_problems = \"alert\"");
        let c = crate::parse(&alert, None, Path::new("/")).unwrap();
        assert_eq!(c.listeners[0].certificate_problems, CertificateProblems::Alert);
    }

    #[test]
    fn contacts_and_pages_are_read() {
        let c = parse(
            "[guidance]\norganisation = \"Leeds\"\ntemplate_dir = \"pages\"\n\
             [guidance.hr]\nname = \"People Services\"\nphone = \"+44 (0)113 496 0001\"\nurl = \"https://hr.example.nhs.uk/lost-card\"\n\
             [[guidance.page]]\nreason = \"certificate_revoked\"\nwhat_to_do = [\"Ring {hr}.\", \"Literal {{braces}}.\"]\nwho_can_help = [\"hr\"]\n",
        )
        .unwrap();
        let g = &c.guidance;
        assert_eq!(g.organisation.as_deref(), Some("Leeds"));
        assert_eq!(g.template_dir.as_deref(), Some(Path::new("/etc/spinegate/pages")));
        assert_eq!(g.contact(ContactKind::Hr).url.as_deref(), Some("https://hr.example.nhs.uk/lost-card"));
        assert_eq!(g.service_desk.name, "your local IT service desk", "unset contacts keep their defaults");
        let page = &g.pages[&Reason::CertificateRevoked];
        assert_eq!(page.what_to_do.as_deref().map(<[String]>::len), Some(2));
        assert_eq!(page.who_can_help.as_deref(), Some(&[ContactKind::Hr][..]));
        assert!(page.title.is_none() && page.what_happened.is_none());
    }

    #[test]
    fn bad_guidance_is_refused_at_its_place() {
        let cases = [
            ("[[guidance.page]]\nreason = \"card_melted\"\n", "card_melted", "not a reason code"),
            (
                "[[guidance.page]]\nreason = \"overloaded\"\ntitle = \"Wait {minutes}\"\n",
                "Wait {minutes}",
                "unknown placeholder {minutes}",
            ),
            ("[[guidance.page]]\nreason = \"overloaded\"\nwhat_to_do = [\"a } b\"]\n", "a } b", "lone `}`"),
            ("[[guidance.page]]\nreason = \"overloaded\"\nwho_can_help = [\"police\"]\n", "police", "not a contact"),
            ("[guidance.hr]\nemail = \"hr@example.nhs.uk<script>\"\n", "<script>", "not a plain email"),
            ("[guidance.hr]\nurl = \"javascript:alert(1)\"\n", "javascript", "not an https:// URL"),
            ("[guidance.hr]\nurl = \"http://hr.example\"\n", "http://hr", "not an https:// URL"),
            ("[guidance.hr]\nphone = \"0113<b>\"\n", "0113<b>", "not a telephone number"),
            ("[guidance.hr]\nname = \"\"\n", "name = \"\"", "is empty"),
            ("[guidance]\norganisation = \"two\\nlines\"\n", "two", "one line"),
            ("[guidance]\nlanguage = \"en GB\"\n", "en GB", "language tag"),
            ("[guidance]\nwhoami_path = \"whoami\"\n", "whoami", "plain absolute path"),
            ("[guidance]\nwhoami_path = \"/.spinegate/backchannel-logout\"\n", "backchannel", "logout path"),
        ];
        for (extra, at, message) in cases {
            let (got, line) = refused(extra);
            assert!(got.contains(message), "{extra:?}: {got}");
            assert_eq!(line, line_of(extra, at), "{extra:?}: {got}");
        }
        let twice = "[[guidance.page]]\nreason = \"overloaded\"\n[[guidance.page]]\nreason = \"overloaded\"\n";
        assert!(refused(twice).0.contains("two [[guidance.page]] entries"));
        assert!(parse("[guidance]\ncolour = \"blue\"\n").unwrap_err().to_string().contains("colour"));
        let bad_mode = MINIMAL.replace("name = \"clinical\"", "name = \"clinical\"\ncertificate_problems = \"ignore\"");
        assert!(crate::parse(&bad_mode, None, Path::new("/")).unwrap_err().to_string().contains("ignore"));
    }

    #[test]
    fn placeholders_are_named_and_braces_escaped() {
        assert_eq!(
            placeholders("It expired on {not_after}; ask {registration_authority}."),
            Ok(vec!["not_after", "registration_authority"])
        );
        assert_eq!(placeholders("literal {{braces}} stay"), Ok(vec![]));
        assert!(placeholders("{unknown}").unwrap_err().contains("unknown placeholder"));
        assert!(placeholders("open {not_after").is_err());
        assert!(placeholders("close }").is_err());
    }
}
