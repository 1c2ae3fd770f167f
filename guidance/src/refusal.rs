//! A refusal's body in each format: an HTML page for a person, a FHIR `OperationOutcome`, or RFC
//! 9457 problem+json — the same status, reason code and wording in all three.

use bytes::Bytes;
use http::HeaderValue;

use super::template::Scope;
use super::text::fill;
use super::{Format, Guidance, SESSION_HEADER, common_scope, contacts, days, human_date};
use spinegate_authz::{RoleData, RoleProfile};
use spinegate_vocab::{Disposition, Reason};

/// Longest reflected request value shown, in characters: enough for any real role profile id or
/// ODS code, and a page stays small whatever a client sends.
const MAX_REFLECTED: usize = 64;

/// The FHIR code system of spinegate's reason codes.
pub(super) const REASON_SYSTEM: &str = "urn:spinegate:refusal-reason";

/// What a refusal may tell about the request, beyond its reason. Every field is optional: a
/// paragraph that needs a missing value is left out.
#[derive(Debug, Default)]
pub struct Details<'a> {
    /// The connection certificate's notBefore and notAfter, Unix seconds.
    pub certificate: Option<(u64, u64)>,
    /// The user's role profiles, when they were looked up.
    pub roles: Option<&'a [RoleProfile]>,
    /// The selected role profile.
    pub selected: Option<&'a RoleData>,
    /// The role profile the request named (`NHSD-Session-URID`), as sent.
    pub requested_role: Option<&'a str>,
    /// The organisation the request named, as sent.
    pub requested_organisation: Option<&'a str>,
}

/// One refusal to write.
#[derive(Debug)]
pub struct Refusal<'a> {
    /// Why.
    pub reason: Reason,
    /// Its status and headers.
    pub disposition: Disposition,
    /// The request id to quote.
    pub request_id: &'a str,
    /// What else is known.
    pub details: &'a Details<'a>,
    /// Unix seconds, for days left.
    pub now: u64,
}

/// The wording of one refusal with its values filled in.
struct Filled {
    title: String,
    what_happened: Vec<String>,
    what_to_do: Vec<String>,
}

impl Guidance {
    /// The body of `refusal` in `format`, with its content type.
    pub fn refusal(&self, format: Format, refusal: &Refusal<'_>) -> (HeaderValue, Bytes) {
        let filled = self.fill(refusal);
        match format {
            Format::Html => (
                HeaderValue::from_static("text/html; charset=utf-8"),
                Bytes::from(self.page.render(&self.page_scope(refusal, &filled))),
            ),
            Format::Fhir => {
                (HeaderValue::from_static("application/fhir+json"), json(&operation_outcome(refusal, &filled)))
            }
            Format::Problem => (HeaderValue::from_static("application/problem+json"), json(&problem(refusal, &filled))),
        }
    }

    fn fill(&self, refusal: &Refusal<'_>) -> Filled {
        let wording = self.wording(refusal.reason);
        let d = refusal.details;
        let reflected = |s: &str| {
            let mut out: String = s.chars().take(MAX_REFLECTED).collect();
            if s.chars().count() > MAX_REFLECTED {
                out.push('…');
            }
            out
        };
        let not_before = d.certificate.map(|(nb, _)| human_date(nb));
        let not_after = d.certificate.map(|(_, na)| human_date(na));
        let days_left = d.certificate.and_then(|(_, na)| na.checked_sub(refusal.now)).map(days);
        let retry_after = refusal.disposition.retry_after.map(|s| s.to_string());
        let requested_role = d.requested_role.map(reflected);
        let requested_organisation = d.requested_organisation.map(reflected);
        let c = &self.config;
        let value = |name: &str| -> Option<&str> {
            match name {
                "organisation" => c.organisation.as_deref(),
                "registration_authority" => Some(&c.registration_authority.name),
                "hr" => Some(&c.hr.name),
                "service_desk" => Some(&c.service_desk.name),
                "not_after" => not_after.as_deref(),
                "not_before" => not_before.as_deref(),
                "days_left" => days_left.as_deref(),
                "requested_role" => requested_role.as_deref(),
                "requested_organisation" => requested_organisation.as_deref(),
                "role" => d.selected.map(|r| &*r.id),
                "role_organisation" => d.selected.map(|r| &*r.org),
                "role_code" => d.selected.map(|r| &*r.role_code),
                "retry_after" => retry_after.as_deref(),
                "request_id" => Some(refusal.request_id),
                _ => None,
            }
        };
        let all = |list: &[String]| list.iter().filter_map(|t| fill(t, value)).collect::<Vec<_>>();
        Filled {
            // A title naming a missing value falls back to the reason's short title.
            title: fill(&wording.title, value).unwrap_or_else(|| refusal.disposition.title.to_owned()),
            what_happened: all(&wording.what_happened),
            what_to_do: all(&wording.what_to_do),
        }
    }

