//! The role directory on the hot path: a smartcard user's role profiles answered from the file
//! directory's memory, with the roles already resolved for the current policy.
//!
//! Goal (issue 5): a cached directory lookup under 1 µs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use spinegate::directory::{Directory, FileDirectory};
use spinegate::identity::UserId;
use spinegate_authz::{Authorization, MethodSet, Policy, Rule};
use spinegate_vocab::AssuranceLevel;

fn bench(c: &mut Criterion) {
    let rule = Rule {
        methods: MethodSet::ALL,
        public: false,
        activities_any: vec!["B0360".into(), "B0370".into()],
        activities_all: Vec::new(),
        organisation_scope: true,
        min_assurance: AssuranceLevel::Aal2,
        smartcard: true,
        token: true,
        authenticators: None,
    };
    let policy = Policy::new(&Authorization::default(), rule.activities());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roles.toml");
    let mut text = String::new();
    for u in 0..10_000u64 {
        text.push_str(&format!("[[user]]\nid = \"{:012}\"\n", 555_000_000_000 + u));
        for r in 0..3 {
            text.push_str(&format!(
                "[[user.role]]\nid = \"{:012}\"\norg = \"RX{r}\"\nrole_code = \"S8000:G8000:R8000\"\nactivities = [\"B0360\", \"B0370\", \"B1001\"]\n",
                555_254_000_000 + u * 10 + r
            ));
        }
    }
    std::fs::write(&path, text).unwrap();
    let directory = Directory::File(Arc::new(FileDirectory::load(&path, Duration::from_secs(1)).unwrap()));
    let user = UserId::parse("555000004321").unwrap();
    let entry = directory.lookup(&user).now_or_never().unwrap().unwrap();
    assert_eq!(entry.slot.resolve(&entry.roles, &policy).profiles.len(), 3);

    let mut group = c.benchmark_group("directory");
    group.bench_function("role directory (file, 10k users): cached lookup + resolved roles", |b| {
        b.iter(|| {
            let entry = directory.lookup(black_box(&user)).now_or_never().unwrap().unwrap();
            entry.slot.resolve(&entry.roles, &policy)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
