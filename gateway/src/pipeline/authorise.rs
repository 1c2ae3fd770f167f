//! Whether the authenticated user may do this (DESIGN §2 steps 3–4): the organisation the
//! request names (where the rule scopes it), the user's role profiles, the selected one, then
//! the route's rule. What it settles — the role and organisation — is what the upstream is told.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use spinegate_authz::{CompiledRule, RoleProfile, Roles, select_role};
use spinegate_vocab::Reason;

use super::context::RequestCtx;
use crate::auth::Principal;
use crate::conn::Conn;
use crate::proxy::headers::{NHSD_END_USER_ORGANISATION_ODS, NHSD_SESSION_URID};
use crate::routing::CompiledRoute;
use crate::runtime::Runtime;
use spinegate_canonical::RequestTarget;

/// What authorisation settled for the upstream: who, the user's roles, the selected one, and
/// the organisation acted for. A public rule settles nothing.
#[derive(Debug, Default)]
pub(super) struct Decision {
    /// Who the request acts as (none on a public rule).
    pub principal: Option<Principal>,
    roles: Option<Arc<Roles>>,
    selected: Option<usize>,
    /// The organisation acted for, validated.
    pub organisation: Option<String>,
}

impl Decision {
    /// The selected role profile.
    pub(super) fn role(&self) -> Option<&RoleProfile> {
        self.roles.as_ref().zip(self.selected).map(|(roles, i)| &roles.profiles[i])
    }
}

/// Judges the request against its route's rule; a public rule (no principal) passes as is.
pub(super) async fn decide(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    (route, rule): (&CompiledRoute, &CompiledRule),
    principal: Option<Principal>,
    target: &RequestTarget,
    headers: &HeaderMap,
) -> Result<Decision, Reason> {
    let Some(principal) = principal else { return Ok(Decision::default()) };
    // The organisation named matters only where the rule scopes it; elsewhere it is neither
    // checked nor forwarded.
    let requested_org =
        if rule.rule.organisation_scope { requested_organisation(route, target, headers)? } else { None };
    ctx.requested_org = requested_org.map(str::to_owned);
    let roles = match roles_of(conn, runtime, &principal).await {
        Ok(roles) => roles,
        // A rule that needs no role does not wait for the directory to recover.
        Err(_) if !rule.rule.needs_role() => Arc::new(Roles::none()),
        Err(reason) => return Err(reason),
    };
    // Kept for a refusal page, which lists the roles held and the one asked for.
    ctx.roles = Some(Arc::clone(&roles));
    let requested_role = single(headers, &NHSD_SESSION_URID).map_err(|()| Reason::RoleNotHeld)?;
    ctx.requested_role = requested_role.cloned();
    let urid = requested_role.map(|v| v.to_str().map_err(|_| Reason::RoleNotHeld)).transpose()?;
    let token_selected = principal.token.as_ref().and_then(|t| t.claims.selected_role.as_deref());
    let chosen = select_role(&roles, urid, token_selected)?;
    ctx.role = chosen.map(|r| r.data.clone());
    rule.judge(&runtime.policy, principal.method, principal.assurance, chosen, requested_org)?;
    // Forwarded only once validated: the requested organisation when the rule checked it against
    // the role, else the role's own.
    let organisation = match (chosen, rule.rule.organisation_scope) {
        (Some(r), true) => Some(requested_org.map_or_else(|| r.data.org.to_string(), str::to_ascii_uppercase)),
        (Some(r), false) => Some(r.data.org.to_string()),
        (None, _) => None,
    };
    let selected = chosen.and_then(|c| roles.profiles.iter().position(|p| std::ptr::eq(p, c)));
    Ok(Decision { principal: Some(principal), roles: Some(roles), selected, organisation })
}

/// The organisation a request names: in the route's organisation path segment and/or
/// `NHSD-End-User-Organisation-ODS`. Two that disagree, or one that is not an ODS code, are an
/// organisation mismatch.
fn requested_organisation<'r>(
    route: &CompiledRoute,
    target: &'r RequestTarget,
    headers: &'r HeaderMap,
) -> Result<Option<&'r str>, Reason> {
    let from_path = route.organisation_in(target.path.as_str());
    let from_header =
        match single(headers, &NHSD_END_USER_ORGANISATION_ODS).map_err(|()| Reason::OrganisationMismatch)? {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| Reason::OrganisationMismatch)?),
        };
    let requested = match (from_path, from_header) {
        (Some(p), Some(h)) if !p.eq_ignore_ascii_case(h) => return Err(Reason::OrganisationMismatch),
        (p, h) => p.or(h),
    };
    match requested {
        Some(org) if !spinegate_vocab::is_ods_code(org) => Err(Reason::OrganisationMismatch),
        other => Ok(other),
    }
}

/// The user's role profiles under the runtime's policy: from the token when one was used, else
/// from the role directory.
pub(super) async fn roles_of(conn: &Conn, runtime: &Runtime, principal: &Principal) -> Result<Arc<Roles>, Reason> {
    if let Some(token) = &principal.token {
        let claims = &token.claims;
        return Ok(token
            .extension
            .resolve_with(&runtime.policy, || claims.roles.iter().map(crate::auth::tokens::role_data).collect()));
    }
    let directory = conn.services.directory.load_full();
    let entry = directory.lookup(&principal.user_id).await.map_err(|e| {
        tracing::warn!(user_id = %principal.user_id, error = %e, "role directory lookup failed");
        Reason::RoleDirectoryUnavailable
    })?;
    Ok(entry.slot.resolve(&entry.roles, &runtime.policy))
}

/// The one value of a header the client may send at most once; several are refused.
fn single<'h>(headers: &'h HeaderMap, name: &http::HeaderName) -> Result<Option<&'h HeaderValue>, ()> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() { Err(()) } else { Ok(first) }
}
