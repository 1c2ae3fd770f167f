//! How a user authenticated: the authenticator a token names in `amr` (Care Identity's names
//! and RFC 8176's), the method (a smartcard, or a token), and the assurance level (NIST SP
//! 800-63B).

/// The authenticator behind a token, from its `amr` claim (Care Identity names and RFC 8176
/// values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Authenticator {
    /// An NHS smartcard (`N3_SMARTCARD`, `sc`).
    Smartcard,
    /// A FIDO2 security key such as a YubiKey (`FIDO2`, `hwk`).
    SecurityKey,
    /// Windows Hello for Business (`WINDOWS_HELLO`).
    WindowsHello,
    /// The iPad authenticator (`IPAD`, `IOS`).
    Ipad,
    /// Microsoft Authenticator (`MS_AUTHENTICATOR`).
    MicrosoftAuthenticator,
    /// NHSmail sign-in (`NHSMAIL`).
    Nhsmail,
    /// A password (`pwd`).
    Password,
    /// Anything else, or no `amr`.
    Other,
}

impl Authenticator {
    /// Every kind, for configuration and documentation.
    pub const ALL: [Authenticator; 8] = [
        Authenticator::Smartcard,
        Authenticator::SecurityKey,
        Authenticator::WindowsHello,
        Authenticator::Ipad,
        Authenticator::MicrosoftAuthenticator,
        Authenticator::Nhsmail,
        Authenticator::Password,
        Authenticator::Other,
    ];

    /// The first `amr` value that names a known authenticator.
    pub fn from_amr(amr: &[String]) -> Self {
        amr.iter()
            .find_map(|value| {
                Some(match value.to_ascii_uppercase().as_str() {
                    "N3_SMARTCARD" | "SMARTCARD" | "SC" => Authenticator::Smartcard,
                    "FIDO2" | "SECURITY_KEY" | "HWK" => Authenticator::SecurityKey,
                    "WINDOWS_HELLO" | "WINDOWS_HELLO_FOR_BUSINESS" | "WHFB" => Authenticator::WindowsHello,
                    "IPAD" | "IOS" => Authenticator::Ipad,
                    "MS_AUTHENTICATOR" | "MICROSOFT_AUTHENTICATOR" => Authenticator::MicrosoftAuthenticator,
                    "NHSMAIL" | "NHS_MAIL" => Authenticator::Nhsmail,
                    "PWD" | "PASSWORD" => Authenticator::Password,
                    _ => return None,
                })
            })
            .unwrap_or(Authenticator::Other)
    }

    /// The configuration and metric spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Authenticator::Smartcard => "smartcard",
            Authenticator::SecurityKey => "security_key",
            Authenticator::WindowsHello => "windows_hello",
            Authenticator::Ipad => "ipad",
            Authenticator::MicrosoftAuthenticator => "microsoft_authenticator",
            Authenticator::Nhsmail => "nhsmail",
            Authenticator::Password => "password",
            Authenticator::Other => "other",
        }
    }

    /// By its configuration spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        Authenticator::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// How the user authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A smartcard certificate on the TLS connection.
    Smartcard,
    /// A bearer token from a configured issuer.
    Token {
        /// What the user authenticated to the issuer with.
        authenticator: Authenticator,
    },
}

impl AuthMethod {
    /// The `X-Spinegate-Auth-Method` value: `smartcard`, or `token:<authenticator>`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Smartcard => "smartcard",
            AuthMethod::Token { authenticator } => match authenticator {
                Authenticator::Smartcard => "token:smartcard",
                Authenticator::SecurityKey => "token:security_key",
                Authenticator::WindowsHello => "token:windows_hello",
                Authenticator::Ipad => "token:ipad",
                Authenticator::MicrosoftAuthenticator => "token:microsoft_authenticator",
                Authenticator::Nhsmail => "token:nhsmail",
                Authenticator::Password => "token:password",
                Authenticator::Other => "token:other",
            },
        }
    }
}

/// Authentication assurance level (NIST SP 800-63B).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AssuranceLevel {
    /// AAL1.
    Aal1,
    /// AAL2.
    Aal2,
    /// AAL3: hardware-bound key with proof of possession, as a smartcard.
    Aal3,
}

impl AssuranceLevel {
    /// AAL1, AAL2 or AAL3 by number.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            1 => Some(AssuranceLevel::Aal1),
            2 => Some(AssuranceLevel::Aal2),
            3 => Some(AssuranceLevel::Aal3),
            _ => None,
        }
    }

    /// 1, 2 or 3.
    pub fn number(self) -> u8 {
        match self {
            AssuranceLevel::Aal1 => 1,
            AssuranceLevel::Aal2 => 2,
            AssuranceLevel::Aal3 => 3,
        }
    }

    /// The `X-Spinegate-Assurance-Level` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AssuranceLevel::Aal1 => "AAL1",
            AssuranceLevel::Aal2 => "AAL2",
            AssuranceLevel::Aal3 => "AAL3",
        }
    }
}
