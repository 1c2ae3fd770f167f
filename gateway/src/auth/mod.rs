//! Who is asking: the [`Principal`] a request acts as, once authenticated by a smartcard
//! certificate or a bearer token ([`token`]).

pub(crate) mod tokens;

use std::sync::Arc;

use crate::identity::{CertIdentity, UserId};

pub(crate) use spinegate_vocab::{AssuranceLevel, AuthMethod, Authenticator};

/// The authenticated user a request acts as.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The Care Identity user id.
    pub user_id: UserId,
    /// How they authenticated.
    pub method: AuthMethod,
    /// At what assurance.
    pub assurance: AssuranceLevel,
    /// The connection's verified certificate, when there is one (also for token users on a
    /// mutual-TLS connection).
    pub certificate: Option<Arc<CertIdentity>>,
    /// The verified token, when one was used.
    pub token: Option<Arc<tokens::Verified>>,
}
