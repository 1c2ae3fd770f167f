//! Minting a population: CAs, the key pool, one certificate or token per user (in parallel, in
//! batches written in order, so memory stays bounded whatever the size), the role directory, the
//! CRL, the gateway configuration fragment, and `population.json` last — a directory without it
//! is never taken for a complete population.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData,
    SubjectPublicKeyInfo,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::jwt::TokenSigner;
use super::pack::PackWriter;
use super::{
    ClassCount, Population, PopulationError, PopulationFile, PopulationSpec, TOKEN_AUDIENCE, TOKEN_ISSUER, USABLE_DAYS,
    class_label, derive, key_kind_name, read_file, spinegate_answer,
};
use crate::crl::{CrlSpec, RevokedEntry};
use crate::{Ca, KeyKind, LeafSpec};

/// Called as minting advances with (users done, users in all).
pub type Progress<'a> = &'a (dyn Fn(u32, u32) + Sync);

/// Users minted per batch: enough to keep every core busy, small enough to bound memory.
const BATCH: u32 = 4096;

/// Opens the population in `dir` if it was made from the same spec and is still usable
/// (rewriting the configuration fragment when only the service addresses changed); otherwise
/// mints it when `dir` holds none, or when `regenerate` allows replacing what is there.
/// Returns the population and whether it was reused.
pub fn open_or_generate(
    dir: &Path,
    spec: &PopulationSpec,
    regenerate: bool,
    progress: Progress<'_>,
) -> Result<(Population, bool), PopulationError> {
    spec.fractions.validated()?;
    let existing = match read_file(dir) {
        Ok(file) => Some(file),
        Err(PopulationError::Missing { .. }) => None,
        Err(e) if regenerate => {
            tracing::warn!("replacing an unreadable population: {e}");
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(mut file) = existing {
        let differs = differences(&file, spec);
        let unusable = Population::open(dir).err();
        match (differs.is_empty(), unusable, regenerate) {
            (true, None, _) => {
                if file.services != spec.services {
                    file.services = spec.services;
                    write_population_file(dir, &file)?;
                }
                let population = Population::open(dir)?;
                write_text(&dir.join("spinegate-fragment.toml"), &super::fragment(&population), false)?;
                return Ok((population, true));
            }
            (_, _, true) => {}
            (false, _, false) => {
                return Err(PopulationError::Different { dir: dir.to_path_buf(), differs: differs.join(", ") });
            }
            (true, Some(e), false) => return Err(e),
        }
    }
    Ok((generate(dir, spec, progress)?, false))
}

fn differences(file: &PopulationFile, spec: &PopulationSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, stored: String, wanted: String| {
        if stored != wanted {
            out.push(format!("{name} {stored}, wanted {wanted}"));
        }
    };
    check("users", file.users.to_string(), spec.users.to_string());
    check("seed", file.seed.to_string(), spec.seed.to_string());
    check("key kind", file.key_kind.clone(), key_kind_name(spec.key_kind).to_owned());
    check("key pool", file.key_pool.to_string(), spec.key_pool.to_string());
    check("fractions", format!("{:?}", file.fractions), format!("{:?}", spec.fractions));
    check("organisations", file.organisations.to_string(), spec.organisations.to_string());
    out
}

/// Mints a population into `dir` (created if missing; files of an earlier population are
/// replaced).
pub fn generate(dir: &Path, spec: &PopulationSpec, progress: Progress<'_>) -> Result<Population, PopulationError> {
    let fractions = spec.fractions.validated()?;
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).map_err(|e| PopulationError::io(&pki, e))?;
    // population.json goes last: until then the directory is not a population.
    match std::fs::remove_file(dir.join("population.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(PopulationError::io(&dir.join("population.json"), e));
        }
        _ => {}
    }
    let created = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc());
    let (issuing, signer) = write_pki(&pki, created)?;
    let pool = key_pool(spec.key_kind, spec.key_pool.get())?;
    let mut keys = PackWriter::create(&dir.join("keypool"))?;
    for (pkcs8, _) in &pool {
        keys.push(pkcs8)?;
    }
    keys.finish()?;
    restrict(&dir.join("keypool.pack"))?;

    let mut prefix = [0u8; 7];
    SystemRandom::new().fill(&mut prefix).map_err(|_| corrupt(dir, "the system RNG failed"))?;
    let derivation = derive::Derivation {
        users: spec.users.get(),
        seed: spec.seed,
        fractions,
        organisations: spec.organisations.get(),
    };
    let token_expires_at = (created + Duration::days(USABLE_DAYS + 1)).unix_timestamp();
    let context =
        Context { derivation, prefix, created, issuing: &issuing, pool: &pool, signer: &signer, token_expires_at };
    let (revoked, classes) = mint_users(dir, &context, progress)?;

    let crl = issuing.crl(&CrlSpec {
        this_update: created - Duration::minutes(1),
        next_update: Some(created + Duration::days(USABLE_DAYS + 1)),
        number: created.unix_timestamp().unsigned_abs(),
        delta_of: None,
        scope_urls: Vec::new(),
        freshest_urls: Vec::new(),
        revoked,
    })?;
    write_bytes(&dir.join("issuing.crl"), &crl, false)?;

    let file = PopulationFile {
        format: super::FORMAT,
        users: spec.users.get(),
        seed: spec.seed,
        key_kind: key_kind_name(spec.key_kind).to_owned(),
        key_pool: spec.key_pool.get(),
        fractions,
        organisations: spec.organisations.get(),
        created_at: created.unix_timestamp(),
        serial_prefix: prefix.iter().map(|b| format!("{b:02x}")).collect(),
        token_issuer: TOKEN_ISSUER.to_owned(),
        token_audience: TOKEN_AUDIENCE.to_owned(),
        token_expires_at,
        services: spec.services,
        classes,
    };
    write_population_file(dir, &file)?;
    let population = Population::open(dir)?;
    write_text(&dir.join("spinegate-fragment.toml"), &super::fragment(&population), false)?;
    Ok(population)
}

