//! The client-certificate trust store: path validation (webpki) to the configured anchors, the
//! size and depth caps that run before any parsing, and identity extraction by the issuing CA's
//! rule. Everything here is pure: certificates and `now` in, identity or [`CertFailure`] out.

use std::sync::Arc;

use aws_lc_rs::digest;
use rustls::DistinguishedName;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use spinegate_config::{ClientAuth, EkuPolicy, IdentityRule, RevocationDepth};
use std::collections::HashMap;

use spinegate_revocation::IssuerId;
use spinegate_revocation::issuer::{IssuingCa, Subject};
use webpki::{EndEntityCert, KeyUsage};

use crate::identity::{self, CertIdentity, IdentityError};
use crate::material::{self, MaterialError};

/// Why a client certificate chain was refused. Each variant is also a stable metric label.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CertFailure {
    /// More bytes of certificates than `max_chain_bytes`; refused before parsing.
    #[error("chain of {bytes} bytes exceeds the configured cap")]
    ChainTooLarge {
        /// Bytes presented.
        bytes: usize,
    },
    /// More certificates than `max_chain_length`, presented or in the shortest path to an anchor.
    #[error("chain of {certs} certificates exceeds the maximum")]
    ChainTooLong {
        /// Certificates presented, or in the shortest complete path found (leaf and anchor
        /// included).
        certs: usize,
    },
    /// Not a well-formed certificate.
    #[error("malformed certificate: {0}")]
    Malformed(webpki::Error),
    /// No path to a trust anchor.
    #[error("no path to a trusted CA")]
    UnknownCa,
    /// notAfter has passed (leaf or a CA in the path).
    #[error("certificate has expired")]
    Expired,
    /// notBefore has not arrived.
    #[error("certificate is not yet valid")]
    NotYetValid,
    /// The leaf is not for client authentication (EKU), or is a CA.
    #[error("certificate is not for client authentication")]
    WrongPurpose,
    /// A signature in the path does not verify or uses an unsupported algorithm.
    #[error("bad signature in the chain: {0}")]
    BadSignature(webpki::Error),
    /// Valid chain, but the subject carries no user identity by the issuer's rule.
    #[error("certificate carries no user identity: {0}")]
    NotAUser(IdentityError),
    /// The leaf's public key is one whose private key is recoverable (ROCA fingerprint).
    #[error("certificate key is known-weak: {0}")]
    WeakKey(&'static str),
    /// Known to be revoked.
    #[error("certificate is revoked")]
    Revoked,
    /// Any other path validation failure (name constraints, path length …).
    #[error("chain does not validate: {0}")]
    Invalid(webpki::Error),
}

impl CertFailure {
    /// The stable label used in logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            CertFailure::ChainTooLarge { .. } => "chain_too_large",
            CertFailure::ChainTooLong { .. } => "chain_too_long",
            CertFailure::Malformed(_) => "malformed",
            CertFailure::UnknownCa => "unknown_ca",
            CertFailure::Expired => "expired",
            CertFailure::NotYetValid => "not_yet_valid",
            CertFailure::WrongPurpose => "wrong_purpose",
            CertFailure::BadSignature(_) => "bad_signature",
            CertFailure::NotAUser(_) => "no_user_identity",
            CertFailure::WeakKey(_) => "weak_key",
            CertFailure::Revoked => "revoked",
            CertFailure::Invalid(_) => "invalid",
        }
    }

    /// The rustls error, whose alert the client sees: `unknown_ca`, `certificate_expired`,
    /// `unsupported_certificate` (wrong EKU), `certificate_revoked`, else `bad_certificate`.
    pub fn to_rustls(&self) -> rustls::Error {
        use rustls::CertificateError as E;
        rustls::Error::InvalidCertificate(match self {
            CertFailure::UnknownCa => E::UnknownIssuer,
            CertFailure::Expired => E::Expired,
            CertFailure::NotYetValid => E::NotValidYet,
            CertFailure::WrongPurpose => E::InvalidPurpose,
            CertFailure::Revoked => E::Revoked,
            // rustls sends bad_certificate for BadEncoding: the right alert for the rest.
            CertFailure::ChainTooLarge { .. }
            | CertFailure::ChainTooLong { .. }
            | CertFailure::Malformed(_)
            | CertFailure::BadSignature(_)
            | CertFailure::NotAUser(_)
            | CertFailure::WeakKey(_)
            | CertFailure::Invalid(_) => E::BadEncoding,
        })
    }

    fn from_webpki(e: webpki::Error) -> Self {
        use webpki::Error as W;
        #[allow(deprecated)] // the context-free variants are still produced by some paths
        match e {
            W::UnknownIssuer => CertFailure::UnknownCa,
            W::CertExpired { .. } => CertFailure::Expired,
            W::CertNotValidYet { .. } => CertFailure::NotYetValid,
            W::CertRevoked => CertFailure::Revoked,
            W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) | W::EmptyEkuExtension | W::CaUsedAsEndEntity => {
                CertFailure::WrongPurpose
            }
            W::MaximumPathDepthExceeded => CertFailure::ChainTooLong { certs: WEBPKI_MAX_CHAIN + 1 },
            W::InvalidSignatureForPublicKey
            | W::UnsupportedSignatureAlgorithm
            | W::UnsupportedSignatureAlgorithmContext(_)
            | W::UnsupportedSignatureAlgorithmForPublicKey
            | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
            | W::SignatureAlgorithmMismatch => CertFailure::BadSignature(e),
            W::BadDer
            | W::BadDerTime
            | W::TrailingData(_)
            | W::MalformedExtensions
            | W::ExtensionValueInvalid
            | W::UnsupportedCertVersion
            | W::UnsupportedCriticalExtension
            | W::InvalidSerialNumber
            | W::InvalidCertValidity => CertFailure::Malformed(e),
            other => CertFailure::Invalid(other),
        }
    }
}

