//! Authorisation on the hot path: the decision once the route is matched (rule for the method,
//! selected role, organisation scope with a parent–child relation, activity bitsets), and
//! resolving a user's roles again when the policy changed.
//!
//! Goal (issue 5): a decision under 200 ns.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use spinegate_authz::{Authorization, CompiledRule, MethodSet, Policy, RoleData, RoleSlot, Rule, select_role};
use spinegate_vocab::{AssuranceLevel, AuthMethod, Authenticator, Reason};

fn rule(methods: MethodSet, any: &[&str], all: &[&str]) -> Rule {
    Rule {
        methods,
        public: false,
        activities_any: any.iter().map(|s| (*s).to_owned()).collect(),
        activities_all: all.iter().map(|s| (*s).to_owned()).collect(),
        organisation_scope: true,
        min_assurance: AssuranceLevel::Aal2,
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
    let policy = Policy::new(&auth, rules.iter().flat_map(Rule::activities));
    let compiled = CompiledRule::new(rules.last().unwrap(), &policy);

    // A user with three roles, at RX0, RX1 and RX2.
    let data: Vec<RoleData> = (0..3u64)
        .map(|r| RoleData {
            id: format!("{:012}", 555_254_000_000 + r).into(),
            org: format!("RX{r}").into(),
            role_code: "S8000:G8000:R8000".into(),
            activity_codes: ["B0360", "B0370", "B1001"].map(Box::from).into(),
            workgroups: Arc::from([]),
        })
        .collect();
    let slot = RoleSlot::default();
    let (method, aal) = (AuthMethod::Smartcard, AssuranceLevel::Aal3);
    let roles = slot.resolve(&data, &policy);
    // The user's second role is at RX1, the grandparent of RX101A: allowed (the checks run to the
    // end). The first, at RX0, is not.
    let selected = roles.profiles[1].data.id.to_string();
    let trust_role = roles.get(&selected).unwrap();
    assert_eq!(&*trust_role.data.org, "RX1");
    assert_eq!(compiled.judge(&policy, method, aal, Some(trust_role), Some("RX101A")), Ok(()));
    let other = &roles.profiles[0];
    assert_eq!(compiled.judge(&policy, method, aal, Some(other), Some("RX101A")), Err(Reason::OrganisationMismatch));

    let mut group = c.benchmark_group("authz");
    group.bench_function("decision: select role, organisation via relations, activities", |b| {
        b.iter(|| {
            let role = select_role(black_box(&roles), Some(black_box(&selected)), None).unwrap();
            compiled.judge(&policy, black_box(method), aal, role, Some(black_box("RX101A")))
        });
    });
    group.bench_function("decision: own organisation", |b| {
        b.iter(|| compiled.judge(&policy, black_box(method), aal, Some(black_box(trust_role)), Some(black_box("RX1"))));
    });
    group.bench_function("roles resolved again after a policy change", |b| {
        b.iter(|| policy.resolve(black_box(&data)));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
