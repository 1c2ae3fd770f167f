//! Role-based access per organisation: the policy compiled from configuration ([`Policy`], one
//! per runtime), a user's role profiles with their activities as bitsets ([`Roles`]), choosing
//! the selected role ([`select_role`]), and judging a request against a route's rule
//! ([`CompiledRule::judge`]).
//!
//! Activity codes are interned, per policy, to the bits of an [`ActivitySet`]: only codes some
//! rule names get a bit (a role's other activities cannot change a decision), so a decision is a
//! few word operations and an organisation comparison. A role's bits are computed once per policy
//! generation and kept beside the role data ([`RoleSlot`]), in the verified token or the
//! directory entry they came from.

pub mod directory;
pub mod ldap;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use spinegate_config::{Authorization, Rule};

use crate::auth::{AuthMethod, Authenticator, Principal};
use crate::error::Reason;

/// Up to 256 activities: the bits a policy interned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActivitySet([u64; 4]);

impl ActivitySet {
    fn insert(&mut self, bit: u8) {
        self.0[usize::from(bit >> 6)] |= 1 << (bit & 63);
    }

    /// Whether every activity of `required` is in `self`.
    pub fn contains_all(&self, required: &ActivitySet) -> bool {
        self.0.iter().zip(&required.0).all(|(have, need)| have & need == *need)
    }

    /// Whether some activity of `any` is in `self`.
    pub fn intersects(&self, any: &ActivitySet) -> bool {
        self.0.iter().zip(&any.0).any(|(have, want)| have & want != 0)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    fn union(mut self, other: &ActivitySet) -> ActivitySet {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
        self
    }
}

/// A role profile as its source gives it (token claim or directory entry), independent of any
/// policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleData {
    /// The role profile id (URID, `person_roleid`).
    pub id: Arc<str>,
    /// The organisation's ODS code, upper case.
    pub org: Arc<str>,
    /// The role code (`S8000:G8000:R8000`).
    pub role_code: Arc<str>,
    /// Activity codes directly granted.
    pub activity_codes: Arc<[Box<str>]>,
    /// Workgroup codes.
    pub workgroups: Arc<[Box<str>]>,
}

impl RoleData {
    /// From the token's `nhsid_nrbac_roles[]` entry.
    pub fn from_claim(claim: &spinegate_token::claims::RoleClaim) -> Self {
        Self {
            id: claim.person_roleid.as_str().into(),
            org: claim.org_code.to_ascii_uppercase().into(),
            role_code: claim.role_code.as_str().into(),
            activity_codes: claim.activity_codes.iter().map(|c| c.as_str().into()).collect(),
            workgroups: claim.workgroups_codes.iter().map(|c| c.as_str().into()).collect(),
        }
    }
}

/// A role profile with its activities (granted and baseline) as the current policy's bits.
#[derive(Clone, Debug)]
pub struct RoleProfile {
    /// What the source said.
    pub data: RoleData,
    /// Its activities, as bits of the policy it was resolved for.
    pub activities: ActivitySet,
}

/// A user's role profiles resolved for one policy generation.
#[derive(Debug)]
pub struct Roles {
    generation: u64,
    /// The profiles, in source order.
    pub profiles: Box<[RoleProfile]>,
}

impl Roles {
    /// No role profiles (under any policy: there is nothing to resolve).
    pub fn none() -> Self {
        Self { generation: 0, profiles: Box::new([]) }
    }

    /// The profile with this id.
    pub fn get(&self, id: &str) -> Option<&RoleProfile> {
        self.profiles.iter().find(|p| &*p.data.id == id)
    }
}

/// Where a user's resolved roles are kept beside their source data, recomputed when the policy
/// generation changes.
#[derive(Debug, Default)]
pub struct RoleSlot(ArcSwapOption<Roles>);

impl RoleSlot {
    /// The roles of `data` under `policy`: cached when resolved for this generation.
    pub fn resolve(&self, data: &[RoleData], policy: &Policy) -> Arc<Roles> {
        self.resolve_with(policy, || data.to_vec())
    }