/// The longest path webpki builds: six intermediates, plus leaf and anchor. `max_chain_length`
/// cannot usefully exceed it (config validation enforces that).
pub const WEBPKI_MAX_CHAIN: usize = 8;

struct KnownIssuer {
    id: IssuerId,
    name: Arc<str>,
    rule: IdentityRule,
}

/// Trust anchors, intermediates, caps and identity rules, loaded from `[client_auth]`.
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    /// Every CA the configuration names (anchors, intermediates, issuers), for revocation.
    known_cas: HashMap<IssuerId, Arc<IssuingCa>>,
    intermediates: Vec<CertificateDer<'static>>,
    issuers: Vec<KnownIssuer>,
    default_rule: IdentityRule,
    default_name: Arc<str>,
    max_chain_length: usize,
    max_chain_bytes: usize,
    eku: EkuPolicy,
    revocation_depth: RevocationDepth,
    root_hints: Vec<DistinguishedName>,
    sig_algs: &'static [&'static dyn SignatureVerificationAlgorithm],
    anchor_facts: Vec<AnchorFacts>,
    /// The chain-cache trust epoch entries verified by this store carry (set when the store is
    /// put in service; see `reload`).
    epoch: std::sync::atomic::AtomicU64,
    /// SHA-256 over the settings and the very certificates this store was built from.
    digest: [u8; 32],
}

/// What is worth warning about in a trust anchor. webpki uses only an anchor's subject, key and
/// name constraints, so an expired or non-CA root still anchors paths: the operator should know.
#[derive(Debug)]
struct AnchorFacts {
    subject: String,
    not_before: u64,
    not_after: u64,
    is_ca: bool,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("anchors", &self.anchors.len())
            .field("intermediates", &self.intermediates.len())
            .field("issuers", &self.issuers.len())
            .finish_non_exhaustive()
    }
}

/// The certificates a [`TrustStore`] is built from, already read from disk.
#[derive(Clone, Debug, Default)]
pub struct TrustMaterial {
    /// Trust anchors (roots).
    pub anchors: Vec<CertificateDer<'static>>,
    /// Intermediates for path building.
    pub intermediates: Vec<CertificateDer<'static>>,
    /// Issuing CAs with their own name and identity rule.
    pub issuers: Vec<(String, CertificateDer<'static>, IdentityRule)>,
}

impl TrustMaterial {
    /// SHA-256 over `config`'s settings (their debug form: rules and limits) and every
    /// certificate, length-prefixed, in order.
    fn digest(&self, config: &ClientAuth) -> [u8; 32] {
        let mut digest = digest::Context::new(&digest::SHA256);
        digest.update(format!("{config:?}").as_bytes());
        let mut add = |der: &CertificateDer<'_>| {
            digest.update(&(der.len() as u64).to_be_bytes());
            digest.update(der.as_ref());
        };
        self.anchors.iter().chain(&self.intermediates).for_each(&mut add);
        self.issuers.iter().for_each(|(_, der, _)| add(der));
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.finish().as_ref());
        out
    }
}

