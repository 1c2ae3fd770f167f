//! A load-test population: many smartcard and token users minted into a reusable directory, and
//! read back one user at a time, so neither the generator nor a loader ever holds them all.
//!
//! ```text
//! DIR/population.json          what was asked for, when, the serial prefix, the service addresses
//! DIR/pki/root.{pem,key}       RSA-2048 smartcard root (the gateway's trust anchor)
//! DIR/pki/issuing.{pem,key}    RSA-2048 issuing CA (signs the cards, the CRL, the OCSP responder)
//! DIR/pki/ca-chain.pem         issuing CA then root (nginx's ssl_client_certificate)
//! DIR/pki/ocsp-responder.{pem,key}  delegated OCSP responder (ECDSA, id-kp-OCSPSigning)
//! DIR/pki/tls-root.pem         CA of the gateway's server certificate (the loader trusts it)
//! DIR/pki/server.{pem,key}     server certificate for localhost and 127.0.0.1
//! DIR/pki/token-signing.der    the token issuer's RSA key (PKCS#8)
//! DIR/keypool.pack/.idx        the key pool (PKCS#8): user i's key is i mod pool
//! DIR/certs.pack/.idx          user i's leaf certificate, DER (empty for token-only users)
//! DIR/tokens.pack/.idx         user i's bearer token (empty for card users)
//! DIR/roles.json               the role directory for card users (the gateway's file format)
//! DIR/issuing.crl              CRL of the issuing CA listing the revoked cards
//! DIR/spinegate-fragment.toml  the gateway configuration that serves them
//! ```
//!
//! Who user `i` is (credential, card state, names, roles, serial) is derived from the seed and
//! `i` ([`Derivation`]); only signed material is stored. Key pairs come from a pool because RSA key
//! generation is slow; certificates, serials and user ids are distinct per user.
//!
//! Certificate states are relative to when the population was made, so a population is usable
//! for [`USABLE_DAYS`] days (its "expiring" cards stay inside the 90-day window and its tokens
//! valid); [`Population::open`] refuses an older one.

mod derive;
mod gateway_config;
mod jwt;
mod mint;
mod pack;
mod reader;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use derive::{
    ADMIN_CLERK_ACTIVITIES, ADMIN_CLERK_ROLE_CODE, CLINICIAN_ACTIVITIES, CLINICIAN_ROLE_CODE, CardState, Credential,
    Derivation, Fractions, FractionsError, PopRole, PopUser, TokenAuthenticator, index_of_serial, ods_code, serial,
};
pub use gateway_config::{GatewaySettings, fragment, full_config};
pub use jwt::{TOKEN_KID, TokenSigner};
pub use mint::{Progress, generate, open_or_generate};
pub use reader::Population;
pub(crate) use reader::read_file;

use crate::KeyKind;

/// Days after creation during which a population may be used.
pub const USABLE_DAYS: i64 = 30;
/// The `iss` of population tokens.
pub const TOKEN_ISSUER: &str = "https://identity.spinegate.loadtest/care-identity";
/// The audience of population tokens.
pub const TOKEN_AUDIENCE: &str = "spinegate-loadtest";
/// The format version of `population.json`.
pub(crate) const FORMAT: u32 = 2;

/// What to mint.
#[derive(Clone, Debug, PartialEq)]
pub struct PopulationSpec {
    /// How many users.
    pub users: NonZeroU32,
    /// Seed of the derivation (classes, names, roles).
    pub seed: u64,
    /// Key algorithm of the users' keys: RSA-2048 like real smartcards, or ECDSA P-256 for quick
    /// tests.
    pub key_kind: KeyKind,
    /// Distinct key pairs, shared round-robin by the users.
    pub key_pool: NonZeroU32,
    /// Class shares.
    pub fractions: Fractions,
    /// Organisations role profiles are spread across.
    pub organisations: NonZeroU32,
    /// Where `serve` answers for this population.
    pub services: Services,
}

impl Default for PopulationSpec {
    fn default() -> Self {
        Self {
            users: NonZeroU32::new(10_000).unwrap_or(NonZeroU32::MIN),
            seed: 1,
            key_kind: KeyKind::Rsa2048,
            key_pool: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
            fractions: Fractions::default(),
            organisations: NonZeroU32::new(200).unwrap_or(NonZeroU32::MIN),
            services: Services::default(),
        }
    }
}

/// The addresses of the population's services (the OCSP responder, the token key set and the
/// demo patient-data service), written into the gateway configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    /// OCSP responder.
    pub ocsp: SocketAddr,
    /// JWK Set (`/jwks`).
    pub jwks: SocketAddr,
    /// Demo patient-data service.
    pub upstream: SocketAddr,
}