    /// As [`RoleSlot::resolve`], with the role data made only when the slot has to be filled.
    pub fn resolve_with(&self, policy: &Policy, data: impl FnOnce() -> Vec<RoleData>) -> Arc<Roles> {
        if let Some(roles) = self.0.load_full()
            && roles.generation == policy.generation
        {
            return roles;
        }
        let roles = Arc::new(policy.resolve(&data()));
        self.0.store(Some(Arc::clone(&roles)));
        roles
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The activity interning, baseline activities and organisation relations of one configuration.
#[derive(Debug)]
pub struct Policy {
    generation: u64,
    index: HashMap<Box<str>, u8>,
    baseline: HashMap<Box<str>, ActivitySet>,
    parent: HashMap<Box<str>, Box<str>>,
}

impl Policy {
    /// Compiles `[authorization]`, interning exactly the activity codes `rules` name.
    pub fn new<'r>(auth: &Authorization, rules: impl IntoIterator<Item = &'r Rule>) -> Self {
        let mut index: HashMap<Box<str>, u8> = HashMap::new();
        for rule in rules {
            for code in rule.activities_any.iter().chain(&rule.activities_all) {
                // A bit is numbered only when a code is first seen: the 256th distinct code gets
                // bit 255 (configuration refuses a 257th), however often codes repeat after it.
                let next = index.len();
                index.entry(code.as_str().into()).or_insert_with(|| {
                    u8::try_from(next).expect("configuration caps rules at 256 distinct activity codes")
                });
            }
        }
        let mut policy = Self {
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            index,
            baseline: HashMap::new(),
            parent: HashMap::new(),
        };
        for (role, codes) in &auth.baseline {
            let bits = policy.bits(codes.iter().map(String::as_str));
            policy.baseline.insert(role.as_str().into(), bits);
        }
        for (parent, children) in &auth.organisations {
            for child in children {
                policy.parent.insert(child.as_str().into(), parent.as_str().into());
            }
        }
        policy
    }

    /// The bits of `codes` this policy knows (others cannot change a decision).
    pub fn bits<'c>(&self, codes: impl IntoIterator<Item = &'c str>) -> ActivitySet {
        let mut set = ActivitySet::default();
        for code in codes {
            if let Some(bit) = self.index.get(code) {
                set.insert(*bit);
            }
        }
        set
    }

    /// Resolves role data: granted activities plus the job role's baseline.
    pub fn resolve(&self, data: &[RoleData]) -> Roles {
        let profiles = data
            .iter()
            .map(|d| {
                let granted = self.bits(d.activity_codes.iter().map(|c| &**c));
                let job = spinegate_vocab::job_role(&d.role_code);
                let baseline = self.baseline.get(job).copied().unwrap_or_default();
                RoleProfile { data: d.clone(), activities: granted.union(&baseline) }
            })
            .collect();
        Roles { generation: self.generation, profiles }
    }

    /// Whether `requested` is `own`, or below it in the organisation relations.
    pub fn organisation_covers(&self, own: &str, requested: &str) -> bool {
        if own.eq_ignore_ascii_case(requested) {
            return true;
        }
        let requested = requested.to_ascii_uppercase();
        let mut at = requested.as_str();
        // Relations are acyclic (checked at load); the bound is a second guard.
        for _ in 0..64 {
            match self.parent.get(at) {
                Some(parent) if &**parent == own => return true,
                Some(parent) => at = parent,
                None => return false,
            }
        }
        false
    }
}

/// A route rule with its activities as bits of the runtime's policy.
#[derive(Clone, Debug)]
pub struct CompiledRule {
    /// The rule as configured.
    pub rule: Rule,
    any: ActivitySet,
    all: ActivitySet,
}

impl CompiledRule {
    /// Compiles `rule` against `policy`.
    pub fn new(rule: &Rule, policy: &Policy) -> Self {
        Self {
            any: policy.bits(rule.activities_any.iter().map(String::as_str)),
            all: policy.bits(rule.activities_all.iter().map(String::as_str)),
            rule: rule.clone(),
        }
    }

