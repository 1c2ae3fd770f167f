//! Chain-cache hit cost (goal: under 1 µs), and the fingerprint that precedes it once per
//! connection.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rustls_pki_types::UnixTime;
use spinegate_cert_cache::{ChainCache, ChainFingerprint, Entry, Lookup, Options};

fn bench(c: &mut Criterion) {
    let cache = ChainCache::new(Options::default());
    let now = UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000));
    let not_after = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
    // A realistic population, so the hit is measured on a populated table.
    for n in 0u32..50_000 {
        let fp = ChainFingerprint::of([n.to_be_bytes().as_slice()]);
        cache.insert(fp, Entry::new(n, not_after, cache.trust_epoch()), now);
    }
    cache.sync();
    let probe = ChainFingerprint::of([1234u32.to_be_bytes().as_slice()]);

    c.bench_function("chain_cache_hit", |b| {
        b.iter(|| match cache.lookup(black_box(&probe), now) {
            Lookup::Hit(e) => black_box(*e.value()),
            Lookup::Miss(_) => unreachable!("probe was inserted"),
        })
    });

    // Leaf (RSA-2048 smartcard, ~1.2 KiB) plus issuing CA (~1.4 KiB): the bytes hashed per connection.
    let leaf = vec![0x5au8; 1_200];
    let ca = vec![0xa5u8; 1_400];
    c.bench_function("chain_fingerprint_2_certs", |b| {
        b.iter(|| ChainFingerprint::of([black_box(leaf.as_slice()), black_box(ca.as_slice())]))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
