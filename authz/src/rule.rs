//! A route's rule: as configured ([`Rule`], with its [`MethodSet`]) and compiled against a policy
//! ([`CompiledRule`]), which judges a request.

use spinegate_vocab::{AssuranceLevel, AuthMethod, Authenticator, Reason};

use crate::activities::ActivitySet;
use crate::policy::Policy;
use crate::roles::RoleProfile;

/// HTTP methods a rule may name; `"*"` is every method.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// HTTP methods as a bit set (bit i = [`METHODS`]\[i]); all bits for `"*"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodSet(u8);

impl MethodSet {
    /// Every method.
    pub const ALL: MethodSet = MethodSet(u8::MAX);

    /// The set of `names` (upper case; `"*"` is every method), or the first name that is not a
    /// method; `None` inside means the list was empty.
    pub fn parse<'n>(names: impl IntoIterator<Item = &'n str>) -> Result<Option<MethodSet>, &'n str> {
        let mut bits = 0u8;
        for name in names {
            if name == "*" {
                bits = u8::MAX;
            } else if let Some(i) = METHODS.iter().position(|m| *m == name) {
                bits |= 1 << i;
            } else {
                return Err(name);
            }
        }
        Ok((bits != 0).then_some(MethodSet(bits)))
    }

    /// Whether `method` (upper case) is in the set; unlisted methods only under `"*"`.
    pub fn contains(self, method: &str) -> bool {
        match METHODS.iter().position(|m| *m == method) {
            Some(i) => self.0 & (1 << i) != 0,
            None => self == MethodSet::ALL,
        }
    }

    /// Whether every method of `other` is in `self`.
    pub fn covers(self, other: MethodSet) -> bool {
        self == MethodSet::ALL || (other != MethodSet::ALL && other.0 & !self.0 == 0)
    }

    /// The methods, comma-separated (`*` for all), for messages.
    pub fn names(self) -> String {
        if self == MethodSet::ALL {
            return "*".into();
        }
        METHODS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, m)| *m)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One `[[route.rule]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Methods covered.
    pub methods: MethodSet,
    /// No authentication.
    pub public: bool,
    /// At least one of these.
    pub activities_any: Vec<String>,
    /// All of these.
    pub activities_all: Vec<String>,
    /// The requested organisation must be the selected role's or related to it.
    pub organisation_scope: bool,
    /// Lowest assurance level.
    pub min_assurance: AssuranceLevel,
    /// Smartcard-authenticated requests are accepted.
    pub smartcard: bool,
    /// Token-authenticated requests are accepted.
    pub token: bool,
    /// Authenticator kinds accepted; any when `None`.
    pub authenticators: Option<Vec<Authenticator>>,
}

impl Rule {
    /// Every activity code the rule names (any of, then all of), for the policy to intern.
    pub fn activities(&self) -> impl Iterator<Item = &str> {
        self.activities_any.iter().chain(&self.activities_all).map(String::as_str)
    }

    /// Whether the rule needs a selected role profile: it asks for activities or scopes the
    /// organisation.
    pub fn needs_role(&self) -> bool {
        !self.public && (self.organisation_scope || !self.activities_any.is_empty() || !self.activities_all.is_empty())
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

    /// Judges a request: how the user authenticated (`method`, at `assurance`), then the
    /// selected role's organisation and activities. `role` is the selected profile (required
    /// when the rule needs one); `requested_org` the organisation the request names, if any.
    pub fn judge(
        &self,
        policy: &Policy,
        method: AuthMethod,
        assurance: AssuranceLevel,
        role: Option<&RoleProfile>,
        requested_org: Option<&str>,
    ) -> Result<(), Reason> {
        let rule = &self.rule;
        let authenticator = match method {
            AuthMethod::Smartcard if rule.smartcard => Authenticator::Smartcard,
            AuthMethod::Token { authenticator } if rule.token => authenticator,
            _ => return Err(Reason::AuthenticatorNotAllowed),
        };
        if self.rule.authenticators.as_ref().is_some_and(|kinds| !kinds.contains(&authenticator)) {
            return Err(Reason::AuthenticatorNotAllowed);
        }
        if assurance < rule.min_assurance {
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
