//! Who is asking: the [`Principal`] a request acts as, once authenticated.

use std::sync::Arc;

use crate::identity::CertIdentity;

/// How the user authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A smartcard certificate on the TLS connection.
    Smartcard,
}

impl AuthMethod {
    /// The `X-Spinegate-Auth-Method` value and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Smartcard => "smartcard",
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
    /// The `X-Spinegate-Assurance-Level` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AssuranceLevel::Aal1 => "AAL1",
            AssuranceLevel::Aal2 => "AAL2",
            AssuranceLevel::Aal3 => "AAL3",
        }
    }
}

/// The authenticated user a request acts as.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The verified certificate identity.
    pub identity: Arc<CertIdentity>,
    /// How they authenticated.
    pub method: AuthMethod,
    /// At what assurance.
    pub assurance: AssuranceLevel,
}