impl Default for Services {
    /// Ports 29080–29082: below Linux's ephemeral range (32768–60999), so the loader's own
    /// outgoing connections never hold them.
    fn default() -> Self {
        Self {
            ocsp: SocketAddr::from(([127, 0, 0, 1], 29_080)),
            jwks: SocketAddr::from(([127, 0, 0, 1], 29_081)),
            upstream: SocketAddr::from(([127, 0, 0, 1], 29_082)),
        }
    }
}

impl Services {
    /// `http://ADDR/`, the OCSP responder URL.
    pub fn ocsp_url(&self) -> String {
        format!("http://{}/", self.ocsp)
    }

    /// `http://ADDR/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks", self.jwks)
    }

    /// `http://ADDR`.
    pub fn upstream_url(&self) -> String {
        format!("http://{}", self.upstream)
    }
}

/// Why a population could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PopulationError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A stored file is not what it should be.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Minting failed.
    #[error(transparent)]
    Pki(#[from] crate::Error),
    /// The spec's fractions cannot be used.
    #[error(transparent)]
    Fractions(#[from] FractionsError),
    /// The directory holds a different population.
    #[error("{} holds a different population ({differs}); use another directory or regenerate it", dir.display())]
    Different {
        /// The directory.
        dir: PathBuf,
        /// What differs.
        differs: String,
    },
    /// The population is too old to use.
    #[error("the population in {} was made {age_days} days ago; it is usable for {USABLE_DAYS} days (certificate states and tokens are relative to its creation): regenerate it", dir.display())]
    Stale {
        /// The directory.
        dir: PathBuf,
        /// Its age.
        age_days: i64,
    },
    /// No population in the directory.
    #[error("no population in {} (no population.json): make one with `spinegate-loadtest population --dir {}`", dir.display(), dir.display())]
    Missing {
        /// The directory.
        dir: PathBuf,
    },
}

impl PopulationError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

/// `population.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PopulationFile {
    /// Format version.
    pub format: u32,
    /// Users.
    pub users: u32,
    /// Derivation seed.
    pub seed: u64,
    /// `rsa2048` or `ecdsa_p256`.
    pub key_kind: String,
    /// Key pool size.
    pub key_pool: u32,
    /// Class shares.
    pub fractions: Fractions,
    /// Organisations.
    pub organisations: u32,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// The 7-byte serial prefix, hex.
    pub serial_prefix: String,
    /// Token `iss`.
    pub token_issuer: String,
    /// Token `aud`.
    pub token_audience: String,
    /// Token `exp`, Unix seconds (the same for every token).
    pub token_expires_at: i64,
    /// Service addresses.
    pub services: Services,
    /// How many users are in each class, and what each must get from spinegate.
    pub classes: Vec<ClassCount>,
}

/// One class of users, counted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClassCount {
    /// `smartcard/valid`, `token/security_key`, … with `+no_role` when the user lacks the role.
    pub class: String,
    /// Users in it.
    pub users: u32,
    /// What spinegate must answer them on the patient route.
    pub spinegate_must_answer: String,
}

/// The label of a user's class, as in [`ClassCount::class`].
pub fn class_label(credential: Credential, lacks_role: bool) -> String {
    let base = match credential {
        Credential::Smartcard(state) => format!(
            "smartcard/{}",
            match state {
                CardState::Valid => "valid",
                CardState::ExpiringSoon => "expiring_soon",
                CardState::Expired => "expired",
                CardState::Revoked => "revoked",
            }
        ),
        Credential::Token(a) => format!("token/{}", a.name()),
    };
    if lacks_role { format!("{base}+no_role") } else { base }
}

/// What spinegate must answer a user of this class on the patient route, in words.
pub fn spinegate_answer(credential: Credential, lacks_role: bool) -> &'static str {
    match (credential, lacks_role) {
        (Credential::Smartcard(CardState::Revoked), _) => {
            "401 certificate_revoked, or handshake alert certificate_revoked"
        }
        (Credential::Smartcard(CardState::Expired), _) => {
            "401 certificate_expired (certificate_problems = \"explain\"), or handshake alert certificate_expired"
        }
        (_, true) => "403 activity_not_permitted",
        (Credential::Smartcard(CardState::ExpiringSoon), false) => "200 with X-Certificate-Expiry-Warning",
        (Credential::Smartcard(CardState::Valid) | Credential::Token(_), false) => "200",
    }
}

/// The stored spelling of a key kind: `rsa2048` or `ecdsa_p256`.
pub fn key_kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Rsa2048 => "rsa2048",
        KeyKind::EcdsaP256 => "ecdsa_p256",
    }
}
