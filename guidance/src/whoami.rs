//! `/.spinegate/whoami`: the signed-in identity as the gateway sees it — user id, how they signed
//! in, assurance, the selected role and organisation, every role profile held, and for a
//! smartcard the days left on its certificate, with renewal guidance inside the renewal window.
//! HTML for browsers, JSON otherwise.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;

use super::refusal::{Details, role_list};
use super::template::Scope;
use super::{Format, Guidance, common_scope, days, human_date, human_time, rfc3339};
use spinegate_authz::{RoleData, RoleProfile};
use spinegate_vocab::{AssuranceLevel, AuthMethod, Authenticator as A, UserId};

/// The token a user signed in with, as the identity page shows it.
#[derive(Clone, Copy, Debug)]
pub struct TokenShown<'a> {
    /// The configured name of its issuer.
    pub issuer_name: &'a str,
    /// When it expires, Unix seconds.
    pub expires: u64,
}

/// What the identity page shows.
#[derive(Debug)]
pub struct WhoAmI<'a> {
    /// The authenticated user.
    pub user_id: &'a UserId,
    /// How they authenticated.
    pub method: AuthMethod,
    /// At what assurance.
    pub assurance: AssuranceLevel,
    /// The connection certificate's notAfter, Unix seconds, when there is one.
    pub certificate_not_after: Option<u64>,
    /// The token, when one was used.
    pub token: Option<TokenShown<'a>>,
    /// Their role profiles; `None` when the directory could not say.
    pub roles: Option<&'a [RoleProfile]>,
    /// The role the request would act in.
    pub selected: Option<&'a RoleData>,
    /// The request id.
    pub request_id: &'a str,
    /// Unix seconds.
    pub now: u64,
    /// The certificate renewal window (`[client_auth] expiry_warning`).
    pub renewal_window: Duration,
}

/// How a method reads on the page.
fn method_text(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::Smartcard => "Smartcard",
        AuthMethod::Token { authenticator } => match authenticator {
            A::Smartcard => "Care Identity, with a smartcard",
            A::SecurityKey => "Care Identity, with a security key",
            A::WindowsHello => "Care Identity, with Windows Hello",
            A::Ipad => "Care Identity, with the iPad app",
            A::MicrosoftAuthenticator => "Care Identity, with Microsoft Authenticator",
            A::Nhsmail => "Care Identity, with NHSmail",
            A::Password => "Care Identity, with a password",
            A::Other => "Care Identity",
        },
    }
}

impl Guidance {
    /// The identity page in `format` (HTML, or JSON for anything else), with its content type.
    pub fn whoami(&self, format: Format, w: &WhoAmI<'_>) -> (HeaderValue, Bytes) {
        match format {
            Format::Html => (
                HeaderValue::from_static("text/html; charset=utf-8"),
                Bytes::from(self.whoami.render(&self.whoami_scope(w))),
            ),
            Format::Fhir | Format::Problem => {
                let body = serde_json::to_vec(&whoami_json(w)).expect("JSON values serialise");
                (HeaderValue::from_static("application/json"), Bytes::from(body))
            }
        }
    }

    fn whoami_scope(&self, w: &WhoAmI<'_>) -> Scope {
        let mut s = common_scope(&self.config, "Your sign-in", w.request_id);
        s.text("user_id", w.user_id.as_str())
            .text("method", method_text(w.method))
            .text("assurance", w.assurance.as_str());
        if let Some(role) = w.selected {
            let mut r = Scope::new();
            r.text("id", &*role.id).text("organisation", &*role.org).text("role_code", &*role.role_code);
            s.record("selected_role", r);
        }
        let roles = role_list(&Details { roles: w.roles, selected: w.selected, ..Details::default() });
        s.flag("roles_unavailable", w.roles.is_none())
            .flag("no_roles", w.roles.is_some_and(<[RoleProfile]>::is_empty))
            .flag("has_roles", !roles.is_empty())
            .list("roles", roles);
        if let Some(not_after) = w.certificate_not_after {
            let left = not_after.saturating_sub(w.now);
            let mut c = Scope::new();
            c.text("not_after", human_date(not_after))
                .text("days_left", days(left))
                .flag("renewal_due", left <= w.renewal_window.as_secs());
            s.record("certificate", c);
        }
        if let Some(token) = w.token {
            let mut t = Scope::new();
            t.text("expires", human_time(token.expires)).text("issuer", token.issuer_name);
            s.record("token", t);
        }
        s
    }
}

fn whoami_json(w: &WhoAmI<'_>) -> serde_json::Value {
    let role = |r: &RoleData| serde_json::json!({"id": &*r.id, "organisation": &*r.org, "role_code": &*r.role_code});
    let (method, authenticator) = match w.method {
        AuthMethod::Smartcard => ("smartcard", "smartcard"),
        AuthMethod::Token { authenticator } => ("token", authenticator.as_str()),
    };
    serde_json::json!({
        "user_id": w.user_id.as_str(),
        "auth_method": method,
        "authenticator": authenticator,
        "assurance": w.assurance.as_str(),
        "selected_role": w.selected.map(role),
        "role_profiles": w.roles.map(|roles| roles.iter().map(|r| role(&r.data)).collect::<Vec<_>>()),
        "certificate": w.certificate_not_after.map(|not_after| {
            let left = not_after.saturating_sub(w.now);
            serde_json::json!({
                "not_after": rfc3339(not_after),
                "days_left": left / 86_400,
                "renewal_due": left <= w.renewal_window.as_secs(),
            })
        }),
        "token": w.token.map(|t| serde_json::json!({
            "issuer": t.issuer_name,
            "expires": rfc3339(t.expires),
        })),
        "request_id": w.request_id,
    })
}
