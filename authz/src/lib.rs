//! # spinegate-authz
//!
//! Role-based access per organisation (DESIGN §2 step 4): the policy compiled from the
//! configuration ([`Policy`], one per runtime), a user's role profiles with their activities as
//! bitsets ([`Roles`]), choosing the selected role ([`select_role`]), and judging a request
//! against a route's rule ([`CompiledRule::judge`]) — pure functions of their inputs, no I/O.
//!
//! Activity codes are interned, per policy, to the bits of an [`ActivitySet`]: only codes some
//! rule names get a bit (a role's other activities cannot change a decision), so a decision is a
//! few word operations and an organisation comparison. A role's bits are computed once per
//! policy generation and kept beside the role data ([`RoleSlot`]), wherever the caller keeps
//! that data (a verified token, a directory entry).
//!
//! ## Layout
//! - [`rule`]: [`Rule`] and [`MethodSet`] as configured, [`CompiledRule`] and its judgement.
//! - [`policy`]: [`Authorization`] settings, [`Policy`], [`ActivitySet`].
//! - [`roles`]: [`RoleData`], [`RoleProfile`], [`Roles`], [`RoleSlot`], [`select_role`].

mod activities;
pub mod policy;
pub mod roles;
pub mod rule;

pub use activities::ActivitySet;
pub use policy::{Authorization, MAX_POLICY_ACTIVITIES, Policy, RoleSlot};
pub use roles::{RoleData, RoleProfile, Roles, select_role};
pub use rule::{CompiledRule, MethodSet, Rule};