    /// Judges a request: how the principal authenticated, then the selected role's organisation
    /// and activities. `role` is the selected profile (required when the rule needs one);
    /// `requested_org` the organisation the request names, if any.
    pub fn judge(
        &self,
        policy: &Policy,
        principal: &Principal,
        role: Option<&RoleProfile>,
        requested_org: Option<&str>,
    ) -> Result<(), Reason> {
        let rule = &self.rule;
        let authenticator = match principal.method {
            AuthMethod::Smartcard if rule.smartcard => Authenticator::Smartcard,
            AuthMethod::Token { authenticator } if rule.token => authenticator,
            _ => return Err(Reason::AuthenticatorNotAllowed),
        };
        if self.rule.authenticators.as_ref().is_some_and(|kinds| !kinds.contains(&authenticator)) {
            return Err(Reason::AuthenticatorNotAllowed);
        }
        if principal.assurance.number() < rule.min_assurance {
            return Err(Reason::AssuranceTooLow);
        }
        let Some(role) = role else {
            return if rule.needs_role() { Err(Reason::RoleNotSelected) } else { Ok(()) };
        };
        if rule.organisation_scope
            && let Some(requested) = requested_org
            && !policy.organisation_covers(&role.data.org, requested)
        {
            return Err(Reason::OrganisationMismatch);
        }
        if !role.activities.contains_all(&self.all) || (!self.any.is_empty() && !role.activities.intersects(&self.any))
        {
            return Err(Reason::ActivityNotPermitted);
        }
        Ok(())
    }
}

