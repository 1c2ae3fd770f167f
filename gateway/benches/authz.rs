//! Authorisation on the hot path: the decision once the route is matched (rule for the method,
//! selected role, organisation scope with a parent–child relation, activity bitsets), and a role
//! directory lookup answered from memory with the roles already resolved for the policy.
//!
//! Goals (issue 5): a decision under 200 ns; a cached directory lookup under 1 µs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use spinegate::auth::{AssuranceLevel, AuthMethod, Authenticator, Principal};
use spinegate::authz::directory::{Directory, FileDirectory};
use spinegate::authz::{CompiledRule, Policy, select_role};
use spinegate::identity::UserId;
use spinegate_config::{Authorization, MethodSet, Rule};

fn rule(methods: MethodSet, any: &[&str], all: &[&str]) -> Rule {
    Rule {
        methods,
        public: false,
        activities_any: any.iter().map(|s| (*s).to_owned()).collect(),
        activities_all: all.iter().map(|s| (*s).to_owned()).collect(),
        organisation_scope: true,
        min_assurance: 2,
        smartcard: true,
        token: true,
        authenticators: Some(vec![Authenticator::Smartcard, Authenticator::SecurityKey]),
    }
}

fn bench(c: &mut Criterion) {
    // A policy the size of a real deployment's: 120 activity codes across 40 rules.
    let mut rules: Vec<Rule> = (0..40)
        .map(|i| {
            let codes: Vec<String> = (0..3).map(|j| format!("B{:04}", 1000 + i * 3 + j)).collect();
            let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
            rule(MethodSet::ALL, &codes, &[])
        })
        .collect();
    rules.push(rule(MethodSet::ALL, &["B0820", "B0370"], &["B0360"]));
    let mut auth = Authorization::default();
    auth.baseline.insert("R8000".into(), vec!["B0820".into()]);
    auth.organisations.insert("RX1".into(), vec!["RX101".into()]);
    auth.organisations.insert("RX101".into(), vec!["RX101A".into()]);
    let policy = Policy::new(&auth, &rules);
    let compiled = CompiledRule::new(rules.last().unwrap(), &policy);

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
    let principal = Principal {
        user_id: user,
        method: AuthMethod::Smartcard,
        assurance: AssuranceLevel::Aal3,
        certificate: None,
        token: None,
    };
    let entry = directory.lookup(&user).now_or_never().unwrap().unwrap();
    let roles = entry.slot.resolve(&entry.roles, &policy);
    // The user's second role is at RX1, the grandparent of RX101A: allowed (the checks run to the
    // end). The first, at RX0, is not.
    let selected = roles.profiles[1].data.id.to_string();
    let trust_role = roles.get(&selected).unwrap();
    assert_eq!(&*trust_role.data.org, "RX1");
    assert_eq!(compiled.judge(&policy, &principal, Some(trust_role), Some("RX101A")), Ok(()));
    let other = &roles.profiles[0];
    assert_eq!(
        compiled.judge(&policy, &principal, Some(other), Some("RX101A")),
        Err(spinegate::error::Reason::OrganisationMismatch)
    );

    let mut group = c.benchmark_group("authz");
    group.bench_function("decision: select role, organisation via relations, activities", |b| {
        b.iter(|| {
            let role = select_role(black_box(&roles), Some(black_box(&selected)), None).unwrap();
            compiled.judge(&policy, black_box(&principal), role, Some(black_box("RX101A")))
        });
    });
    group.bench_function("decision: own organisation", |b| {
        b.iter(|| compiled.judge(&policy, black_box(&principal), Some(black_box(trust_role)), Some(black_box("RX1"))));
    });
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
