//! The built-in wording of each refusal: what happened, what to do now, who can help — plain
//! English, written for the person at the screen, after the Care Identity guidance (renew in the
//! 90 days before expiry; after expiry see the Registration Authority in person; lost cards are
//! cancelled through HR; new or different roles come from the Registration Authority; a locked
//! card without an email on the profile is unlocked in person). `[[guidance.page]]` replaces any
//! part per deployment.
//!
//! Text is plain, with `{placeholders}` filled per request ([`fill`]); a paragraph naming a value
//! the request does not have is left out.

use spinegate_config::ContactKind::{self, Hr, RegistrationAuthority as Ra, ServiceDesk as Desk};

use spinegate_vocab::Reason;

/// One reason's built-in wording.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wording {
    /// Heading and page title.
    pub title: &'static str,
    /// Paragraphs: what happened.
    pub what_happened: &'static [&'static str],
    /// Steps: what to do now.
    pub what_to_do: &'static [&'static str],
    /// Who can help, in order.
    pub who_can_help: &'static [ContactKind],
}

const fn w(
    title: &'static str,
    what_happened: &'static [&'static str],
    what_to_do: &'static [&'static str],
    who_can_help: &'static [ContactKind],
) -> Wording {
    Wording { title, what_happened, what_to_do, who_can_help }
}

const TRY_AGAIN_SOON: &[&str] =
    &["Try again in a few minutes.", "If it keeps happening, contact {service_desk} and quote the reference below."];

