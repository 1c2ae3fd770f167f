//! Bearer-token verification: the full check of a Care-Identity-shaped RS256 token (issuer by
//! `iss`, strict decode, key choice, RSA-2048 signature, claims) against a bare RSA-2048 PKCS#1
//! verify of the same signing input with an already parsed key — the floor no verifier beats —
//! and a token answered from the verified-token cache.
//!
//! Goal (issue 4): full verification within 1.3× the bare verify; a cached token under 1 µs.
//! The token is the size Care Identity issues for a user with two role profiles (about 1.7 KB):
//! past the signature, decoding and parsing that payload is most of what a miss costs.

use std::hint::black_box;
use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::future::BoxFuture;
use spinegate_devpki::token::{RoleSpec, TokenIssuer};
use spinegate_token::jose::{Alg, b64_decode, rsa_public_key_der};
use spinegate_token::{IssuerOptions, JwksOptions, KeyFetch, KeySource, NoObserver, Options, TokenVerifier};

/// Serves the issuer's key set from memory: the bench measures verification, not fetching.
#[derive(Debug)]
struct Keys(Bytes);

impl KeyFetch for Keys {
    fn get(&self, _url: &str) -> BoxFuture<'static, Result<Bytes, String>> {
        let body = self.0.clone();
        Box::pin(async move { Ok(body) })
    }
}

/// Care Identity's issuer, as the configuration's defaults would set it up.
const ISSUER: &str = "https://am.nhsidentity.example/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare";

fn bench(c: &mut Criterion) {
    let issuer = TokenIssuer::new(ISSUER).unwrap();
    let options = IssuerOptions {
        name: "care-identity".into(),
        issuer: ISSUER.into(),
        keys: KeySource::Jwks("https://am.nhsidentity.example/jwks".into()),
        audiences: vec!["spinegate-bench".into()],
        algorithms: vec![Alg::Rs256, Alg::Rs512],
        clock_skew: std::time::Duration::from_secs(60),
        max_token_age: std::time::Duration::from_secs(12 * 3600),
        required_claims: Vec::new(),
        jwks: JwksOptions {
            ttl: std::time::Duration::from_secs(600),
            max_staleness: std::time::Duration::from_secs(86_400),
            refetch_interval: std::time::Duration::from_secs(30),
        },
    };
    let verifier: TokenVerifier = TokenVerifier::new(
        &Options::default(),
        &[options],
        vec![Arc::new(Keys(Bytes::from(issuer.jwks_json()))) as Arc<dyn KeyFetch>],
        Arc::new(NoObserver),
    );
    // A token the size Care Identity issues: two role profiles, activities and the usual claims.
    let roles: Vec<RoleSpec> = ["555254242106", "555254242107"]
        .iter()
        .map(|id| RoleSpec {
            person_roleid: (*id).to_owned(),
            org_code: "A81001".to_owned(),
            role_code: "S8000:G8000:R8000".to_owned(),
            role_name: "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\"".to_owned(),
            activity_codes: ["B0380", "B0360", "B0825", "B0370", "B1611"].map(str::to_owned).to_vec(),
        })
        .collect();
    let claims = issuer.care_identity_claims("spinegate-bench", "555000000001", "FIDO2", 3, &roles, 3600);
    let token = issuer.token(&claims);
    let now = time::OffsetDateTime::now_utc().unix_timestamp().unsigned_abs();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();

    // The bare floor: one RSA-2048 PKCS#1 SHA-256 verification of the same bytes.
    let jwks: serde_json::Value = serde_json::from_str(&issuer.jwks_json()).unwrap();
    let n = b64_decode(jwks["keys"][0]["n"].as_str().unwrap()).unwrap();
    let e = b64_decode(jwks["keys"][0]["e"].as_str().unwrap()).unwrap();
    let public = signature::RsaPublicKeyComponents { n: &n, e: &e };
    let der = rsa_public_key_der(public.n, public.e);
    let key = ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &der).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = b64_decode(sig).unwrap();
    key.verify_sig(input.as_bytes(), &sig).unwrap();

    // Warm the key set, and check every path accepts the token before timing it.
    runtime.block_on(verifier.verify_uncached(&token, now)).unwrap();
    runtime.block_on(verifier.verify(&token, now)).unwrap();

    let mut group = c.benchmark_group("token");
    group.bench_function("bare RSA-2048 PKCS#1 verify", |b| {
        b.iter(|| key.verify_sig(black_box(input.as_bytes()), black_box(&sig)).unwrap());
    });
    group.bench_function("full RS256 token verification (cache miss)", |b| {
        b.iter(|| runtime.block_on(verifier.verify_uncached(black_box(&token), now)).unwrap());
    });
    group.bench_function("cached token", |b| {
        b.iter(|| runtime.block_on(verifier.verify(black_box(&token), now)).unwrap());
    });
    group.finish();
    println!("token size: {} bytes", token.len());
}

criterion_group!(benches, bench);
criterion_main!(benches);
