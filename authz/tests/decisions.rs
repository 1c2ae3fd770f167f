//! Decisions end to end over the public API: each rule type allowing and refusing, the
//! organisation scope through relations, role choice, and roles following the policy generation.

use std::sync::Arc;

use spinegate_authz::{
    Authorization, CompiledRule, MethodSet, Policy, RoleData, RoleProfile, RoleSlot, Rule, select_role,
};
use spinegate_vocab::{AssuranceLevel, AuthMethod, Authenticator, Reason};

fn rule(any: &[&str], all: &[&str]) -> Rule {
    Rule {
        methods: MethodSet::ALL,
        public: false,
        activities_any: any.iter().map(|s| (*s).to_owned()).collect(),
        activities_all: all.iter().map(|s| (*s).to_owned()).collect(),
        organisation_scope: true,
        min_assurance: AssuranceLevel::Aal1,
        smartcard: true,
        token: true,
        authenticators: None,
    }
}

fn data(id: &str, org: &str, role: &str, codes: &[&str]) -> RoleData {
    RoleData {
        id: id.into(),
        org: org.into(),
        role_code: role.into(),
        activity_codes: codes.iter().map(|c| Box::from(*c)).collect(),
        workgroups: Arc::from([]),
    }
}

fn auth() -> Authorization {
    let mut a = Authorization::default();
    a.baseline.insert("R8000".into(), vec!["B0820".into()]);
    a.organisations.insert("RX1".into(), vec!["RX101".into(), "RX102".into()]);
    a.organisations.insert("RX101".into(), vec!["RX101A".into()]);
    a
}

/// The configuration admits 256 distinct codes; the policy must take every one of them,
/// with codes repeated after the 256th (a build-time panic here once stopped hot reload).
#[test]
fn exactly_256_activity_codes_fit_with_repeats_after_the_last() {
    let codes: Vec<String> = (0..256).map(|i| format!("B{i:04}")).collect();
    let names: Vec<&str> = codes.iter().map(String::as_str).collect();
    let rules = [rule(&names, &[]), rule(&names[..10], &[names[255]])];
    let policy = Policy::new(&auth(), rules.iter().flat_map(Rule::activities));
    let last = CompiledRule::new(&rules[1], &policy);
    let roles = policy.resolve(&[data("1", "RX1", "S0:G0:R1", &["B0000", "B0255"])]);
    let (method, aal) = (AuthMethod::Smartcard, AssuranceLevel::Aal3);
    assert_eq!(last.judge(&policy, method, aal, Some(&roles.profiles[0]), None), Ok(()));
}

#[test]
fn activities_any_all_and_baseline() {
    let rules = [rule(&["B0820", "B0825"], &[]), rule(&[], &["B0360", "B0825"])];
    let policy = Policy::new(&auth(), rules.iter().flat_map(Rule::activities));
    let [any, all] = rules.map(|r| CompiledRule::new(&r, &policy));
    let roles = policy.resolve(&[
        data("1", "RX1", "S8000:G8000:R8000", &["B0360"]),
        data("2", "RX1", "S8000:G8000:R8001", &["B0360", "B0825", "B9999"]),
    ]);
    let (method, aal) = (AuthMethod::Smartcard, AssuranceLevel::Aal3);
    // Baseline for R8000 grants B0820.
    assert_eq!(any.judge(&policy, method, aal, Some(&roles.profiles[0]), None), Ok(()));
    assert_eq!(all.judge(&policy, method, aal, Some(&roles.profiles[0]), None), Err(Reason::ActivityNotPermitted));
    assert_eq!(all.judge(&policy, method, aal, Some(&roles.profiles[1]), None), Ok(()));
    let none = policy.resolve(&[data("3", "RX1", "S0:G0:R9999", &["B0001"])]);
    assert_eq!(any.judge(&policy, method, aal, Some(&none.profiles[0]), None), Err(Reason::ActivityNotPermitted));
}