/// The built-in wording for `reason`. Exhaustive: a new reason has no page until it has words.
pub(crate) fn builtin(reason: Reason) -> Wording {
    match reason {
        Reason::ClientCertificateRequired => w(
            "Insert your smartcard to continue",
            &["We could not find a smartcard, so we cannot tell who you are."],
            &[
                "Check your smartcard is in the card reader, chip first and facing up, then reload this page.",
                "If you sign in another way (a security key, Windows Hello, the iPad app, Microsoft Authenticator or NHSmail), sign in to Care Identity first, then try again from your clinical system.",
                "If your smartcard is locked after too many wrong passcodes, you can unlock it yourself online if your Care Identity profile has an email address. If it does not, go in person to {registration_authority} to have it unlocked.",
            ],
            &[Desk, Ra],
        ),
        Reason::CertificateExpired => w(
            "Your smartcard certificate has expired",
            &[
                "The certificate on your smartcard has expired, so the card cannot be used to sign in.",
                "It expired on {not_after}.",
            ],
            &[
                "An expired certificate cannot be renewed online. Go in person to {registration_authority} with your smartcard and photo ID to have it renewed.",
                "Until then, follow your organisation's process for staff who cannot sign in. Never use someone else's smartcard.",
                "Next time, renew your certificate yourself in the 90 days before it expires: you will be reminded when you sign in.",
            ],
            &[Ra],
        ),
        Reason::CertificateNotYetValid => w(
            "Your smartcard certificate is not valid yet",
            &[
                "The certificate on your smartcard has a start date in the future, so it cannot be used yet.",
                "It becomes valid on {not_before}.",
            ],
            &[
                "If your card was issued today, wait a few minutes and try again.",
                "Check that the date and time on your computer are correct.",
                "If it still does not work, contact {service_desk}.",
            ],
            &[Desk, Ra],
        ),
        Reason::CertificateInvalid => w(
            "Your smartcard could not be checked",
            &["The certificate on your smartcard is no longer accepted here."],
            &[
                "Take your smartcard out of the reader, put it back in and try again.",
                "If it still does not work, contact {service_desk} and quote the reference below.",
            ],
            &[Desk],
        ),
        Reason::CertificateRevoked => w(
            "Your smartcard has been cancelled",
            &[
                "The certificate on this smartcard has been cancelled, so the card cannot be used to sign in.",
                "This happens when a card is reported lost or stolen, when a replacement card is issued, or when someone leaves their organisation.",
            ],
            &[
                "If you have been given a newer card, use that one instead.",
                "A cancelled card cannot be used again, even if you find it. Go in person to {registration_authority} with photo ID to get a replacement card.",
                "If you did not expect this, contact {registration_authority} as soon as you can.",
                "If you have lost another card that still works, report it to {hr} straight away so that it is cancelled and nobody else can use it.",
            ],
            &[Ra, Hr],
        ),
        Reason::InvalidToken => w(
            "Your sign-in could not be checked",
            &["The sign-in your system sent with this request was not accepted."],
            &[
                "Sign out of your clinical system, sign in again with Care Identity, then try again.",
                "If it keeps happening, contact {service_desk} and quote the reference below.",
            ],
            &[Desk],
        ),
        Reason::TokenExpired => w(
            "Your session has timed out",
            &["Your Care Identity sign-in has expired."],
            &[
                "Sign in again with Care Identity (with your smartcard, security key, Windows Hello, the iPad app, Microsoft Authenticator or NHSmail), then try again.",
            ],
            &[Desk],
        ),
        Reason::TokenBindingMismatch => w(
            "Your sign-in belongs to a different smartcard",
            &["The sign-in your system sent was made with a different smartcard from the one in your card reader."],
            &[
                "Make sure your own smartcard is in the reader, sign in again, then try again.",
                "Never use another person's smartcard or sign-in.",
            ],
            &[Desk],
        ),
        Reason::RoleNotHeld => w(
            "You do not have the role you selected",
            &[
                "The role your system asked to use is not one of your role profiles.",
                "The role profile asked for was {requested_role}.",
            ],
            &[
                "Choose one of your own role profiles and try again.",
                "If you need a role you do not have, for example at another organisation, ask {registration_authority} to assign it. Your line manager or sponsor usually needs to agree it first.",
            ],
            &[Ra],
        ),
        Reason::RoleNotSelected => w(
            "Choose a role to continue",
            &["You have more than one role profile, and your system did not say which one to use."],
            &[
                "Choose the role you are working in today. Most clinical systems ask you when you sign in.",
                "If you do not have the role you need, ask {registration_authority}.",
            ],
            &[Ra, Desk],
        ),
        Reason::ActivityNotPermitted => w(
            "Your role does not allow this",
            &[
                "The role you are working in does not include permission to do this.",
                "You are working in role profile {role} ({role_code}) at {role_organisation}.",
            ],
            &[
                "If you have another role that allows it, switch to that role and try again.",
                "If you need this for your work, ask your line manager to request the access from {registration_authority}.",
            ],
            &[Ra],
        ),
        Reason::OrganisationMismatch => w(
            "This is for a different organisation",
            &[
                "The request is for an organisation that your selected role does not cover.",
                "You asked to act for {requested_organisation}; your selected role is at {role_organisation}.",
            ],
            &[
                "If you work at more than one organisation (for example as a locum), choose your role at the organisation you are working for today.",
                "If you do not have a role there, ask that organisation's Registration Authority to give you one.",
            ],
            &[Ra],
        ),
        Reason::AssuranceTooLow => w(
            "Sign in with a more secure method",
            &["This needs a more secure way of signing in than the one you used."],
            &[
                "Sign in again with your smartcard or a security key, then try again.",
                "If you do not have either, ask {registration_authority}.",
            ],
            &[Ra, Desk],
        ),
        Reason::AuthenticatorNotAllowed => w(
            "You cannot use this with the way you signed in",
            &["This service does not accept the way you signed in."],
            &[
                "Sign in again with your smartcard, then try again.",
                "If you think you should be able to use this, contact {service_desk}.",
            ],
            &[Desk],
        ),
        Reason::NoRoute => w(
            "Page not found",
            &["There is nothing at this address."],
            &[
                "If you typed the address, check it is correct.",
                "If you followed a link from your clinical system, contact {service_desk} and quote the reference below.",
            ],
            &[Desk],
        ),
        Reason::RequestTooLarge => w(
            "What you sent is too large",
            &["The request was larger than this service accepts."],
            &["Try again with a smaller file or less information.", "If you need to send it, contact {service_desk}."],
            &[Desk],
        ),
        Reason::HeadersTooLarge => w(
            "Your request could not be read",
            &["The request carried more header information than this service accepts. Old cookies are a common cause."],
            &["Close your browser, open it again, then try again.", "If it keeps happening, contact {service_desk}."],
            &[Desk],
        ),
        Reason::UpstreamUnavailable => w(
            "Sorry, the service is unavailable",
            &["The patient record service could not be reached."],
            &[
                "Try again in a few minutes.",
                "If you need information urgently, follow your organisation's business continuity process.",
                "If it keeps happening, contact {service_desk} and quote the reference below.",
            ],
            &[Desk],
        ),
        Reason::RevocationUnavailable => w(
            "We cannot check your smartcard at the moment",
            &[
                "We could not confirm that your smartcard is still valid, so we cannot let you in yet. This is a problem on our side, not with your card.",
            ],
            TRY_AGAIN_SOON,
            &[Desk],
        ),
        Reason::RoleDirectoryUnavailable => w(
            "We cannot check your roles at the moment",
            &["We could not look up your role profiles. This is a problem on our side."],
            TRY_AGAIN_SOON,
            &[Desk],
        ),
        Reason::Overloaded => w(
            "Sorry, the service is very busy",
            &["Too many people are using the service at the moment."],
            &[
                "Wait a minute, then try again.",
                "If you need information urgently, follow your organisation's business continuity process.",
            ],
            &[Desk],
        ),
        Reason::UpstreamTimeout => w(
            "Sorry, the service is taking too long to respond",
            &["The patient record service did not answer in time."],
            TRY_AGAIN_SOON,
            &[Desk],
        ),
        Reason::InvalidPath => w(
            "This address cannot be used",
            &[
                "The address of this request is written in a way that could be read as more than one address, so it was not passed on.",
            ],
            &[
                "Go back and use the links in your clinical system rather than typing or editing the address.",
                "If a link in your clinical system led here, contact {service_desk} and quote the reference below.",
            ],
            &[Desk],
        ),
        Reason::InvalidHost => w(
            "This request names the wrong server",
            &["The request named a server address that does not match where it was sent, so it was not passed on."],
            &[
                "Check the address, or use the links in your clinical system.",
                "If a link in your clinical system led here, contact {service_desk} and quote the reference below.",
            ],
            &[Desk],
        ),
        Reason::UserSuspended => w(
            "Your access has been suspended",
            &[
                "Your access to patient records has been suspended, so you cannot sign in with your smartcard or any other way at the moment.",
                "This happens when a smartcard is reported lost or stolen, or when your organisation asks for your access to be stopped.",
            ],
            &[
                "If you did not expect this, contact {hr} or your line manager.",
                "If your access should be restored, {registration_authority} can tell you what is needed, including a replacement smartcard.",
                "Never use someone else's smartcard or sign-in.",
            ],
            &[Hr, Ra],
        ),
        Reason::CrossSiteRequest => w(
            "This request came from another website",
            &[
                "A page from another website tried to send a change using your smartcard, so it was not passed on. This protects patient records from pages that act without your knowledge.",
            ],
            &[
                "If you meant to do this, open your clinical system directly and try again from there.",
                "If you did not, close the other page. If it keeps happening, contact {service_desk}.",
            ],
            &[Desk],
        ),
        Reason::RequestTimeout => w(
            "Sorry, your request took too long to arrive",
            &["Your computer sent the request too slowly, so it was stopped."],
            &[
                "Check your network connection and try again.",
                "If it keeps happening, contact {service_desk} and quote the reference below.",
            ],
            &[Desk],
        ),
    }
}

