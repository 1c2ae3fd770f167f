//! Who the request acts as (DESIGN §2 step 2): the connection's certificate re-checked — expiry,
//! trust, revocation, on every request — and the bearer token when one is sent, bound to the
//! card where the token or the route says so; the deny list refuses the person either way.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use rustls_pki_types::UnixTime;
use spinegate_config::TokenBinding;
use spinegate_vocab::{AssuranceLevel, AuthMethod, Reason};

use super::context::RequestCtx;
use crate::auth::Principal;
use crate::conn::Conn;
use crate::runtime::Runtime;

/// Who the request acts as: the bearer token's user when one is sent (bound to the
/// connection's certificate when the token or the route says so), else the smartcard's. A
/// certificate on the connection is re-checked either way: a revoked card does not become usable
/// by adding a token. Records the user, method and expiry warning in `ctx`.
pub(super) async fn principal(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    binding: Option<TokenBinding>,
) -> Result<Principal, Reason> {
    let principal = credentials(conn, runtime, ctx, headers, binding).await?;
    ctx.user_id = Some(principal.user_id);
    ctx.auth = Some((principal.method, principal.assurance));
    ctx.expiry_warning = expiry_warning(&principal, ctx.now, runtime.expiry_warning);
    Ok(principal)
}

async fn credentials(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    binding: Option<TokenBinding>,
) -> Result<Principal, Reason> {
    let services = &conn.services;
    let certificate = match &conn.peer {
        None => None,
        Some(peer) => Some(peer.check(&runtime.trust, &services.cache, &services.revocation, ctx.now).await.map_err(
            |refusal| {
                let reason = Reason::from(&refusal);
                tracing::info!(client = %conn.remote, refusal = ?refusal, reason = reason.code(), "certificate refused on an open connection");
                reason
            },
        )?),
    };
    let Some(token) = bearer_token(headers)? else {
        let entry = certificate.ok_or(Reason::ClientCertificateRequired)?;
        let identity = Arc::clone(entry.value());
        return Ok(Principal {
            user_id: identity.user_id,
            method: AuthMethod::Smartcard,
            assurance: AssuranceLevel::Aal3,
            certificate: Some(identity),
            token: None,
        });
    };
    let verified = services.tokens.verify(token, ctx.now.as_secs()).await.map_err(|e| {
        tracing::info!(client = %conn.remote, error = %e, label = e.label(), "bearer token refused");
        Reason::from(&e)
    })?;
    let claims = &verified.claims;
    let peer = conn.peer.as_ref();
    match (claims.bound_certificate, binding.unwrap_or(TokenBinding::IfPresent)) {
        // RFC 8705: a bound token is good only on a connection presenting that certificate.
        (Some(thumbprint), _) => {
            if peer.is_none_or(|p| p.leaf_sha256() != &thumbprint) {
                return Err(Reason::TokenBindingMismatch);
            }
        }
        (None, TokenBinding::Required) => return Err(Reason::TokenBindingMismatch),
        // An unbound token on a mutual-TLS connection must at least be the same person's.
        (None, TokenBinding::IfPresent) => {
            if certificate.as_ref().is_some_and(|c| c.value().user_id != claims.user_id) {
                return Err(Reason::TokenBindingMismatch);
            }
        }
    }
    // The deny list names people, not cards: a `user` entry refuses a token user as it refuses
    // the card (whose revocation check reads the same entry, so a card never gets here denied).
    // Read from the same snapshot on every request, so it takes effect within the same bound.
    if services.revocation.snapshot().deny_list().denies_user(claims.user_id.as_str()) {
        tracing::info!(client = %conn.remote, user_id = %claims.user_id, "token user on the deny list refused");
        ctx.user_id = Some(claims.user_id);
        return Err(Reason::UserSuspended);
    }
    Ok(Principal {
        user_id: claims.user_id,
        method: AuthMethod::Token { authenticator: claims.authenticator },
        assurance: claims.assurance,
        certificate: certificate.map(|c| Arc::clone(c.value())),
        token: Some(Arc::clone(&verified)),
    })
}

/// The bearer token in `Authorization`, if any. A malformed `Authorization` header is an invalid
/// token, not an absent one.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Reason> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| Reason::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(Reason::InvalidToken),
    }
}

/// `<days> days; not-after=<RFC 3339>` when the certificate ends within `window`.
fn expiry_warning(principal: &Principal, now: UnixTime, window: Duration) -> Option<HeaderValue> {
    let identity = principal.certificate.as_ref()?;
    let left = identity.not_after.saturating_sub(now.as_secs());
    if left > window.as_secs() {
        return None;
    }
    let days = left / 86_400;
    let text = format!("{days} days; not-after={}", identity.not_after_rfc3339);
    HeaderValue::from_str(&text).ok()
}
