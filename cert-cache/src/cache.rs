//! [`ChainCache`]: fingerprint -> verified value, bounded, expiring, epoch-checked.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use rustls_pki_types::UnixTime;

use crate::ChainFingerprint;

/// Sizing and lifetime of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Most entries held; beyond it the least useful are evicted (TinyLFU).
    pub max_entries: NonZeroU64,
    /// Longest an entry lives, even when the leaf is valid for years. Bounds how long a
    /// verification decision is reused without a fresh path validation.
    pub max_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self { max_entries: NonZeroU64::new(100_000).expect("100000 is not zero"), max_ttl: Duration::from_secs(3600) }
    }
}

/// Version of the trust anchors an entry was verified under. Advanced whenever the anchors change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustEpoch(pub u64);

/// One verified chain.
#[derive(Debug)]
pub struct Entry<V> {
    value: V,
    not_after: UnixTime,
    trust_epoch: TrustEpoch,
    revocation_generation: AtomicU64,
    revocation_valid_until: AtomicU64,
    ttl: Duration,
}

impl<V> Entry<V> {
    /// A verified value for a chain whose leaf ends at `not_after`, verified under `trust_epoch`.
    pub fn new(value: V, not_after: UnixTime, trust_epoch: TrustEpoch) -> Self {
        Self {
            value,
            not_after,
            trust_epoch,
            revocation_generation: AtomicU64::new(0),
            revocation_valid_until: AtomicU64::new(0),
            ttl: Duration::ZERO,
        }
    }

    /// The verified value (the gateway's identity).
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The leaf's notAfter.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }

    /// The trust epoch the chain was verified under.
    pub fn trust_epoch(&self) -> TrustEpoch {
        self.trust_epoch
    }

    /// The revocation generation this chain's status was last found acceptable under, and until
    /// when (seconds since the epoch) that answer holds; `(0, 0)` when never checked. The two are
    /// read together: an answer holds only while the generation is unchanged and time is before
    /// `valid_until`.
    pub fn revocation_mark(&self) -> (u64, u64) {
        (self.revocation_generation.load(Ordering::Acquire), self.revocation_valid_until.load(Ordering::Acquire))
    }

    /// Records an acceptable answer under `generation`, holding until `valid_until`.
    pub fn set_revocation_mark(&self, generation: u64, valid_until: u64) {
        // Validity first: a reader that sees the new generation also sees a validity at least as
        // new (a stale validity with an old generation only costs one more check).
        self.revocation_valid_until.store(valid_until, Ordering::Release);
        self.revocation_generation.store(generation, Ordering::Release);
    }
}

/// Why a lookup missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissReason {
    /// Never verified, or evicted.
    Absent,
    /// The leaf's notAfter has passed.
    Expired,
    /// Verified under trust anchors that have since changed.
    TrustChanged,
}

/// Result of [`ChainCache::lookup`].
#[derive(Debug)]
pub enum Lookup<V> {
    /// A usable entry.
    Hit(Arc<Entry<V>>),
    /// Verify the chain (again).
    Miss(MissReason),
}

/// The verified-chain cache. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct ChainCache<V> {
    entries: moka::sync::Cache<ChainFingerprint, Arc<Entry<V>>>,
    trust_epoch: AtomicU64,
    options: Options,
}

impl<V> std::fmt::Debug for ChainCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainCache")
            .field("entries", &self.entries.entry_count())
            .field("trust_epoch", &self.trust_epoch)
            .field("options", &self.options)
            .finish()
    }
}

struct EntryExpiry;

