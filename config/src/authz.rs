//! Authorisation settings: route rules (`[[route.rule]]`), the activity catalogue, baseline
//! activities per job role, organisation relations (`[authorization]`), the role directory
//! (`[role_directory]`), the audit log (`[audit]`) and the signed identity assertion
//! (`[identity_assertion]`) — as written and validated. Each lives with its section
//! (`src/section/`); this module gathers them under one name.

pub use crate::section::audit::{Audit, RawAudit};
pub use crate::section::authorization::{Authorization, RawAuthorization, RawBaseline, RawOrganisation};
pub use crate::section::identity_assertion::{IdentityAssertion, RawIdentityAssertion};
pub use crate::section::role_directory::{Ldap, RawLdap, RawLdapAttributes, RawRoleDirectory, RoleDirectory};
pub use crate::section::rule::{MAX_POLICY_ACTIVITIES, MethodSet, RawRule, Rule};