/// The CAs (RSA-2048 root and issuing CA, like the NHS's), the server certificate and the token
/// signing key, written under `pki`. Returns the issuing CA and the token signer.
fn write_pki(pki: &Path, created: OffsetDateTime) -> Result<(Ca, TokenSigner), PopulationError> {
    // CAs older than every card, as in service: an expired card was issued while its CA was
    // valid, so a gateway can still validate its chain at the card's own validity edge.
    let root = ca("spinegate Load-test Smartcard Root CA", None, created, 5 * 365, 20 * 365)?;
    let issuing = ca("spinegate Load-test Smartcard Issuing CA", Some(&root), created, 4 * 365, 10 * 365)?;
    write_text(&pki.join("root.pem"), &root.cert_pem(), false)?;
    write_text(&pki.join("root.key"), &root.key_pem(), true)?;
    write_text(&pki.join("issuing.pem"), &issuing.cert_pem(), false)?;
    write_text(&pki.join("issuing.key"), &issuing.key_pem(), true)?;
    write_text(&pki.join("ca-chain.pem"), &format!("{}{}", issuing.cert_pem(), root.cert_pem()), false)?;
    // A delegated OCSP responder (ECDSA, id-kp-OCSPSigning): signing an answer costs tens of
    // microseconds instead of an RSA-2048 signature, so the responder stays out of the way.
    let responder = issuing.issue(&LeafSpec::ocsp_responder("ocsp.loadtest.spinegate"))?;
    write_text(&pki.join("ocsp-responder.pem"), &responder.cert_pem(), false)?;
    write_text(&pki.join("ocsp-responder.key"), &responder.key_pem(), true)?;
    let tls_root = Ca::root("spinegate Load-test TLS Root CA", KeyKind::EcdsaP256)?;
    let server = tls_root.issue(&LeafSpec::server(&["localhost", "127.0.0.1"]))?;
    write_text(&pki.join("tls-root.pem"), &tls_root.cert_pem(), false)?;
    write_text(&pki.join("server.pem"), &server.chain_pem(), false)?;
    write_text(&pki.join("server.key"), &server.key_pem(), true)?;
    let (signer, signer_der) = TokenSigner::generate(TOKEN_ISSUER, TOKEN_AUDIENCE)
        .ok_or_else(|| corrupt(&pki.join("token-signing.der"), "RSA key generation failed"))?;
    write_bytes(&pki.join("token-signing.der"), &signer_der, true)?;
    Ok((issuing, signer))
}