/// Chooses the selected role profile: the one `NHSD-Session-URID` names (it must be held), else
/// the one the token selected (if held), else the only one. `Ok(None)` when none is named and
/// none can be chosen; the rule decides whether that is acceptable.
pub fn select_role<'r>(
    roles: &'r Roles,
    requested: Option<&str>,
    token_selected: Option<&str>,
) -> Result<Option<&'r RoleProfile>, Reason> {
    if let Some(id) = requested {
        return roles.get(id).map(Some).ok_or(Reason::RoleNotHeld);
    }
    if let Some(role) = token_selected.and_then(|id| roles.get(id)) {
        return Ok(Some(role));
    }
    match &*roles.profiles {
        [only] => Ok(Some(only)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use spinegate_config::MethodSet;

    use super::*;
    use crate::auth::AssuranceLevel;
    use crate::identity::UserId;

    fn rule(any: &[&str], all: &[&str]) -> Rule {
        Rule {
            methods: MethodSet::ALL,
            public: false,
            activities_any: any.iter().map(|s| (*s).to_owned()).collect(),
            activities_all: all.iter().map(|s| (*s).to_owned()).collect(),
            organisation_scope: true,
            min_assurance: 1,
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

    fn principal(method: AuthMethod, assurance: AssuranceLevel) -> Principal {
        Principal { user_id: UserId::parse("555000000001").unwrap(), method, assurance, certificate: None, token: None }
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
        let policy = Policy::new(&auth(), &rules);
        let last = CompiledRule::new(&rules[1], &policy);
        let roles = policy.resolve(&[data("1", "RX1", "S0:G0:R1", &["B0000", "B0255"])]);
        let p = principal(AuthMethod::Smartcard, AssuranceLevel::Aal3);
        assert_eq!(last.judge(&policy, &p, Some(&roles.profiles[0]), None), Ok(()));
    }

    #[test]
    fn activities_any_all_and_baseline() {
        let rules = [rule(&["B0820", "B0825"], &[]), rule(&[], &["B0360", "B0825"])];
        let policy = Policy::new(&auth(), &rules);
        let [any, all] = rules.map(|r| CompiledRule::new(&r, &policy));
        let roles = policy.resolve(&[
            data("1", "RX1", "S8000:G8000:R8000", &["B0360"]),
            data("2", "RX1", "S8000:G8000:R8001", &["B0360", "B0825", "B9999"]),
        ]);
        let p = principal(AuthMethod::Smartcard, AssuranceLevel::Aal3);
        // Baseline for R8000 grants B0820.
        assert_eq!(any.judge(&policy, &p, Some(&roles.profiles[0]), None), Ok(()));
        assert_eq!(all.judge(&policy, &p, Some(&roles.profiles[0]), None), Err(Reason::ActivityNotPermitted));
        assert_eq!(all.judge(&policy, &p, Some(&roles.profiles[1]), None), Ok(()));
        let none = policy.resolve(&[data("3", "RX1", "S0:G0:R9999", &["B0001"])]);
        assert_eq!(any.judge(&policy, &p, Some(&none.profiles[0]), None), Err(Reason::ActivityNotPermitted));
    }

    #[test]
    fn organisation_scope_follows_relations_downwards_only() {
        let rules = [rule(&[], &[])];
        let policy = Policy::new(&auth(), &rules);
        let r = CompiledRule::new(&rules[0], &policy);
        let p = principal(AuthMethod::Smartcard, AssuranceLevel::Aal3);
        let trust = policy.resolve(&[data("1", "RX1", "R8000", &[])]);
        let site = policy.resolve(&[data("1", "RX101", "R8000", &[])]);
        assert_eq!(r.judge(&policy, &p, Some(&trust.profiles[0]), Some("rx101a")), Ok(()), "grandchild");
        assert_eq!(r.judge(&policy, &p, Some(&trust.profiles[0]), Some("RX1")), Ok(()));
        assert_eq!(r.judge(&policy, &p, Some(&trust.profiles[0]), None), Ok(()), "no organisation named");
        assert_eq!(r.judge(&policy, &p, Some(&site.profiles[0]), Some("RX1")), Err(Reason::OrganisationMismatch));
        assert_eq!(r.judge(&policy, &p, Some(&site.profiles[0]), Some("RX102")), Err(Reason::OrganisationMismatch));
        let mut unscoped = rules[0].clone();
        unscoped.organisation_scope = false;
        let u = CompiledRule::new(&unscoped, &policy);
        assert_eq!(u.judge(&policy, &p, Some(&site.profiles[0]), Some("ZZZ")), Ok(()));
    }

    #[test]
    fn methods_authenticators_and_assurance() {
        let mut r = rule(&[], &[]);
        r.organisation_scope = false;
        r.min_assurance = 3;
        r.authenticators = Some(vec![Authenticator::Smartcard, Authenticator::SecurityKey]);
        let policy = Policy::new(&auth(), [&r]);
        let c = CompiledRule::new(&r, &policy);
        let key = AuthMethod::Token { authenticator: Authenticator::SecurityKey };
        let hello = AuthMethod::Token { authenticator: Authenticator::WindowsHello };
        assert_eq!(c.judge(&policy, &principal(key, AssuranceLevel::Aal3), None, None), Ok(()));
        assert_eq!(c.judge(&policy, &principal(key, AssuranceLevel::Aal2), None, None), Err(Reason::AssuranceTooLow));
        assert_eq!(
            c.judge(&policy, &principal(hello, AssuranceLevel::Aal3), None, None),
            Err(Reason::AuthenticatorNotAllowed)
        );
        r.token = false;
        let c = CompiledRule::new(&r, &policy);
        assert_eq!(
            c.judge(&policy, &principal(key, AssuranceLevel::Aal3), None, None),
            Err(Reason::AuthenticatorNotAllowed)
        );
        assert_eq!(c.judge(&policy, &principal(AuthMethod::Smartcard, AssuranceLevel::Aal3), None, None), Ok(()));
    }

    #[test]
    fn role_selection() {
        let policy = Policy::new(&auth(), &[] as &[Rule]);
        let two =
            policy.resolve(&[data("555000000101", "RX1", "R8000", &[]), data("555000000102", "RX2", "R8000", &[])]);
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
        let p = principal(AuthMethod::Smartcard, AssuranceLevel::Aal3);
        assert_eq!(c.judge(&policy, &p, None, None), Err(Reason::RoleNotSelected));
    }

    #[test]
    fn resolved_roles_follow_the_policy_generation() {
        let slot = RoleSlot::default();
        let d = [data("1", "RX1", "R8000", &["B0360"])];
        let first = Policy::new(&auth(), &[rule(&["B0360"], &[])]);
        let a = slot.resolve(&d, &first);
        assert!(Arc::ptr_eq(&a, &slot.resolve(&d, &first)), "cached for the same generation");
        let second = Policy::new(&Authorization::default(), &[rule(&["B0999"], &[])]);
        let b = slot.resolve(&d, &second);
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(b.profiles[0].activities.is_empty(), "B0360 has no bit in the second policy");
    }
}