#[test]
fn organisation_scope_follows_relations_downwards_only() {
    let rules = [rule(&[], &[])];
    let policy = Policy::new(&auth(), rules.iter().flat_map(Rule::activities));
    let r = CompiledRule::new(&rules[0], &policy);
    let (method, aal) = (AuthMethod::Smartcard, AssuranceLevel::Aal3);
    let trust = policy.resolve(&[data("1", "RX1", "R8000", &[])]);
    let site = policy.resolve(&[data("1", "RX101", "R8000", &[])]);
    assert_eq!(r.judge(&policy, method, aal, Some(&trust.profiles[0]), Some("rx101a")), Ok(()), "grandchild");
    assert_eq!(r.judge(&policy, method, aal, Some(&trust.profiles[0]), Some("RX1")), Ok(()));
    assert_eq!(r.judge(&policy, method, aal, Some(&trust.profiles[0]), None), Ok(()), "no organisation named");
    assert_eq!(r.judge(&policy, method, aal, Some(&site.profiles[0]), Some("RX1")), Err(Reason::OrganisationMismatch));
    assert_eq!(
        r.judge(&policy, method, aal, Some(&site.profiles[0]), Some("RX102")),
        Err(Reason::OrganisationMismatch)
    );
    let mut unscoped = rules[0].clone();
    unscoped.organisation_scope = false;
    let u = CompiledRule::new(&unscoped, &policy);
    assert_eq!(u.judge(&policy, method, aal, Some(&site.profiles[0]), Some("ZZZ")), Ok(()));
}

#[test]
fn methods_authenticators_and_assurance() {
    let mut r = rule(&[], &[]);
    r.organisation_scope = false;
    r.min_assurance = AssuranceLevel::Aal3;
    r.authenticators = Some(vec![Authenticator::Smartcard, Authenticator::SecurityKey]);
    let policy = Policy::new(&auth(), r.activities());
    let c = CompiledRule::new(&r, &policy);
    let key = AuthMethod::Token { authenticator: Authenticator::SecurityKey };
    let hello = AuthMethod::Token { authenticator: Authenticator::WindowsHello };
    assert_eq!(c.judge(&policy, key, AssuranceLevel::Aal3, None, None), Ok(()));
    assert_eq!(c.judge(&policy, key, AssuranceLevel::Aal2, None, None), Err(Reason::AssuranceTooLow));
    assert_eq!(c.judge(&policy, hello, AssuranceLevel::Aal3, None, None), Err(Reason::AuthenticatorNotAllowed));
    r.token = false;
    let c = CompiledRule::new(&r, &policy);
    assert_eq!(c.judge(&policy, key, AssuranceLevel::Aal3, None, None), Err(Reason::AuthenticatorNotAllowed));
    assert_eq!(c.judge(&policy, AuthMethod::Smartcard, AssuranceLevel::Aal3, None, None), Ok(()));
}

#[test]
fn role_selection() {
    let policy = Policy::new(&auth(), []);
    let two = policy.resolve(&[data("555000000101", "RX1", "R8000", &[]), data("555000000102", "RX2", "R8000", &[])]);
    let one = policy.resolve(&[data("555000000101", "RX1", "R8000", &[])]);
    let id = |r: Result<Option<&RoleProfile>, Reason>| r.map(|p| p.map(|p| p.data.id.to_string()));
    assert_eq!(id(select_role(&two, Some("555000000102"), None)), Ok(Some("555000000102".into())));
    assert_eq!(id(select_role(&two, Some("999999999999"), None)), Err(Reason::RoleNotHeld), "spoofed URID");
    assert_eq!(id(select_role(&two, None, None)), Ok(None));
    assert_eq!(id(select_role(&two, None, Some("555000000102"))), Ok(Some("555000000102".into())));
    assert_eq!(id(select_role(&one, None, None)), Ok(Some("555000000101".into())));
    assert_eq!(id(select_role(&one, None, Some("999999999999"))), Ok(Some("555000000101".into())));
    let r = rule(&["B0820"], &[]);
    let c = CompiledRule::new(&r, &policy);
    let (method, aal) = (AuthMethod::Smartcard, AssuranceLevel::Aal3);
    assert_eq!(c.judge(&policy, method, aal, None, None), Err(Reason::RoleNotSelected));
}

#[test]
fn resolved_roles_follow_the_policy_generation() {
    let slot = RoleSlot::default();
    let d = [data("1", "RX1", "R8000", &["B0360"])];
    let first = Policy::new(&auth(), ["B0360"]);
    let a = slot.resolve(&d, &first);
    assert!(Arc::ptr_eq(&a, &slot.resolve(&d, &first)), "cached for the same generation");
    let second = Policy::new(&Authorization::default(), ["B0999"]);
    let b = slot.resolve(&d, &second);
    assert!(!Arc::ptr_eq(&a, &b));
    assert!(b.profiles[0].activities.is_empty(), "B0360 has no bit in the second policy");
}