impl<V> Expiry<ChainFingerprint, Arc<Entry<V>>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &ChainFingerprint,
        value: &Arc<Entry<V>>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl<V: Send + Sync + 'static> ChainCache<V> {
    /// An empty cache at trust epoch 1.
    pub fn new(options: Options) -> Self {
        let entries =
            moka::sync::Cache::builder().max_capacity(options.max_entries.get()).expire_after(EntryExpiry).build();
        Self { entries, trust_epoch: AtomicU64::new(1), options }
    }

    /// The options the cache was built with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The current trust epoch; verify under it and pass it to [`Entry::new`].
    pub fn trust_epoch(&self) -> TrustEpoch {
        TrustEpoch(self.trust_epoch.load(Ordering::Acquire))
    }

    /// Retires every entry: call when the trust anchors change. Returns the new epoch.
    pub fn advance_trust_epoch(&self) -> TrustEpoch {
        let next = self.trust_epoch.fetch_add(1, Ordering::AcqRel) + 1;
        // The epoch comparison in `lookup` already makes old entries unusable; dropping them frees
        // the memory now instead of at their expiry.
        self.entries.invalidate_all();
        TrustEpoch(next)
    }

    /// Looks up a chain at time `now`.
    pub fn lookup(&self, fingerprint: &ChainFingerprint, now: UnixTime) -> Lookup<V> {
        let Some(entry) = self.entries.get(fingerprint) else {
            return Lookup::Miss(MissReason::Absent);
        };
        if entry.trust_epoch != self.trust_epoch() {
            self.entries.invalidate(fingerprint);
            return Lookup::Miss(MissReason::TrustChanged);
        }
        if now >= entry.not_after {
            self.entries.invalidate(fingerprint);
            return Lookup::Miss(MissReason::Expired);
        }
        Lookup::Hit(entry)
    }

    /// Remembers a verified chain at time `now` and returns the shared entry. An entry verified
    /// under an outdated trust epoch, or whose leaf has already ended, is returned but not kept.
    pub fn insert(&self, fingerprint: ChainFingerprint, mut entry: Entry<V>, now: UnixTime) -> Arc<Entry<V>> {
        let remaining = entry.not_after.as_secs().saturating_sub(now.as_secs());
        entry.ttl = self.options.max_ttl.min(Duration::from_secs(remaining));
        let entry = Arc::new(entry);
        if entry.trust_epoch == self.trust_epoch() && !entry.ttl.is_zero() {
            self.entries.insert(fingerprint, Arc::clone(&entry));
        }
        entry
    }

    /// Forgets one chain.
    pub fn remove(&self, fingerprint: &ChainFingerprint) {
        self.entries.invalidate(fingerprint);
    }

    /// Approximate number of entries (moka applies writes in batches).
    pub fn len(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Whether the cache is (approximately) empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies pending evictions and expirations now, so that [`Self::len`] is exact.
    pub fn sync(&self) {
        self.entries.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    fn fp(n: u8) -> ChainFingerprint {
        ChainFingerprint::from_bytes([n; 32])
    }

    fn cache() -> ChainCache<&'static str> {
        ChainCache::new(Options::default())
    }

    #[test]
    fn inserted_chain_is_a_hit_until_not_after() {
        let c = cache();
        c.insert(fp(1), Entry::new("alice", at(2_000), c.trust_epoch()), at(1_000));
        assert!(matches!(c.lookup(&fp(1), at(1_999)), Lookup::Hit(e) if *e.value() == "alice"));
        assert!(matches!(c.lookup(&fp(1), at(2_000)), Lookup::Miss(MissReason::Expired)));
        // Expired entries are dropped, not merely skipped.
        assert!(matches!(c.lookup(&fp(1), at(1_500)), Lookup::Miss(MissReason::Absent)));
    }

    #[test]
    fn unknown_chain_is_a_miss() {
        assert!(matches!(cache().lookup(&fp(9), at(0)), Lookup::Miss(MissReason::Absent)));
    }

    #[test]
    fn trust_anchor_change_retires_entries() {
        let c = cache();
        c.insert(fp(1), Entry::new("alice", at(10_000), c.trust_epoch()), at(0));
        let old = c.trust_epoch();
        c.advance_trust_epoch();
        assert!(matches!(c.lookup(&fp(1), at(1)), Lookup::Miss(_)));
        // A verification that began under the old anchors must not be cached after the change.
        c.insert(fp(2), Entry::new("bob", at(10_000), old), at(0));
        assert!(matches!(c.lookup(&fp(2), at(1)), Lookup::Miss(MissReason::Absent)));
    }

    #[test]
    fn already_expired_leaf_is_not_kept() {
        let c = cache();
        let e = c.insert(fp(1), Entry::new("dave", at(5), c.trust_epoch()), at(10));
        assert_eq!(*e.value(), "dave");
        assert!(matches!(c.lookup(&fp(1), at(4)), Lookup::Miss(MissReason::Absent)));
    }

    #[test]
    fn size_is_bounded() {
        let c = ChainCache::new(Options { max_entries: NonZeroU64::new(10).unwrap(), ..Options::default() });
        for n in 0..100u8 {
            c.insert(fp(n), Entry::new("x", at(10_000), c.trust_epoch()), at(0));
        }
        c.sync();
        assert!(c.len() <= 10, "len {}", c.len());
    }

    #[test]
    fn revocation_mark_is_recorded_on_the_shared_entry() {
        let c = cache();
        let e = c.insert(fp(1), Entry::new("alice", at(10_000), c.trust_epoch()), at(0));
        assert_eq!(e.revocation_mark(), (0, 0));
        e.set_revocation_mark(7, 500);
        let Lookup::Hit(again) = c.lookup(&fp(1), at(1)) else { panic!("expected a hit") };
        assert_eq!(again.revocation_mark(), (7, 500));
    }
}
