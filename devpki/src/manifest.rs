//! `DIR/manifest.json`: how clients (people, tests, the load tester) find a running dev world.
//! Field names are a contract: later features add fields, never rename these.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The running dev world.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// `https://127.0.0.1:PORT`: the gateway's client-facing listener.
    pub gateway_url: String,
    /// `http://127.0.0.1:PORT`: the admin listener.
    pub admin_url: String,
    /// PEM of the CA that signed the gateway's server certificate (clients trust this).
    pub server_ca: PathBuf,
    /// `http://127.0.0.1:PORT`: the demo patient-data service, directly (bypassing the gateway).
    pub upstream_url: String,
    /// The gateway configuration `spinegate dev` generated and runs.
    pub config: PathBuf,
    /// The dev OCSP responder for the smartcard issuing CA.
    #[serde(default)]
    pub ocsp_url: String,
    /// The dev CRL of the smartcard issuing CA (DER).
    #[serde(default)]
    pub crl: Option<PathBuf>,
    /// The dev token issuer's JWK Set URL.
    #[serde(default)]
    pub jwks_url: String,
    /// The dev token issuer's `iss`.
    #[serde(default)]
    pub token_issuer: String,
    /// The audit log the gateway writes (one JSON line per access decision).
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// The role directory file.
    #[serde(default)]
    pub role_directory: Option<PathBuf>,
    /// Where the gateway publishes its identity assertion keys.
    #[serde(default)]
    pub assertion_jwks_url: Option<String>,
    /// The emergency deny-list file the gateway watches, relative to the dev directory: a
    /// `user <id>` line refuses that user however they sign in, within a second.
    #[serde(default)]
    pub deny_list: Option<PathBuf>,
    /// Whether the gateway also serves HTTP/3 (QUIC, the `gateway_url` port number over UDP).
    #[serde(default)]
    pub h3: bool,
    /// Demo users.
    pub users: Vec<ManifestUser>,
}

/// One demo user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestUser {
    /// Short name (`alice`).
    pub name: String,
    /// The 12-digit Care Identity user id.
    pub user_id: String,
    /// PEM chain (leaf, then issuing CA), when the user has a smartcard.
    pub cert: Option<PathBuf>,
    /// PEM private key, when the user has a smartcard.
    pub key: Option<PathBuf>,
    /// What the certificate is for the demo: `valid`, `expiring_soon`, `expired`.
    pub certificate_state: String,
    /// The certificate's notAfter, RFC 3339.
    pub not_after: Option<String>,
    /// Whether the dev PKI has revoked the certificate.
    #[serde(default)]
    pub revoked: bool,
    /// A fresh bearer token from the dev token issuer (valid for eight hours from start).
    #[serde(default)]
    pub token: Option<String>,
    /// The authenticator the token says was used.
    #[serde(default)]
    pub authenticator: Option<String>,
    /// The user's role profiles.
    #[serde(default)]
    pub role_profiles: Vec<ManifestRole>,
}

/// One role profile.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestRole {
    /// Role profile id (URID): what `NHSD-Session-URID` names.
    pub id: String,
    /// ODS code.
    pub org: String,
    /// Role code.
    pub role_code: String,
    /// Directly granted activities.
    pub activities: Vec<String>,
}

impl Manifest {
    /// Writes `path` atomically (temporary file, then rename), so a reader never sees half.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).expect("a manifest always serialises");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|source| Error::Io { path: tmp.clone(), source })?;
        std::fs::rename(&tmp, path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
    }

    /// Reads a manifest.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        serde_json::from_str(&text).map_err(|e| Error::Corrupt { path: path.to_path_buf(), message: e.to_string() })
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<&ManifestUser> {
        self.users.iter().find(|u| u.name == name)
    }
}
