//! Client-certificate verification: a full path validation on a cache miss (RSA-2048 smartcard
//! under an RSA-2048 issuing CA, as the dev PKI issues), against the same chain answered from the
//! verified-chain cache (fingerprint + lookup: what a handshake pays on a hit).

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rustls_pki_types::UnixTime;
use spinegate::peer::{self, Cache};
use spinegate::trust::{TrustMaterial, TrustStore};
use spinegate_config::{ClientAuth, EkuPolicy, IdentityRule, UserIdSource};
use spinegate_devpki::{Ca, KeyKind, LeafSpec};

fn client_auth() -> ClientAuth {
    ClientAuth {
        trust_anchors: Vec::new(),
        intermediates: Vec::new(),
        max_chain_length: NonZeroUsize::new(4).unwrap(),
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

fn bench(c: &mut Criterion) {
    let root = Ca::root("Bench Root", KeyKind::Rsa2048).unwrap();
    let issuing = root.intermediate("Bench Issuing", KeyKind::Rsa2048).unwrap();
    let card = issuing.issue(&LeafSpec::smartcard("555000000001", "ABLE", "Alice")).unwrap();
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let trust = TrustStore::build(
        &client_auth(),
        TrustMaterial { anchors: vec![root.cert().clone()], ..TrustMaterial::default() },
        provider.signature_verification_algorithms.all,
    )
    .unwrap();
    let now = UnixTime::now();
    let (leaf, rest) = card.chain.split_first().unwrap();

    c.bench_function("verify_full_rsa2048_chain_miss", |b| {
        b.iter(|| trust.verify(black_box(leaf), black_box(rest), now).unwrap())
    });

    let cache = Cache::new(spinegate_cert_cache::Options::default());
    peer::resolve(&trust, &cache, leaf, rest, now).unwrap();
    c.bench_function("verify_via_chain_cache_hit", |b| {
        b.iter(|| peer::resolve(&trust, &cache, black_box(leaf), black_box(rest), now).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
