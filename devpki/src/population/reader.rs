//! Reading a population back: [`Population`] opens the directory, checks its age, and reads one
//! user's certificate, key or token at a time.

use std::path::{Path, PathBuf};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use super::derive::{CardState, Credential, Derivation, PopUser, index_of_serial};
use super::pack::PackReader;
use super::{FORMAT, PopulationError, PopulationFile, TokenSigner, USABLE_DAYS};

/// An opened population: the derivation, the packs, the key pool and the CA certificates.
#[derive(Debug)]
pub struct Population {
    dir: PathBuf,
    file: PopulationFile,
    derivation: Derivation,
    prefix: [u8; 7],
    certs: PackReader,
    tokens: PackReader,
    keys: Vec<Vec<u8>>,
    issuing: CertificateDer<'static>,
}

impl Population {
    /// Opens the population in `dir`, refusing one that is too old.
    pub fn open(dir: &Path) -> Result<Self, PopulationError> {
        Self::open_at(dir, OffsetDateTime::now_utc())
    }

    /// Opens it as of `now`.
    pub fn open_at(dir: &Path, now: OffsetDateTime) -> Result<Self, PopulationError> {
        // Absolute, so the configuration written from it works from any directory.
        let dir = &match dir.canonicalize() {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PopulationError::Missing { dir: dir.to_path_buf() });
            }
            Err(e) => return Err(PopulationError::io(dir, e)),
        };
        let file = read_file(dir)?;
        let age_days = (now.unix_timestamp() - file.created_at) / 86_400;
        if age_days >= USABLE_DAYS {
            return Err(PopulationError::Stale { dir: dir.to_path_buf(), age_days });
        }
        let prefix = parse_prefix(&file.serial_prefix)
            .ok_or_else(|| corrupt(&dir.join("population.json"), "serial_prefix is not 7 hex bytes"))?;
        let derivation = Derivation {
            users: file.users,
            seed: file.seed,
            fractions: file.fractions,
            organisations: file.organisations,
        };
        let certs = PackReader::open(&dir.join("certs"), u64::from(file.users))?;
        let tokens = PackReader::open(&dir.join("tokens"), u64::from(file.users))?;
        let pool = PackReader::open(&dir.join("keypool"), u64::from(file.key_pool))?;
        let keys = (0..u64::from(file.key_pool)).map(|k| pool.read(k)).collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() || file.users == 0 {
            return Err(corrupt(&dir.join("population.json"), "a population needs users and at least one key"));
        }
        let issuing_path = dir.join("pki/issuing.pem");
        let issuing = read_pem_cert(&issuing_path)?;
        Ok(Self { dir: dir.to_path_buf(), file, derivation, prefix, certs, tokens, keys, issuing })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What `population.json` says.
    pub fn file(&self) -> &PopulationFile {
        &self.file
    }

    /// Number of users.
    pub fn len(&self) -> u32 {
        self.file.users
    }

    /// Whether it has no users (never, for a generated population).
    pub fn is_empty(&self) -> bool {
        self.file.users == 0
    }

    /// User `index`'s derived facts.
    pub fn user(&self, index: u32) -> PopUser {
        self.derivation.user(index)
    }

    /// The derivation.
    pub fn derivation(&self) -> &Derivation {
        &self.derivation
    }

    /// User `index`'s chain as a client sends it: leaf, then the issuing CA. `None` for a
    /// token-only user.
    pub fn chain(&self, index: u32) -> Result<Option<Vec<CertificateDer<'static>>>, PopulationError> {
        let leaf = self.certs.read(u64::from(index))?;
        Ok((!leaf.is_empty()).then(|| vec![CertificateDer::from(leaf), self.issuing.clone()]))
    }

    /// User `index`'s private key (from the pool).
    pub fn private_key(&self, index: u32) -> PrivateKeyDer<'static> {
        let key = &self.keys[index as usize % self.keys.len()];
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.clone()))
    }

    /// The key pool index user `index` uses.
    pub fn key_slot(&self, index: u32) -> usize {
        index as usize % self.keys.len()
    }

    /// User `index`'s bearer token; `None` for a card user.
    pub fn token(&self, index: u32) -> Result<Option<String>, PopulationError> {
        let token = self.tokens.read(u64::from(index))?;
        if token.is_empty() {
            return Ok(None);
        }
        String::from_utf8(token).map(Some).map_err(|_| corrupt(&self.dir.join("tokens.pack"), "token is not UTF-8"))
    }

    /// The OCSP status of a serial: good or revoked for this population's cards, `None` for
    /// serials it never issued (and for token users, who have none).
    pub fn ocsp_status(&self, serial_bytes: &[u8]) -> Option<crate::ocsp::CertState> {
        let index = index_of_serial(&self.prefix, serial_bytes).filter(|i| *i < self.file.users)?;
        match self.user(index).credential {
            Credential::Smartcard(CardState::Revoked) => Some(crate::ocsp::CertState::Revoked {
                at: OffsetDateTime::from_unix_timestamp(self.file.created_at).ok()?,
                reason: Some(1),
            }),
            Credential::Smartcard(_) => Some(crate::ocsp::CertState::Good),
            Credential::Token(_) => None,
        }
    }

    /// The token issuer's signer, from its stored key (to publish its key set).
    pub fn token_signer(&self) -> Result<TokenSigner, PopulationError> {
        let path = self.dir.join("pki/token-signing.der");
        let der = std::fs::read(&path).map_err(|e| PopulationError::io(&path, e))?;
        TokenSigner::from_pkcs8(&der, &self.file.token_issuer, &self.file.token_audience)
            .ok_or_else(|| corrupt(&path, "not an RSA PKCS#8 key"))
    }

    /// A path inside the population directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }
}

