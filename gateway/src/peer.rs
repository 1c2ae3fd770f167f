//! The connection's client certificate: resolved once per connection (chain cache, else full
//! verification), re-checked on every request.
//!
//! Resumed TLS sessions never run the handshake verifier, and connections stay open for hours, so
//! the request path must not trust "it was fine at handshake". Each request compares the cached
//! entry's trust epoch and notAfter with now (two integer comparisons), re-resolving when either
//! changed, and then asks the revocation snapshot when its generation moved.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls_pki_types::{CertificateDer, UnixTime};
use spinegate_cert_cache::{ChainCache, ChainFingerprint, Entry, Lookup, MissReason};
use spinegate_revocation::issuer::Subject;
use spinegate_revocation::{Answer, Revocation, Status};

use crate::identity::{CertIdentity, UserId};
use crate::metrics as m;
use crate::trust::{CertFailure, TrustStore, validity};

/// The chain cache as the gateway uses it.
pub type Cache = ChainCache<Arc<CertIdentity>>;
/// One verified chain.
pub type VerifiedEntry = Arc<Entry<Arc<CertIdentity>>>;

/// Finds or verifies a presented chain at `now`. Used by the handshake verifier and by the
/// per-connection resolution of resumed sessions.
pub fn resolve(
    trust: &TrustStore,
    cache: &Cache,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<VerifiedEntry, CertFailure> {
    let fingerprint = ChainFingerprint::of_chain(end_entity, intermediates);
    resolve_fingerprinted(trust, cache, &fingerprint, end_entity, intermediates, now)
}

fn resolve_fingerprinted(
    trust: &TrustStore,
    cache: &Cache,
    fingerprint: &ChainFingerprint,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<VerifiedEntry, CertFailure> {
    let miss = match cache.lookup(fingerprint, now) {
        Lookup::Hit(entry) => {
            metrics::counter!(m::CHAIN_CACHE_LOOKUPS, "result" => "hit").increment(1);
            return Ok(entry);
        }
        Lookup::Miss(reason) => reason,
    };
    let label = match miss {
        MissReason::Absent => "miss_absent",
        MissReason::Expired => "miss_expired",
        MissReason::TrustChanged => "miss_trust_changed",
    };
    metrics::counter!(m::CHAIN_CACHE_LOOKUPS, "result" => label).increment(1);
    // The entry carries the epoch of the store that verified it: if that store has been replaced
    // (anchors changed on reload), the cache does not keep it.
    let epoch = trust.epoch();
    let identity = trust.verify(end_entity, intermediates, now)?;
    // Each certificate is counted once per cache lifetime, not per connection: the histogram is
    // of cards seen, for the renewal-window panel.
    metrics::histogram!(m::CLIENT_CERT_REMAINING).record(identity.not_after.saturating_sub(now.as_secs()) as f64);
    let not_after = UnixTime::since_unix_epoch(std::time::Duration::from_secs(identity.path_not_after));
    Ok(cache.insert(*fingerprint, Entry::new(Arc::new(identity), not_after, epoch), now))
}

/// Refuses a certificate already known to be revoked (deny list, a loaded CRL, a cached OCSP
/// answer) — the client's, and its CAs' under `revocation_depth = "chain"`; anything else passes
/// at this point. An unknown status is not an alert: the first request waits for the shared fetch
/// this starts, and a refusal then is a 503 that tells the client more than a handshake failure.
pub fn refuse_if_revoked(
    entry: &VerifiedEntry,
    revocation: &Arc<Revocation>,
    now: UnixTime,
) -> Result<(), CertFailure> {
    let identity = entry.value();
    let leaf = revocation.peek(&identity.revocation, identity.user_id.as_str(), now);
    let revoked = |a: &Answer| matches!(a.status, Status::Revoked { .. });
    if revoked(&leaf) || identity.ca_revocation.iter().any(|ca| revoked(&revocation.peek(ca, "", now))) {
        return Err(CertFailure::Revoked);
    }
    Ok(())
}

/// Whether a chain the handshake refused should instead complete it, so that its holder can be
/// told why (`certificate_problems = "explain"`): it is revoked (only a validated chain is
/// judged for revocation), or the leaf itself is expired or not yet valid and the whole chain
/// validates — anchor, signatures, purpose, identity — at a moment inside the leaf's validity.
/// Nothing else qualifies: an unknown CA, a bad signature or a malformed chain gets its alert.
/// Nothing is cached.
pub fn explainable(
    trust: &TrustStore,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    failure: &CertFailure,
) -> bool {
    match failure {
        CertFailure::Revoked => true,
        CertFailure::Expired | CertFailure::NotYetValid => {
            identity_when_valid(trust, end_entity, intermediates, now).is_some()
        }
        _ => false,
    }
}

/// The identity a chain whose leaf is outside its validity at `now` had while it was valid: the
/// whole chain verified at the leaf's nearest validity edge. `None` when the leaf is current (a
/// CA in the path is out of date, which its holder cannot fix) or the chain does not verify.
/// Nothing is cached.
fn identity_when_valid(
    trust: &TrustStore,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Option<CertIdentity> {
    let (not_before, not_after) = validity(end_entity)?;
    let now = now.as_secs();
    let edge = if now > not_after {
        not_after
    } else if now < not_before {
        not_before
    } else {
        return None;
    };
    trust.verify(end_entity, intermediates, UnixTime::since_unix_epoch(Duration::from_secs(edge))).ok()
}

/// The revocation answer for a verified certificate: its own and, under
/// `revocation_depth = "chain"`, each CA's. The worst answer wins; a good one holds until the
/// earliest of theirs ends.
pub async fn revocation_answer(
    revocation: &Arc<Revocation>,
    leaf: &Arc<Subject>,
    user_id: &str,
    cas: &[Arc<Subject>],
    now: UnixTime,
) -> Answer {
    let acceptable = |a: &Answer| matches!(a.status, Status::Good | Status::NotChecked);
    let mut answer = revocation.check(leaf, user_id, now).await;
    for ca in cas {
        if !acceptable(&answer) {
            break;
        }
        // User-id deny entries name people, not CAs: the CA is asked with no user.
        let ca_answer = revocation.check(ca, "", now).await;
        answer = if acceptable(&ca_answer) {
            Answer {
                valid_until: answer.valid_until.min(ca_answer.valid_until),
                stale: answer.stale || ca_answer.stale,
                ..answer
            }
        } else {
            ca_answer
        };
    }
    answer
}

/// The client certificate of one connection.
#[derive(Debug)]
pub struct Peer {
    chain: Box<[CertificateDer<'static>]>,
    leaf_sha256: [u8; 32],
    fingerprint: ChainFingerprint,
    current: ArcSwapOption<Entry<Arc<CertIdentity>>>,
    /// The handshake's judgement, made again on the connection's first request.
    admission: OnceLock<Option<HandshakeRefusal>>,
}

/// Why the handshake's checks refused a connection's certificate.
#[derive(Clone, Debug)]
pub struct HandshakeRefusal {
    /// The failure.
    pub failure: CertFailure,
    /// The holder, when the chain verified (revoked) or verified while the card was valid
    /// (expired, not yet valid).
    pub user_id: Option<UserId>,
}

/// Why a request on a connection with a certificate is refused.
#[derive(Clone, Debug)]
pub enum PeerRefusal {
    /// The chain no longer validates.
    Certificate(CertFailure),
    /// Revocation status could not be had and policy refuses.
    RevocationUnknown,
}

impl Peer {
    /// The chain as presented (leaf first), after the handshake. Resolution happens on first use.
    pub fn new(chain: &[CertificateDer<'static>]) -> Option<Self> {
        let (leaf, rest) = chain.split_first()?;
        let mut leaf_sha256 = [0u8; 32];
        leaf_sha256.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf).as_ref());
        Some(Self {
            leaf_sha256,
            fingerprint: ChainFingerprint::of_chain(leaf, rest),
            chain: chain.into(),
            current: ArcSwapOption::empty(),
            admission: OnceLock::new(),
        })
    }

    /// Why the handshake refused (or, under `certificate_problems = "alert"`, would have refused)
    /// this certificate, and whose it is when that is known: judged once per connection, on its
    /// first request, exactly as the handshake verifier judges — path validation at `now`, then
    /// known revocations. A connection that was let through only so its refusal could be
    /// explained gets `Some` on every request, public routes included, so nothing on it is ever
    /// proxied. This also covers resumed sessions, which never ran the verifier.
    pub fn handshake_refusal(
        &self,
        trust: &TrustStore,
        cache: &Cache,
        revocation: &Arc<Revocation>,
        now: UnixTime,
    ) -> Option<&HandshakeRefusal> {
        self.admission
            .get_or_init(|| {
                let (leaf, rest) = self.chain.split_first().expect("a peer has at least one certificate");
                match resolve_fingerprinted(trust, cache, &self.fingerprint, leaf, rest, now) {
                    Ok(entry) => {
                        let user_id = Some(entry.value().user_id);
                        let refusal = refuse_if_revoked(&entry, revocation, now).err();
                        // The first request's check then starts from this resolution.
                        self.current.store(Some(entry));
                        refusal.map(|failure| HandshakeRefusal { failure, user_id })
                    }
                    Err(failure) => {
                        // For the audit record: whose expired or not-yet-valid card this is.
                        let user_id = match failure {
                            CertFailure::Expired | CertFailure::NotYetValid => {
                                identity_when_valid(trust, leaf, rest, now).map(|i| i.user_id)
                            }
                            _ => None,
                        };
                        Some(HandshakeRefusal { failure, user_id })
                    }
                }
            })
            .as_ref()
    }

    /// The leaf's notBefore and notAfter, Unix seconds (for a refusal page; parsed on demand).
    pub fn validity(&self) -> Option<(u64, u64)> {
        self.chain.first().and_then(validity)
    }

    /// SHA-256 of the leaf certificate: what a bound token's `cnf.x5t#S256` names (RFC 8705).
    pub fn leaf_sha256(&self) -> &[u8; 32] {
        &self.leaf_sha256
    }

    /// Checks the certificate for a request at `now`: still within validity, still trusted, not
    /// revoked. Two integer comparisons when nothing changed since the last request; otherwise
    /// the chain is resolved again and revocation asked (a map read, or the shared fetch).
    pub async fn check(
        &self,
        trust: &TrustStore,
        cache: &Cache,
        revocation: &Arc<Revocation>,
        now: UnixTime,
    ) -> Result<VerifiedEntry, PeerRefusal> {
        let entry = match self.current.load_full() {
            Some(e)
                if e.trust_epoch() == trust.epoch()
                    && e.trust_epoch() == cache.trust_epoch()
                    && now < e.not_after() =>
            {
                e
            }
            _ => {
                let (leaf, rest) = self.chain.split_first().expect("a peer has at least one certificate");
                let fresh = resolve_fingerprinted(trust, cache, &self.fingerprint, leaf, rest, now)
                    .map_err(PeerRefusal::Certificate)?;
                self.current.store(Some(Arc::clone(&fresh)));
                fresh
            }
        };
        let generation = revocation.generation();
        let (marked, valid_until) = entry.revocation_mark();
        if marked == generation && now.as_secs() < valid_until {
            return Ok(entry);
        }
        let identity = entry.value();
        let answer = revocation_answer(
            revocation,
            &identity.revocation,
            identity.user_id.as_str(),
            &identity.ca_revocation,
            now,
        )
        .await;
        match answer.status {
            Status::Good | Status::NotChecked => {
                entry.set_revocation_mark(generation, answer.valid_until);
                Ok(entry)
            }
            Status::Revoked { .. } => Err(PeerRefusal::Certificate(CertFailure::Revoked)),
            Status::Unknown(_) => Err(PeerRefusal::RevocationUnknown),
        }
    }
}
