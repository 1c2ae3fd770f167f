//! A user's role profiles: as their source gives them ([`RoleData`]), resolved under a policy
//! ([`RoleProfile`], [`Roles`]), and the selected one ([`select_role`]).

use std::sync::Arc;

use spinegate_vocab::Reason;

use crate::activities::ActivitySet;

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
    pub(crate) generation: u64,
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