/// An RSA-2048 CA valid from `age_days` before `created` for `life_days`, self-signed or under
/// `parent`.
fn ca(
    common_name: &str,
    parent: Option<&Ca>,
    created: OffsetDateTime,
    age_days: i64,
    life_days: i64,
) -> Result<Ca, PopulationError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "nhs");
    dn.push(DnType::OrganizationalUnitName, "CA");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = created - Duration::days(age_days);
    params.not_after = params.not_before + Duration::days(life_days);
    params.serial_number = Some(crate::ca::random_serial());
    params.use_authority_key_identifier_extension = true;
    let key = KeyKind::Rsa2048.generate()?;
    let cert = match parent {
        None => params.self_signed(&key),
        Some(parent) => params.signed_by(&key, parent.issuer()),
    }
    .map_err(crate::Error::from)?;
    // Directly under the root, the issuing CA has no parents to list besides itself.
    Ok(Ca::from_der(cert.der().clone(), key, &[], parent.is_none())?)
}

/// Mints every user in batches and writes the packs and the role directory in index order.
/// Returns the revoked cards (for the CRL) and the class counts.
fn mint_users(
    dir: &Path,
    context: &Context<'_>,
    progress: Progress<'_>,
) -> Result<(Vec<RevokedEntry>, Vec<ClassCount>), PopulationError> {
    let mut certs = PackWriter::create(&dir.join("certs"))?;
    let mut tokens = PackWriter::create(&dir.join("tokens"))?;
    let mut roles = RoleWriter::create(&dir.join("roles.json"))?;
    let mut revoked = Vec::new();
    let mut classes: BTreeMap<String, ClassCount> = BTreeMap::new();
    let users = context.derivation.users;
    let mut start = 0;
    while start < users {
        let end = start.saturating_add(BATCH).min(users);
        for minted in mint_batch(context, start, end)? {
            let user = context.derivation.user(minted.index);
            certs.push(&minted.cert)?;
            tokens.push(minted.token.as_deref().unwrap_or_default().as_bytes())?;
            if let derive::Credential::Smartcard(state) = user.credential {
                roles.push(&user)?;
                if state == derive::CardState::Revoked {
                    let serial = derive::serial(&context.prefix, user.index);
                    revoked.push(RevokedEntry { serial: serial.to_vec(), at: context.created, reason: Some(1) });
                }
            }
            let label = class_label(user.credential, user.lacks_role);
            classes
                .entry(label.clone())
                .or_insert_with(|| ClassCount {
                    class: label,
                    users: 0,
                    spinegate_must_answer: spinegate_answer(user.credential, user.lacks_role).to_owned(),
                })
                .users += 1;
        }
        progress(end, users);
        start = end;
    }
    certs.finish()?;
    tokens.finish()?;
    roles.finish()?;
    Ok((revoked, classes.into_values().collect()))
}

/// What every minting thread reads.
struct Context<'a> {
    derivation: derive::Derivation,
    prefix: [u8; 7],
    created: OffsetDateTime,
    issuing: &'a Ca,
    pool: &'a [(Vec<u8>, SubjectPublicKeyInfo)],
    signer: &'a TokenSigner,
    token_expires_at: i64,
}

/// One user's signed material.
struct Minted {
    index: u32,
    cert: Vec<u8>,
    token: Option<String>,
}

/// Mints users `start..end` on every core; the result is in index order.
fn mint_batch(context: &Context<'_>, start: u32, end: u32) -> Result<Vec<Minted>, PopulationError> {
    let threads = std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1) as u32;
    let per_thread = (end - start).div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (start..end)
            .step_by(per_thread as usize)
            .map(|from| {
                let to = from.saturating_add(per_thread).min(end);
                scope.spawn(move || (from..to).map(|i| mint_one(context, i)).collect::<Result<Vec<_>, _>>())
            })
            .collect();
        let mut out = Vec::with_capacity((end - start) as usize);
        for handle in handles {
            let minted = handle.join().map_err(|_| corrupt(Path::new("<minting>"), "a minting thread panicked"))?;
            out.extend(minted?);
        }
        Ok(out)
    })
}

