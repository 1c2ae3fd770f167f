//! Revocation on the request path and off it: a status lookup on a warm cache (goal: under
//! 200 ns, no allocation) for an OCSP-checked certificate, a CRL-checked one against a
//! 200,000-entry CRL, and the deny list; and loading that CRL (goal: under 500 ms, under
//! 64 MiB). Allocation counts and bytes are measured with a counting global allocator and printed.

use std::alloc::System;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rustls_pki_types::UnixTime;
use spinegate_devpki::crl::{CrlSpec, RevokedEntry};
use spinegate_devpki::ocsp::{CertState, respond};
use spinegate_devpki::{Ca, KeyKind, LeafSpec};
use spinegate_revocation::checker::NoObserver;
use spinegate_revocation::crl::Crl;
use spinegate_revocation::deny::DenyEntry;
use spinegate_revocation::fetch::{Fetch, FetchError, FetchRequest};
use spinegate_revocation::issuer::{IssuingCa, Subject};
use spinegate_revocation::{OcspMethod, OcspSettings, Options, Policies, Policy, Revocation, Source, Status};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Debug)]
struct Responder(Arc<Ca>);

impl Fetch for Responder {
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Bytes, FetchError>> {
        let body = request.post.map(|(b, _)| b).unwrap_or_default();
        let der = respond(
            &self.0,
            None,
            &body,
            |_| Some(CertState::Good),
            time::OffsetDateTime::now_utc(),
            Duration::from_secs(3600),
        );
        Box::pin(async move { der.map(Bytes::from).map_err(|e| FetchError::Connect(e.to_string())) })
    }
}

fn revocation(ca: &Arc<Ca>, sources: Vec<Source>) -> Arc<Revocation> {
    let policy = Policy {
        sources,
        ocsp: OcspSettings {
            method: OcspMethod::Post,
            responder: Some("http://ocsp.bench/".into()),
            ..OcspSettings::default()
        },
        ..Policy::default()
    };
    Revocation::new(
        Options::default(),
        Policies { default: Arc::new(policy), issuers: HashMap::new() },
        Arc::new(Responder(Arc::clone(ca))),
        Arc::new(NoObserver),
        Arc::new(UnixTime::now),
    )
}

fn big_crl(ca: &Ca) -> Vec<u8> {
    let mut spec = CrlSpec::new(1);
    spec.revoked = (1..=200_000u32).map(|n| RevokedEntry::now(&(0x4000_0000 + n).to_be_bytes())).collect();
    ca.crl(&spec).unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ca = Arc::new(Ca::root("Bench CA", KeyKind::EcdsaP256).unwrap());
    let issuer = Arc::new(IssuingCa::from_cert_der(ca.cert()).unwrap());
    let leaf = ca.issue(&LeafSpec::smartcard("555000000001", "A", "B").key(KeyKind::EcdsaP256)).unwrap();
    let subject = Arc::new(Subject::from_cert_der(&leaf.cert, Arc::clone(&issuer)).unwrap());
    let now = UnixTime::now();

    // OCSP: warm the cache, then every lookup is memory only (now_or_never proves no await).
    let ocsp = revocation(&ca, vec![Source::Ocsp]);
    let _guard = runtime.enter();
    assert_eq!(runtime.block_on(ocsp.check(&subject, "555000000001", now)).status, Status::Good);
    let lookup =
        |r: &Arc<Revocation>| r.check(&subject, "555000000001", now).now_or_never().expect("warm: no await").status;
    report_allocations("warm OCSP lookup", || black_box(lookup(&ocsp)));
    c.bench_function("revocation_status_warm_ocsp", |b| b.iter(|| black_box(lookup(&ocsp))));

    // CRL: a 200,000-entry CRL, a serial it does not list.
    let crl_der = big_crl(&ca);
    let crl_only = revocation(&ca, vec![Source::Crl]);
    runtime.block_on(crl_only.install_crl_bytes("bench.crl", &issuer, Bytes::from(crl_der.clone()))).unwrap();
    assert_eq!(lookup(&crl_only), Status::Good);
    report_allocations("warm CRL lookup (200,000 entries)", || black_box(lookup(&crl_only)));
    c.bench_function("revocation_status_warm_crl_200k", |b| b.iter(|| black_box(lookup(&crl_only))));

    // With a non-empty deny list in force (the lookup consults it first).
    ocsp.deny_add([DenyEntry::User("555000000999".into())]);
    report_allocations("warm OCSP lookup with a deny list", || black_box(lookup(&ocsp)));
    c.bench_function("revocation_status_warm_ocsp_with_deny_list", |b| b.iter(|| black_box(lookup(&ocsp))));

    // Loading the CRL: parse, verify, index.
    let region = Region::new(GLOBAL);
    let parsed = Crl::parse(&crl_der, &issuer).unwrap();
    let stats = region.change();
    println!(
        "load 200,000-entry CRL ({} bytes DER): {} allocations, {:.1} MiB allocated, {:.1} MiB retained by the index",
        crl_der.len(),
        stats.allocations + stats.reallocations,
        (stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize) as f64 / 1048576.0,
        (stats.bytes_allocated as f64 - stats.bytes_deallocated as f64) / 1048576.0,
    );
    drop(parsed);
    let mut group = c.benchmark_group("crl_load");
    group.sample_size(10);
    group.bench_function("crl_parse_verify_index_200k", |b| {
        b.iter(|| Crl::parse(black_box(&crl_der), &issuer).unwrap())
    });
    group.finish();
}

fn report_allocations<T>(what: &str, f: impl Fn() -> T) {
    // Many calls, so one-off lazy initialisation does not hide in the average.
    for _ in 0..1000 {
        f();
    }
    let region = Region::new(GLOBAL);
    for _ in 0..10_000 {
        f();
    }
    let stats = region.change();
    println!("{what}: {:.3} allocations per lookup", (stats.allocations + stats.reallocations) as f64 / 10_000.0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
