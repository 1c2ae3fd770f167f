//! The authorisation settings ([`Authorization`]) compiled into one [`Policy`]: activity
//! interning, baseline activities per job role, organisation relations; and the [`RoleSlot`]
//! that keeps a user's roles resolved under the current policy.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;

use crate::activities::ActivitySet;
use crate::roles::{RoleData, RoleProfile, Roles};

/// The most distinct activity codes rules may name: a role's activities are a bitset of this
/// many bits, so a decision is a few word operations.
pub const MAX_POLICY_ACTIVITIES: usize = 256;

/// `[authorization]`: the activity catalogue, baseline activities and organisation relations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authorization {
    /// The activity catalogue, when given.
    pub activities: Option<BTreeMap<String, String>>,
    /// Job role (`R8000`) → baseline activity codes.
    pub baseline: BTreeMap<String, Vec<String>>,
    /// Parent ODS code → children.
    pub organisations: BTreeMap<String, Vec<String>>,
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
    /// Compiles `[authorization]`, interning exactly the activity codes the rules name
    /// (`activities`: every rule's [`crate::Rule::activities`]).
    pub fn new<'r>(auth: &Authorization, activities: impl IntoIterator<Item = &'r str>) -> Self {
        let mut index: HashMap<Box<str>, u8> = HashMap::new();
        for code in activities {
            // A bit is numbered only when a code is first seen: the 256th distinct code gets bit
            // 255 (configuration refuses a 257th), however often codes repeat after it.
            let next = index.len();
            index.entry(code.into()).or_insert_with(|| {
                u8::try_from(next).expect("configuration caps rules at 256 distinct activity codes")
            });
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