fn mint_one(context: &Context<'_>, index: u32) -> Result<Minted, PopulationError> {
    let user = context.derivation.user(index);
    match user.credential {
        derive::Credential::Smartcard(state) => {
            let created = context.created;
            let (not_before, not_after) = match state {
                derive::CardState::Valid | derive::CardState::Revoked => {
                    (created - Duration::days(1), created + Duration::days(730))
                }
                derive::CardState::ExpiringSoon => (created - Duration::days(365), created + Duration::days(45)),
                derive::CardState::Expired => (created - Duration::days(3 * 365 + 10), created - Duration::days(10)),
            };
            let serial = derive::serial(&context.prefix, index);
            let spec = LeafSpec::smartcard(&user.user_id, user.surname, user.forename)
                .valid_between(not_before, not_after)
                .serial(&serial);
            let (_, public) = &context.pool[index as usize % context.pool.len()];
            let cert = spec.params()?.signed_by(public, context.issuing.issuer()).map_err(crate::Error::from)?;
            Ok(Minted { index, cert: cert.der().to_vec(), token: None })
        }
        derive::Credential::Token(authenticator) => {
            let token = context
                .signer
                .token(&user, authenticator, context.created.unix_timestamp(), context.token_expires_at)
                .ok_or_else(|| corrupt(Path::new("<token>"), "RSA signing failed"))?;
            Ok(Minted { index, cert: Vec::new(), token: Some(token) })
        }
    }
}

/// `size` key pairs of `kind`, generated on every core: PKCS#8 DER and the public key.
fn key_pool(kind: KeyKind, size: u32) -> Result<Vec<(Vec<u8>, SubjectPublicKeyInfo)>, PopulationError> {
    let threads = std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1) as u32;
    let per_thread = size.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..size)
            .step_by(per_thread as usize)
            .map(|from| {
                let count = per_thread.min(size - from);
                scope.spawn(move || {
                    (0..count)
                        .map(|_| {
                            let key: KeyPair = kind.generate()?;
                            let public = SubjectPublicKeyInfo::from_der(&key.subject_public_key_info())?;
                            Ok((key.serialize_der(), public))
                        })
                        .collect::<Result<Vec<_>, crate::Error>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(size as usize);
        for handle in handles {
            let keys = handle.join().map_err(|_| corrupt(Path::new("<key pool>"), "a key thread panicked"))?;
            out.extend(keys?);
        }
        Ok(out)
    })
}

/// Streams the role directory (JSON, the gateway's file format) one user at a time.
struct RoleWriter {
    out: BufWriter<std::fs::File>,
    path: std::path::PathBuf,
    first: bool,
}

impl RoleWriter {
    fn create(path: &Path) -> Result<Self, PopulationError> {
        let file = std::fs::File::create(path).map_err(|e| PopulationError::io(path, e))?;
        let mut out = BufWriter::new(file);
        out.write_all(b"{\"user\": [\n").map_err(|e| PopulationError::io(path, e))?;
        Ok(Self { out, path: path.to_path_buf(), first: true })
    }

    fn push(&mut self, user: &derive::PopUser) -> Result<(), PopulationError> {
        let roles: Vec<serde_json::Value> = user
            .roles
            .iter()
            .map(|r| json!({"id": r.id, "org": r.org, "role_code": r.role_code, "activities": r.activities}))
            .collect();
        let entry = json!({"id": user.user_id, "role": roles});
        let sep = if self.first { "" } else { ",\n" };
        self.first = false;
        write!(self.out, "{sep}{entry}").map_err(|e| PopulationError::io(&self.path, e))
    }

    fn finish(mut self) -> Result<(), PopulationError> {
        self.out.write_all(b"\n]}\n").map_err(|e| PopulationError::io(&self.path, e))?;
        self.out.flush().map_err(|e| PopulationError::io(&self.path, e))
    }
}

fn write_population_file(dir: &Path, file: &PopulationFile) -> Result<(), PopulationError> {
    let path = dir.join("population.json");
    let text = serde_json::to_string_pretty(file).map_err(|e| corrupt(&path, &e.to_string()))?;
    let tmp = dir.join("population.json.tmp");
    write_text(&tmp, &text, false)?;
    std::fs::rename(&tmp, &path).map_err(|e| PopulationError::io(&path, e))
}

fn write_text(path: &Path, text: &str, secret: bool) -> Result<(), PopulationError> {
    write_bytes(path, text.as_bytes(), secret)
}

fn write_bytes(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PopulationError> {
    std::fs::write(path, bytes).map_err(|e| PopulationError::io(path, e))?;
    if secret { restrict(path) } else { Ok(()) }
}

fn restrict(path: &Path) -> Result<(), PopulationError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| PopulationError::io(path, e))
}

fn corrupt(path: &Path, message: &str) -> PopulationError {
    PopulationError::Corrupt { path: path.to_path_buf(), message: message.to_owned() }
}