/// What each contact helps with, for the "who can help" list.
pub(crate) fn helps_with(kind: ContactKind) -> &'static str {
    match kind {
        ContactKind::RegistrationAuthority => "Smartcards, certificates and role profiles",
        ContactKind::Hr => "Starting, leaving, and lost or stolen smartcards",
        ContactKind::ServiceDesk => "Card readers, computers and problems signing in",
    }
}

/// `text` with its `{placeholders}` replaced by `value(name)`; `None` when one has no value (the
/// paragraph is then left out). `{{` and `}}` are literal braces. Text that does not parse (never
/// the case for validated configuration) is returned as written.
pub(crate) fn fill<'v>(text: &str, value: impl Fn(&str) -> Option<&'v str>) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let brace = &rest[i..=i];
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix(brace) {
            out.push_str(brace);
            rest = tail;
            continue;
        }
        match (brace, after.find('}')) {
            ("{", Some(end)) => {
                out.push_str(value(&after[..end])?);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(brace);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_words_with_known_placeholders() {
        for reason in Reason::ALL {
            let w = builtin(*reason);
            assert!(!w.title.is_empty() && !w.what_happened.is_empty() && !w.what_to_do.is_empty(), "{reason:?}");
            assert!(!w.who_can_help.is_empty(), "{reason:?} names nobody who can help");
            for text in w.what_happened.iter().chain(w.what_to_do).chain([&w.title]) {
                spinegate_config::guidance::placeholders(text).unwrap_or_else(|e| panic!("{reason:?}: {e}"));
            }
            // The first paragraph says what happened whatever the request carried.
            assert!(spinegate_config::guidance::placeholders(w.what_happened[0]).unwrap().is_empty(), "{reason:?}");
        }
    }

    /// Every reason can be named in `[[guidance.page]]`: the configuration reads reason names
    /// through the same table, so none can be missing there.
    #[test]
    fn config_accepts_a_page_for_every_reason() {
        let mut text = String::from(
            "[[listener]]\nname = \"l\"\nlisten = \"127.0.0.1:8443\"\n[[listener.certificate]]\ncert = \"s.pem\"\nkey = \"s.key\"\n\
             [[upstream]]\nname = \"u\"\nendpoints = [\"http://127.0.0.1:9\"]\n",
        );
        for reason in Reason::ALL {
            text.push_str(&format!("[[guidance.page]]\nreason = \"{}\"\ntitle = \"t\"\n", reason.code()));
        }
        let config = spinegate_config::parse(&text, None, std::path::Path::new("/")).unwrap();
        assert_eq!(config.guidance.pages.len(), Reason::ALL.len());
    }

    #[test]
    fn placeholders_fill_or_drop_the_paragraph() {
        let v = |n: &str| (n == "not_after").then_some("3 March 2026");
        assert_eq!(fill("It expired on {not_after}.", v).as_deref(), Some("It expired on 3 March 2026."));
        assert_eq!(fill("Ask {hr}.", v), None);
        assert_eq!(fill("{{literal}} }}", v).as_deref(), Some("{literal} }"));
    }
}
