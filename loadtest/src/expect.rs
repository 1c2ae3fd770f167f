//! What each user must get, and whether they got it. Every response (or refused handshake) is
//! judged against its user's class; a mismatch fails the run.

use rustls::AlertDescription;
use spinegate_devpki::population::{CardState, Credential, PopUser};

/// Which server's contract the answers are judged by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// spinegate: certificate checks at the handshake and per request, revocation, tokens, and
    /// role-based access on the patient route.
    Spinegate,
    /// A plain mutual-TLS proxy (nginx with `ssl_verify_client on` and `ssl_ocsp`, HAProxy with
    /// `verify required` and a CRL): refuses bad certificates with 400 after the handshake
    /// (nginx) or a TLS alert (HAProxy), knows nothing of tokens or roles.
    MtlsProxy,
}

impl Profile {
    /// Parses `spinegate` or `mtls-proxy`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "spinegate" => Some(Profile::Spinegate),
            "mtls-proxy" | "nginx" => Some(Profile::MtlsProxy),
            _ => None,
        }
    }

    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Spinegate => "spinegate",
            Profile::MtlsProxy => "mtls-proxy",
        }
    }
}

/// What a user must get on the patient route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// 200, with or without the certificate expiry warning header (`None`: not checked).
    Served {
        /// Whether `X-Certificate-Expiry-Warning` must be present.
        expiry_warning: Option<bool>,
    },
    /// 403: authenticated, but the role lacks the activity.
    Forbidden,
    /// Refused for a revoked certificate: the `certificate_revoked` alert, or this status after
    /// the handshake (spinegate explains revoked and expired cards by default).
    Revoked {
        /// The status a refusal after the handshake must have.
        status: u16,
    },
    /// Refused for an expired certificate: the `certificate_expired` alert, or (when `Some`) this
    /// status after the handshake.
    Expired {
        /// The status a refusal after the handshake may have.
        status: Option<u16>,
    },
    /// Refused for presenting no certificate: `certificate_required` or this status.
    NoCertificate {
        /// The status.
        status: u16,
    },
}

/// What happened to one request (the first one also covers the login).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response.
    Status {
        /// Its status.
        code: u16,
        /// Whether it carried `X-Certificate-Expiry-Warning`.
        expiry_warning: bool,
    },
    /// The server refused with a TLS alert (during or right after the handshake).
    Alert(AlertDescription),
    /// Anything else: a transport failure, a timeout, a protocol error.
    Failed(&'static str),
}

impl Outcome {
    /// A short label for tallies: `200`, `alert:certificate_revoked`, `error:timeout`.
    pub fn label(&self) -> String {
        match self {
            Outcome::Status { code, .. } => code.to_string(),
            Outcome::Alert(alert) => format!("alert:{}", alert_name(*alert)),
            Outcome::Failed(kind) => format!("error:{kind}"),
        }
    }
}

/// What `user` must get under `profile`.
pub fn expected(profile: Profile, user: &PopUser) -> Expected {
    match (profile, user.credential) {
        (Profile::Spinegate, Credential::Smartcard(CardState::Revoked)) => Expected::Revoked { status: 401 },
        // 401 when the gateway explains certificate problems (its default), the alert otherwise.
        (Profile::Spinegate, Credential::Smartcard(CardState::Expired)) => Expected::Expired { status: Some(401) },
        (Profile::Spinegate, _) if user.lacks_role => Expected::Forbidden,
        (Profile::Spinegate, Credential::Smartcard(state)) => {
            Expected::Served { expiry_warning: Some(state == CardState::ExpiringSoon) }
        }
        (Profile::Spinegate, Credential::Token(_)) => Expected::Served { expiry_warning: Some(false) },
        (Profile::MtlsProxy, Credential::Smartcard(CardState::Revoked)) => Expected::Revoked { status: 400 },
        (Profile::MtlsProxy, Credential::Smartcard(CardState::Expired)) => Expected::Expired { status: Some(400) },
        (Profile::MtlsProxy, Credential::Smartcard(_)) => Expected::Served { expiry_warning: None },
        (Profile::MtlsProxy, Credential::Token(_)) => Expected::NoCertificate { status: 400 },
    }
}

