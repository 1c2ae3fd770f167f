//! The audit record of an access decision (DESIGN §2 step 5): one per decision, allowed or
//! refused, queued to the audit log's writer, and counted.

use std::sync::Arc;

use rustls_pki_types::UnixTime;
use spinegate_vocab::{AuthMethod, Reason};

use super::context::RequestCtx;
use crate::audit::AuditRecord;
use crate::conn::Conn;
use crate::metrics as m;

/// Queues the audit record of `decision`; an allowed request is audited before it is forwarded.
pub(super) fn record(conn: &Conn, ctx: &mut RequestCtx, decision: Result<(), Reason>) {
    let (auth_method, authenticator) = match ctx.auth.map(|(m, _)| m) {
        None => (None, None),
        Some(AuthMethod::Smartcard) => (Some("smartcard"), Some("smartcard")),
        Some(AuthMethod::Token { authenticator }) => (Some("token"), Some(authenticator.as_str())),
    };
    let role = ctx.role.as_ref();
    let allowed = decision.is_ok();
    let reason = decision.err().map_or("ok", Reason::code);
    conn.services.audit.record(AuditRecord {
        time: audit_time(conn.services.clock.now()),
        request_id: ctx.request_id.to_str().unwrap_or("").to_owned(),
        correlation_id: ctx.correlation_id.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned),
        decision: if allowed { "allow" } else { "deny" },
        reason,
        client: conn.remote.ip().to_string(),
        method: ctx.method.as_str().to_owned(),
        path: ctx.path.clone(),
        route: ctx.route.clone(),
        user_id: ctx.user_id.map(|u| u.as_str().to_owned()),
        auth_method,
        authenticator,
        assurance: ctx.auth.map(|(_, a)| a.as_str()),
        role_profile: role.map(|r| Arc::clone(&r.id)),
        role_code: role.map(|r| Arc::clone(&r.role_code)),
        organisation: role.map(|r| Arc::clone(&r.org)),
        requested_organisation: ctx.requested_org.clone(),
        patient: ctx.patient.clone(),
    });
    ctx.audited = true;
    m::request::decided(&ctx.route, allowed, reason);
}

/// RFC 3339 UTC, the gateway clock's seconds.
fn audit_time(now: UnixTime) -> String {
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