pub(crate) fn read_file(dir: &Path) -> Result<PopulationFile, PopulationError> {
    let path = dir.join("population.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PopulationError::Missing { dir: dir.to_path_buf() });
        }
        Err(e) => return Err(PopulationError::io(&path, e)),
    };
    let file: PopulationFile = serde_json::from_str(&text).map_err(|e| corrupt(&path, &e.to_string()))?;
    if file.format != FORMAT {
        return Err(corrupt(&path, &format!("format {} (this build reads {FORMAT})", file.format)));
    }
    Ok(file)
}

fn parse_prefix(hex: &str) -> Option<[u8; 7]> {
    if hex.len() != 14 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 7];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

pub(crate) fn read_pem_cert(path: &Path) -> Result<CertificateDer<'static>, PopulationError> {
    let text = std::fs::read_to_string(path).map_err(|e| PopulationError::io(path, e))?;
    pem::parse_many(&text)
        .ok()
        .and_then(|blocks| blocks.into_iter().find(|b| b.tag() == "CERTIFICATE"))
        .map(|b| CertificateDer::from(b.into_contents()))
        .ok_or_else(|| corrupt(path, "no CERTIFICATE block"))
}

fn corrupt(path: &Path, message: &str) -> PopulationError {
    PopulationError::Corrupt { path: path.to_path_buf(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::super::{Fractions, PopulationSpec, Services, TOKEN_KID, generate, open_or_generate, serial};
    use super::*;
    use crate::KeyKind;

    fn small_spec() -> PopulationSpec {
        PopulationSpec {
            users: NonZeroU32::new(120).unwrap(),
            key_kind: KeyKind::EcdsaP256,
            key_pool: NonZeroU32::new(3).unwrap(),
            fractions: Fractions { token: 0.2, revoked: 0.05, expired: 0.05, expiring: 0.05, no_role: 0.05 },
            organisations: NonZeroU32::new(5).unwrap(),
            ..PopulationSpec::default()
        }
    }

    #[test]
    fn population_is_minted_and_read_back_one_user_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (population, reused) = open_or_generate(dir.path(), &small_spec(), false, &|_, _| {}).unwrap();
        assert!(!reused);
        assert_eq!(population.len(), 120);
        let prefix = parse_prefix(&population.file().serial_prefix).unwrap();
        let mut seen = (0, 0, 0);
        for i in 0..population.len() {
            let user = population.user(i);
            match user.credential {
                Credential::Smartcard(state) => {
                    let chain = population.chain(i).unwrap().expect("card users have a certificate");
                    assert_eq!(chain.len(), 2);
                    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
                    let cn = format!("{}_{}_{}", user.user_id, user.surname, user.forename);
                    assert_eq!(leaf.subject().to_string(), format!("O=nhs, OU=People, CN={cn}"));
                    assert_eq!(leaf.raw_serial(), serial(&prefix, i));
                    let expired = leaf.validity().not_after.timestamp() < OffsetDateTime::now_utc().unix_timestamp();
                    assert_eq!(expired, state == CardState::Expired, "user {i}");
                    let status = population.ocsp_status(leaf.raw_serial()).unwrap();
                    let revoked = matches!(status, crate::ocsp::CertState::Revoked { .. });
                    assert_eq!(revoked, state == CardState::Revoked);
                    assert!(population.token(i).unwrap().is_none());
                    seen.0 += 1;
                }
                Credential::Token(_) => {
                    assert!(population.chain(i).unwrap().is_none());
                    let token = population.token(i).unwrap().expect("token users have a token");
                    assert_eq!(token.split('.').count(), 3);
                    seen.1 += 1;
                }
            }
            if user.lacks_role {
                seen.2 += 1;
            }
        }
        assert!(seen.0 > 0 && seen.1 > 0 && seen.2 > 0, "{seen:?}");
        assert_eq!(population.ocsp_status(&[0x4c; 16]), None, "a foreign serial is unknown");

        let roles: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(population.path("roles.json")).unwrap()).unwrap();
        assert_eq!(roles["user"].as_array().unwrap().len(), seen.0);
        let crl = std::fs::read(population.path("issuing.crl")).unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&crl).unwrap();
        let revoked = (0..120).filter(|i| population.user(*i).credential == Credential::Smartcard(CardState::Revoked));
        assert_eq!(crl.iter_revoked_certificates().count(), revoked.count());
        let total: u32 = population.file().classes.iter().map(|c| c.users).sum();
        assert_eq!(total, 120);
        assert!(population.token_signer().unwrap().jwks_json().contains(TOKEN_KID));
    }

    #[test]
    fn population_is_reused_and_a_different_spec_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spec = small_spec();
        let (first, _) = open_or_generate(dir.path(), &spec, false, &|_, _| {}).unwrap();
        let prefix = first.file().serial_prefix.clone();
        let moved = PopulationSpec {
            services: Services { ocsp: "127.0.0.1:1".parse().unwrap(), ..Services::default() },
            ..spec.clone()
        };
        let (again, reused) = open_or_generate(dir.path(), &moved, false, &|_, _| {}).unwrap();
        assert!(reused);
        assert_eq!(again.file().serial_prefix, prefix, "same certificates");
        let fragment = std::fs::read_to_string(again.path("spinegate-fragment.toml")).unwrap();
        assert!(fragment.contains("http://127.0.0.1:1/"), "{fragment}");

        let bigger = PopulationSpec { users: NonZeroU32::new(121).unwrap(), ..spec.clone() };
        let err = open_or_generate(dir.path(), &bigger, false, &|_, _| {}).unwrap_err();
        assert!(matches!(err, PopulationError::Different { .. }), "{err}");
        let (replaced, reused) = open_or_generate(dir.path(), &bigger, true, &|_, _| {}).unwrap();
        assert!(!reused);
        assert_eq!(replaced.len(), 121);
    }

    #[test]
    fn old_population_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &small_spec(), &|_, _| {}).unwrap();
        let later = OffsetDateTime::now_utc() + time::Duration::days(USABLE_DAYS);
        let err = Population::open_at(dir.path(), later).unwrap_err();
        assert!(matches!(err, PopulationError::Stale { .. }), "{err}");
        let err = Population::open(&dir.path().join("nothing")).unwrap_err();
        assert!(matches!(err, PopulationError::Missing { .. }), "{err}");
    }
}