impl Expected {
    /// Whether `outcome` is what was expected.
    pub fn matches(self, outcome: &Outcome) -> bool {
        match (self, outcome) {
            (Expected::Served { expiry_warning }, Outcome::Status { code: 200, expiry_warning: got }) => {
                expiry_warning.is_none_or(|want| want == *got)
            }
            (Expected::Forbidden, Outcome::Status { code: 403, .. }) => true,
            (Expected::Revoked { status }, Outcome::Status { code, .. }) => *code == status,
            (Expected::Revoked { .. }, Outcome::Alert(AlertDescription::CertificateRevoked)) => true,
            (Expected::Expired { status }, Outcome::Status { code, .. }) => status == Some(*code),
            (Expected::Expired { .. }, Outcome::Alert(AlertDescription::CertificateExpired)) => true,
            (Expected::NoCertificate { status }, Outcome::Status { code, .. }) => *code == status,
            (Expected::NoCertificate { .. }, Outcome::Alert(AlertDescription::CertificateRequired)) => true,
            // A server that refuses a certificate and closes while the client's first request is
            // still unread makes the kernel reset the connection, which can discard the alert
            // before the client reads it. The refusal happened; the tallies show it as a reset.
            (
                Expected::Revoked { .. } | Expected::Expired { .. } | Expected::NoCertificate { .. },
                Outcome::Failed("connection_reset"),
            ) => true,
            _ => false,
        }
    }

    /// Whether the user is to be served (their session goes on after the login).
    pub fn is_served(self) -> bool {
        matches!(self, Expected::Served { .. })
    }

    /// In words, for reports.
    pub fn describe(self) -> String {
        match self {
            Expected::Served { expiry_warning: Some(true) } => "200 + expiry warning".into(),
            Expected::Served { expiry_warning: Some(false) } => "200, no expiry warning".into(),
            Expected::Served { expiry_warning: None } => "200".into(),
            Expected::Forbidden => "403".into(),
            Expected::Revoked { status } => format!("alert certificate_revoked or {status}"),
            Expected::Expired { status: None } => "alert certificate_expired".into(),
            Expected::Expired { status: Some(s) } => format!("alert certificate_expired or {s}"),
            Expected::NoCertificate { status } => format!("alert certificate_required or {status}"),
        }
    }
}

/// The TLS name of an alert (`certificate_revoked`).
pub fn alert_name(alert: AlertDescription) -> String {
    // rustls prints alerts as CamelCase variant names; reports use the RFC's snake_case.
    let camel = format!("{alert:?}");
    let mut out = String::with_capacity(camel.len() + 4);
    let mut previous_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase();
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinegate_devpki::population::{Fractions, TokenAuthenticator};

    fn user(credential: Credential, lacks_role: bool) -> PopUser {
        let d = spinegate_devpki::population::Derivation {
            users: 1,
            seed: 1,
            fractions: Fractions::default(),
            organisations: 1,
        };
        PopUser { credential, lacks_role, ..d.user(0) }
    }

    fn status(code: u16, expiry_warning: bool) -> Outcome {
        Outcome::Status { code, expiry_warning }
    }

    #[test]
    fn spinegate_contract_per_class() {
        let p = Profile::Spinegate;
        let valid = expected(p, &user(Credential::Smartcard(CardState::Valid), false));
        assert!(valid.matches(&status(200, false)));
        assert!(!valid.matches(&status(200, true)), "a valid card carries no warning");
        assert!(!valid.matches(&status(502, false)));
        let expiring = expected(p, &user(Credential::Smartcard(CardState::ExpiringSoon), false));
        assert!(expiring.matches(&status(200, true)) && !expiring.matches(&status(200, false)));
        let revoked = expected(p, &user(Credential::Smartcard(CardState::Revoked), true));
        assert!(revoked.matches(&Outcome::Alert(AlertDescription::CertificateRevoked)));
        assert!(revoked.matches(&status(401, false)));
        assert!(!revoked.matches(&status(403, false)), "revocation comes before roles");
        let expired = expected(p, &user(Credential::Smartcard(CardState::Expired), false));
        assert!(expired.matches(&Outcome::Alert(AlertDescription::CertificateExpired)));
        assert!(expired.matches(&status(401, false)), "explained after the handshake");
        assert!(!expired.matches(&status(200, false)));
        assert!(expired.matches(&Outcome::Failed("connection_reset")), "an alert lost to a reset");
        assert!(!valid.matches(&Outcome::Failed("connection_reset")));
        let no_role = expected(p, &user(Credential::Token(TokenAuthenticator::Ipad), true));
        assert!(no_role.matches(&status(403, false)) && !no_role.is_served());
        assert!(!no_role.matches(&Outcome::Failed("timeout")));
    }

    #[test]
    fn mtls_proxy_contract_ignores_roles_and_refuses_tokens() {
        let p = Profile::MtlsProxy;
        assert!(expected(p, &user(Credential::Smartcard(CardState::Valid), true)).matches(&status(200, false)));
        assert!(expected(p, &user(Credential::Smartcard(CardState::Revoked), false)).matches(&status(400, false)));
        assert!(expected(p, &user(Credential::Smartcard(CardState::Expired), false)).matches(&status(400, false)));
        assert!(expected(p, &user(Credential::Token(TokenAuthenticator::Nhsmail), false)).matches(&status(400, false)));
    }

    #[test]
    fn alert_names_are_the_rfc_spelling() {
        assert_eq!(alert_name(AlertDescription::CertificateRevoked), "certificate_revoked");
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
    }
}