/// A certificate in [`TrustMaterial`] that cannot serve its role.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Trust anchor number `index` is unusable.
    #[error("trust anchor {index}: {reason}")]
    Anchor {
        /// Position in [`TrustMaterial::anchors`].
        index: usize,
        /// Why.
        reason: String,
    },
    /// Issuer number `index` is unusable.
    #[error("issuer {index}: {reason}")]
    Issuer {
        /// Position in [`TrustMaterial::issuers`].
        index: usize,
        /// Why.
        reason: String,
    },
}

impl TrustStore {
    /// Loads the files `[client_auth]` names.
    pub fn load(
        config: &ClientAuth,
        sig_algs: &'static [&'static dyn SignatureVerificationAlgorithm],
    ) -> Result<Self, MaterialError> {
        // Remember which file each anchor came from, to name it in errors.
        let mut anchor_files = Vec::new();
        let mut material = TrustMaterial::default();
        for path in &config.trust_anchors {
            for der in material::certificates(path)? {
                anchor_files.push(path.clone());
                material.anchors.push(der);
            }
        }
        for path in &config.intermediates {
            material.intermediates.extend(material::certificates(path)?);
        }
        for issuer in &config.issuers {
            let der = material::certificates(&issuer.certificate)?.remove(0);
            material.issuers.push((issuer.name.clone(), der, issuer.identity.clone()));
        }
        Self::build(config, material, sig_algs).map_err(|e| match e {
            TrustError::Anchor { index, reason } => {
                MaterialError::BadCertificate { path: anchor_files[index].clone(), reason }
            }
            TrustError::Issuer { index, reason } => {
                MaterialError::BadCertificate { path: config.issuers[index].certificate.clone(), reason }
            }
        })
    }

    /// Builds a store from certificates in memory, with the caps and rules of `config` (whose
    /// paths are ignored).
    pub fn build(
        config: &ClientAuth,
        material: TrustMaterial,
        sig_algs: &'static [&'static dyn SignatureVerificationAlgorithm],
    ) -> Result<Self, TrustError> {
        let digest = material.digest(config);
        let mut anchors = Vec::with_capacity(material.anchors.len());
        let mut anchor_facts = Vec::with_capacity(material.anchors.len());
        let mut root_hints = Vec::new();
        for (index, der) in material.anchors.iter().enumerate() {
            let anchor = webpki::anchor_from_trusted_cert(der)
                .map_err(|e| TrustError::Anchor { index, reason: e.to_string() })?
                .to_owned();
            root_hints.push(DistinguishedName::in_sequence(anchor.subject.as_ref()));
            anchors.push(anchor);
            if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
                let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
                anchor_facts.push(AnchorFacts {
                    subject: cert.subject().to_string(),
                    not_before: secs(cert.validity().not_before),
                    not_after: secs(cert.validity().not_after),
                    is_ca: matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca),
                });
            }
        }
        let mut known_cas = HashMap::new();
        for anchor in &anchors {
            let subject = DistinguishedName::in_sequence(anchor.subject.as_ref());
            if let Ok(ca) = IssuingCa::new(subject.as_ref(), webpki::spki_for_anchor(anchor).as_ref()) {
                known_cas.insert(ca.id(), Arc::new(ca));
            }
        }
        let mut intermediates = material.intermediates;
        for der in &intermediates {
            if let Ok(ca) = IssuingCa::from_cert_der(der) {
                known_cas.insert(ca.id(), Arc::new(ca));
            }
        }
        let mut issuers = Vec::with_capacity(material.issuers.len());
        for (index, (name, der, rule)) in material.issuers.into_iter().enumerate() {
            let (_, parsed) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| TrustError::Issuer { index, reason: e.to_string() })?;
            let ca = IssuingCa::new(parsed.subject().as_raw(), parsed.public_key().raw)
                .map_err(|e| TrustError::Issuer { index, reason: e.to_string() })?;
            issuers.push(KnownIssuer { id: ca.id(), name: name.into(), rule });
            known_cas.insert(ca.id(), Arc::new(ca));
            // x509-parser's raw Name already includes the outer SEQUENCE.
            root_hints.push(DistinguishedName::from(parsed.subject().as_raw().to_vec()));
            // An issuing CA that is not itself an anchor is an intermediate for path building.
            let self_issued = parsed.subject() == parsed.issuer();
            if !self_issued && !intermediates.contains(&der) {
                intermediates.push(der);
            }
        }
        Ok(Self {
            digest,
            anchors,
            known_cas,
            intermediates,
            issuers,
            default_rule: config.identity.clone(),
            default_name: "default".into(),
            max_chain_length: config.max_chain_length.get(),
            max_chain_bytes: config.max_chain_bytes.get(),
            eku: config.client_auth_eku,
            revocation_depth: config.revocation_depth,
            root_hints,
            sig_algs,
            anchor_facts,
            epoch: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// SHA-256 over the client-authentication settings and every anchor, intermediate and issuer
    /// certificate this store was built from — the bytes it uses, not a second read of the
    /// files, which could race with an operator replacing one. A reload that leaves it
    /// unchanged keeps the verified-chain cache.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The chain-cache trust epoch this store verifies under (a new cache starts at 1).
    pub fn epoch(&self) -> spinegate_cert_cache::TrustEpoch {
        spinegate_cert_cache::TrustEpoch(self.epoch.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Puts the store in service under `epoch`: entries it verifies carry it, so entries of a
    /// store that was replaced never count as current.
    pub fn set_epoch(&self, epoch: spinegate_cert_cache::TrustEpoch) {
        self.epoch.store(epoch.0, std::sync::atomic::Ordering::Release);
    }

    /// Problems with the trust anchors at `now` that do not stop them anchoring paths: expired or
    /// not yet valid, or not marked as a CA. `spinegate check-config` prints them; the gateway
    /// logs them at start.
    pub fn anchor_warnings(&self, now: UnixTime) -> Vec<String> {
        let now = now.as_secs();
        let mut out = Vec::new();
        for a in &self.anchor_facts {
            if now > a.not_after {
                out.push(format!("trust anchor {} has expired; it still anchors paths", a.subject));
            } else if now < a.not_before {
                out.push(format!("trust anchor {} is not valid yet; it still anchors paths", a.subject));
            }
            if !a.is_ca {
                out.push(format!("trust anchor {} is not a CA certificate (basicConstraints cA)", a.subject));
            }
        }
        if self.anchors.is_empty() {
            out.push("no trust anchors: every client certificate will be refused".to_owned());
        }
        out
    }

    /// Whether at least one trust anchor is inside its validity period at `now` (an empty store
    /// has none): without one, path validation has nothing current to build to.
    pub fn has_current_anchor(&self, now: UnixTime) -> bool {
        let now = now.as_secs();
        self.anchor_facts.iter().any(|a| a.not_before <= now && now <= a.not_after)
    }

    /// Distinguished names sent in the CertificateRequest so clients pick a matching card.
    pub fn root_hints(&self) -> &[DistinguishedName] {
        &self.root_hints
    }

    /// Validates a presented chain at `now` and reads the holder's identity.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<CertIdentity, CertFailure> {
        // webpki applies its EKU rule to every certificate in the path, and CA certificates
        // rarely carry EKU; so webpki checks "clientAuth if present" along the path and the
        // leaf's own EKU requirement is checked here.
        let chain = self.revocation_depth == RevocationDepth::Chain;
        let path = self.validate(end_entity, intermediates, now, KeyUsage::client_auth(), chain)?;
        self.identity(end_entity, path)
    }

    /// Path validation alone, with an explicit key usage: the x509-limbo corpus runs through this
    /// with each case's expected usage. Returns the leaf's issuing CA.
    pub fn verify_with_usage(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
    ) -> Result<Arc<IssuingCa>, CertFailure> {
        self.validate(end_entity, intermediates, now, usage, false).map(|p| p.leaf_issuer)
    }

    /// Path validation with the client-auth EKU rule, then the leaf and every intermediate CA of
    /// the path described for revocation checking — what the gateway checks under
    /// `revocation_depth = "chain"`, without reading a user identity (the PKITS corpus runs
    /// through this).
    pub fn revocation_subjects(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
    ) -> Result<(Arc<Subject>, Vec<Arc<Subject>>), CertFailure> {
        let path = self.validate(end_entity, intermediates, now, usage, true)?;
        let leaf = Subject::from_cert_der(end_entity, path.leaf_issuer)
            .map_err(|_| CertFailure::Malformed(webpki::Error::BadDer))?;
        Ok((Arc::new(leaf), path.ca_subjects))
    }

    /// Path validation; with `chain`, also describes each intermediate CA of the path for
    /// revocation checking.
    fn validate(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
        chain: bool,
    ) -> Result<ValidPath, CertFailure> {
        // Caps first: nothing below parses a byte of a chain that breaks them.
        let bytes = end_entity.len() + intermediates.iter().map(|c| c.len()).sum::<usize>();
        if bytes > self.max_chain_bytes {
            return Err(CertFailure::ChainTooLarge { bytes });
        }
        let presented = 1 + intermediates.len();
        if presented > self.max_chain_length {
            return Err(CertFailure::ChainTooLong { certs: presented });
        }
        let leaf = EndEntityCert::try_from(end_entity).map_err(CertFailure::Malformed)?;
        // Borrowed views: the configured intermediates are not copied per verification.
        let candidates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_ref()))
            .chain(self.intermediates.iter().map(|c| CertificateDer::from(c.as_ref())))
            .collect();
        let max = self.max_chain_length;
        // webpki reports the error of the last candidate path it tried; remember whether a path
        // that reached an anchor was refused for length, so that is what gets reported.
        let shortest_too_long = std::cell::Cell::new(None::<usize>);
        let depth_check = |path: &webpki::VerifiedPath<'_>| {
            let certs = path.intermediate_certificates().count() + 2; // leaf + intermediates + anchor
            if certs > max {
                shortest_too_long.set(Some(shortest_too_long.get().map_or(certs, |n| n.min(certs))));
                Err(webpki::Error::MaximumPathDepthExceeded)
            } else {
                Ok(())
            }
        };
        let path = leaf
            .verify_for_usage(self.sig_algs, &self.anchors, &candidates, now, usage, None, Some(&depth_check))
            .map_err(|e| match (CertFailure::from_webpki(e), shortest_too_long.get()) {
                // Validity is about the leaf itself and is checked first: keep it.
                (f @ (CertFailure::Expired | CertFailure::NotYetValid), _) => f,
                (_, Some(certs)) => CertFailure::ChainTooLong { certs },
                // webpki's own ceiling stopped path building before any path was complete.
                (CertFailure::ChainTooLong { .. }, None) => CertFailure::ChainTooLong { certs: WEBPKI_MAX_CHAIN + 1 },
                (other, None) => other,
            })?;
        let path_cas: Vec<CertificateDer<'_>> = path.intermediate_certificates().map(|c| c.der()).collect();
        let anchor = self.ca_for_spki(webpki::spki_for_anchor(path.anchor()).as_ref(), None)?;
        // Each CA's issuer is the next CA up the path; the last one's is the anchor.
        let mut issuers = Vec::with_capacity(path_cas.len() + 1);
        for der in &path_cas {
            issuers.push(self.ca_for_cert(der)?);
        }
        issuers.push(anchor);
        let ca_subjects = if chain {
            path_cas
                .iter()
                .zip(issuers.iter().skip(1))
                .map(|(der, issuer)| {
                    Subject::from_cert_der(der, Arc::clone(issuer))
                        .map(Arc::new)
                        .map_err(|_| CertFailure::Malformed(webpki::Error::BadDer))
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        // The path is only as valid as its shortest-lived CA: an intermediate that ends before
        // the card must end the connection's use of it too.
        let cas_not_after = path_cas.iter().filter_map(validity).map(|(_, not_after)| not_after).min();
        Ok(ValidPath { leaf_issuer: Arc::clone(&issuers[0]), ca_subjects, cas_not_after })
    }

    /// A CA of a verified path, by certificate: from configuration when known, else described
    /// from the certificate the client sent.
    fn ca_for_cert(&self, der: &CertificateDer<'_>) -> Result<Arc<IssuingCa>, CertFailure> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|_| CertFailure::Malformed(webpki::Error::BadDer))?;
        self.ca_for_spki(cert.public_key().raw, Some(cert.subject().as_raw()))
    }

    fn ca_for_spki(&self, spki: &[u8], subject: Option<&[u8]>) -> Result<Arc<IssuingCa>, CertFailure> {
        if let Some(ca) = self.known_cas.get(&issuer_id(spki)) {
            return Ok(Arc::clone(ca));
        }
        let subject = subject.ok_or(CertFailure::Malformed(webpki::Error::BadDer))?;
        IssuingCa::new(subject, spki).map(Arc::new).map_err(|_| CertFailure::Malformed(webpki::Error::BadDer))
    }

    fn identity(&self, leaf_der: &CertificateDer<'_>, path: ValidPath) -> Result<CertIdentity, CertFailure> {
        let issuer = path.leaf_issuer;
        // webpki accepted these bytes, so x509-parser failing on them would be a parser
        // disagreement: refuse rather than guess.
        let (_, leaf) =
            x509_parser::parse_x509_certificate(leaf_der).map_err(|_| CertFailure::Malformed(webpki::Error::BadDer))?;
        if self.eku == EkuPolicy::Require {
            let client_auth = matches!(leaf.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth);
            if !client_auth {
                return Err(CertFailure::WrongPurpose);
            }
        }
        if let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = leaf.public_key().parsed()
            && spinegate_token::weak_key::rsa_modulus_has_roca_fingerprint(rsa.modulus)
        {
            return Err(CertFailure::WeakKey("ROCA fingerprint (CVE-2017-15361)"));
        }
        let known = self.issuers.iter().find(|i| i.id == issuer.id());
        let (issuer_name, rule) = match known {
            Some(k) => (Arc::clone(&k.name), &k.rule),
            None => (Arc::clone(&self.default_name), &self.default_rule),
        };
        let user_id = identity::user_id(&leaf, rule).map_err(CertFailure::NotAUser)?;
        let revocation = Subject::from_parsed(&leaf, issuer)
            .map_err(|_| CertFailure::Malformed(webpki::Error::InvalidSerialNumber))?;
        let not_after = leaf.validity().not_after;
        let not_after_secs = u64::try_from(not_after.timestamp()).unwrap_or(0);
        let rfc3339 = not_after
            .to_datetime()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| not_after.to_string());
        Ok(CertIdentity {
            user_id,
            issuer_name,
            revocation: Arc::new(revocation),
            ca_revocation: path.ca_subjects.into(),
            not_after: not_after_secs,
            path_not_after: path.cas_not_after.map_or(not_after_secs, |ca| ca.min(not_after_secs)),
            not_after_rfc3339: rfc3339.into(),
        })
    }
}

/// What path validation established, for identity and revocation.
struct ValidPath {
    leaf_issuer: Arc<IssuingCa>,
    ca_subjects: Vec<Arc<Subject>>,
    /// The earliest notAfter of the path's intermediate CAs.
    cas_not_after: Option<u64>,
}

/// A certificate's notBefore and notAfter, Unix seconds.
pub fn validity(der: &CertificateDer<'_>) -> Option<(u64, u64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).ok();
    Some((secs(cert.validity().not_before)?, secs(cert.validity().not_after)?))
}

/// SHA-256 of a SubjectPublicKeyInfo: how issuers are told apart.
pub fn issuer_id(spki_der: &[u8]) -> IssuerId {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, spki_der).as_ref());
    IssuerId(out)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use spinegate_config::{IdentityRule, UserIdSource};
    use spinegate_devpki::{Ca, KeyKind, LeafSpec};

    use super::*;

    fn settings(max_chain_length: usize) -> ClientAuth {
        ClientAuth {
            trust_anchors: Vec::new(),
            intermediates: Vec::new(),
            max_chain_length: NonZeroUsize::new(max_chain_length).unwrap(),
            max_chain_bytes: NonZeroUsize::new(16 * 1024).unwrap(),
            client_auth_eku: EkuPolicy::Require,
            revocation_depth: spinegate_config::RevocationDepth::Leaf,
            expiry_warning: Duration::from_secs(90 * 86_400),
            identity: IdentityRule {
                user_id: UserIdSource::SubjectCnPrefix { separator: '_' },
                require_ou: Some("People".into()),
                require_o: Some("nhs".into()),
            },
            revocation: spinegate_config::RevocationPolicy::default(),
            issuers: Vec::new(),
        }
    }

    fn algs() -> &'static [&'static dyn SignatureVerificationAlgorithm] {
        rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.all
    }

    #[test]
    fn too_long_path_through_configured_intermediates_reports_its_length() {
        let root = Ca::root("R", KeyKind::EcdsaP256).unwrap();
        let i1 = root.intermediate("I1", KeyKind::EcdsaP256).unwrap();
        let i2 = i1.intermediate("I2", KeyKind::EcdsaP256).unwrap();
        let i3 = i2.intermediate("I3", KeyKind::EcdsaP256).unwrap();
        let leaf = i3.issue(&LeafSpec::smartcard("555000000001", "A", "B").key(KeyKind::EcdsaP256)).unwrap();
        let material = TrustMaterial {
            anchors: vec![root.cert().clone()],
            intermediates: vec![i1.cert().clone(), i2.cert().clone(), i3.cert().clone()],
            issuers: Vec::new(),
        };
        let store = TrustStore::build(&settings(4), material.clone(), algs()).unwrap();
        // The client sends only its leaf: the five-certificate path is built from configuration.
        let err = store.verify(&leaf.cert, &[], UnixTime::now()).unwrap_err();
        assert!(matches!(err, CertFailure::ChainTooLong { certs: 5 }), "{err:?}");

        let roomy = TrustStore::build(&settings(5), material, algs()).unwrap();
        assert_eq!(roomy.verify(&leaf.cert, &[], UnixTime::now()).unwrap().user_id.as_str(), "555000000001");
    }

    #[test]
    fn smartcard_keys_with_the_roca_fingerprint_are_refused() {
        use spinegate_token::jose::{rsa_public_key_der, tlv};
        let root = Ca::root("R", KeyKind::EcdsaP256).unwrap();
        let material = TrustMaterial { anchors: vec![root.cert().clone()], ..TrustMaterial::default() };
        let store = TrustStore::build(&settings(4), material, algs()).unwrap();
        let spki = |n: &[u8]| {
            let algorithm = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
            let mut bits = vec![0];
            bits.extend(rsa_public_key_der(n, &[1, 0, 1]));
            let mut body = algorithm.to_vec();
            body.extend(tlv(0x03, &bits));
            tlv(0x30, &body)
        };
        // 65537^127 + k·M: a 2,033-bit modulus of the shape an affected chip generates.
        let weak = spinegate_token::weak_key::roca_shaped(1_000_003, 127);
        assert!(weak.len() * 8 >= 2032, "{}", weak.len());
        let spec = LeafSpec::smartcard("555000000001", "A", "B");
        let cert = root.issue_for_public_key(&spec, &spki(&weak)).unwrap();
        let err = store.verify(&cert, &[], UnixTime::now()).unwrap_err();
        assert!(matches!(err, CertFailure::WeakKey(_)), "{err:?}");
        assert_eq!(err.label(), "weak_key");

        // The same certificate with an ordinary modulus of that size passes.
        let mut ordinary = weak.clone();
        *ordinary.last_mut().unwrap() ^= 2;
        assert!(!spinegate_token::weak_key::rsa_modulus_has_roca_fingerprint(&ordinary));
        let cert = root.issue_for_public_key(&spec, &spki(&ordinary)).unwrap();
        assert_eq!(store.verify(&cert, &[], UnixTime::now()).unwrap().user_id.as_str(), "555000000001");
    }

    #[test]
    fn anchor_problems_are_reported_as_warnings() {
        let root = Ca::root("R", KeyKind::EcdsaP256).unwrap();
        let not_a_ca = root.issue(&LeafSpec::server(&["not-a-ca.example"])).unwrap();
        let material =
            TrustMaterial { anchors: vec![root.cert().clone(), not_a_ca.cert.clone()], ..TrustMaterial::default() };
        let store = TrustStore::build(&settings(4), material, algs()).unwrap();
        let warnings = store.anchor_warnings(UnixTime::now());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("not-a-ca.example") && warnings[0].contains("not a CA"));

        let far_future = UnixTime::since_unix_epoch(Duration::from_secs(4_000_000_000 * 2));
        assert!(store.anchor_warnings(far_future).iter().any(|w| w.contains("has expired")));

        let empty = TrustStore::build(&settings(4), TrustMaterial::default(), algs()).unwrap();
        assert!(empty.anchor_warnings(UnixTime::now())[0].contains("every client certificate will be refused"));
    }
}