    fn page_scope(&self, refusal: &Refusal<'_>, filled: &Filled) -> Scope {
        let mut s = common_scope(&self.config, &filled.title, refusal.request_id);
        let paragraphs = |list: &[String]| {
            list.iter()
                .map(|t| {
                    let mut p = Scope::new();
                    p.text("text", t);
                    p
                })
                .collect()
        };
        let contacts = contacts(&self.config, &self.wording(refusal.reason).who_can_help);
        s.text("status", refusal.disposition.status.to_string())
            .text("reason", refusal.reason.code())
            .list("what_happened", paragraphs(&filled.what_happened))
            .list("what_to_do", paragraphs(&filled.what_to_do))
            .flag("has_contacts", !contacts.is_empty())
            .list("contacts", contacts);
        let roles = role_list(refusal.details);
        if matches!(refusal.reason, Reason::RoleNotSelected | Reason::RoleNotHeld) && !roles.is_empty() {
            let example = refusal.details.roles.and_then(|r| r.first()).map(|r| r.data.id.to_string());
            s.flag("choose_role", true).text("session_header", SESSION_HEADER).opt("example_role", example);
        }
        s.flag("has_roles", !roles.is_empty()).list("roles", roles);
        s
    }
}

/// The user's role profiles for a page.
pub(super) fn role_list(details: &Details<'_>) -> Vec<Scope> {
    let Some(roles) = details.roles else { return Vec::new() };
    roles
        .iter()
        .map(|r| {
            let mut s = Scope::new();
            s.text("id", &*r.data.id)
                .text("organisation", &*r.data.org)
                .text("role_code", &*r.data.role_code)
                .flag("selected", details.selected.is_some_and(|sel| sel.id == r.data.id));
            s
        })
        .collect()
}

fn json(value: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("JSON values serialise"))
}

fn problem(refusal: &Refusal<'_>, filled: &Filled) -> serde_json::Value {
    let mut body = serde_json::json!({
        "type": format!("urn:spinegate:problem:{}", refusal.reason.code()),
        "title": refusal.disposition.title,
        "status": refusal.disposition.status,
        "reason": refusal.reason.code(),
        "request_id": refusal.request_id,
        "detail": filled.what_happened.join(" "),
    });
    if matches!(refusal.reason, Reason::RoleNotSelected | Reason::RoleNotHeld)
        && let Some(roles) = refusal.details.roles
    {
        body["role_profiles"] = roles
            .iter()
            .map(|r| serde_json::json!({"id": &*r.data.id, "organisation": &*r.data.org, "role_code": &*r.data.role_code}))
            .collect();
    }
    body
}

fn operation_outcome(refusal: &Refusal<'_>, filled: &Filled) -> serde_json::Value {
    let mut issues = vec![serde_json::json!({
        "severity": "error",
        "code": refusal.reason.fhir_issue_code(),
        "details": {
            "coding": [{
                "system": REASON_SYSTEM,
                "code": refusal.reason.code(),
                "display": refusal.disposition.title,
            }],
            "text": filled.what_happened.join(" "),
        },
        "diagnostics": format!("Request ID {}", refusal.request_id),
    })];
    issues.extend(filled.what_to_do.iter().map(
        |step| serde_json::json!({"severity": "information", "code": "informational", "details": {"text": step}}),
    ));
    serde_json::json!({
        "resourceType": "OperationOutcome",
        "id": refusal.request_id,
        "issue": issues,
    })
}
