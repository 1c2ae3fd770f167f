//! The route and rule a request is judged by, found on its canonical target; and, once the
//! request is authenticated, whether it may use them: an unknown route, a cross-site request
//! riding on a card, no rule for the method.

use std::sync::Arc;

use http::{Method, Request};
use spinegate_authz::CompiledRule;
use spinegate_config::{CrossSite, TokenBinding};
use spinegate_vocab::{AuthMethod, Reason};

use super::context::RequestCtx;
use crate::auth::Principal;
use crate::body::RequestBody;
use crate::conn::Conn;
use crate::routing::CompiledRoute;
use crate::runtime::Runtime;
use spinegate_canonical::{self as canonical, RequestTarget};

/// The route and rule for a request, before anyone is authenticated.
#[derive(Clone, Copy, Debug)]
pub(super) struct Found<'r> {
    route: Option<&'r CompiledRoute>,
    rule: Option<&'r CompiledRule>,
}

impl Found<'_> {
    /// Whether the rule admits requests without a credential.
    pub(super) fn is_public(&self) -> bool {
        self.rule.is_some_and(|r| r.rule.public)
    }

    /// How the route wants tokens bound to certificates (the default where there is no route).
    pub(super) fn token_binding(&self) -> Option<TokenBinding> {
        self.route.map(|r| r.token_binding)
    }
}

/// The route and rule for `target` and `method`; a path that cannot be routed unambiguously is
/// refused.
pub(super) fn find<'r>(
    conn: &Conn,
    runtime: &'r Runtime,
    target: &RequestTarget,
    method: &Method,
) -> Result<Found<'r>, Reason> {
    let route = runtime.routes.resolve(target).map_err(|e| {
        tracing::info!(client = %conn.remote, path = %target.path.as_str(), rule = e.label(), "request path refused");
        Reason::InvalidPath
    })?;
    Ok(Found { route, rule: route.and_then(|r| r.rule_for(method.as_str())) })
}

/// Whether the (authenticated, unless public) request may use what [`find`] found.
pub(super) fn admit<'r>(
    conn: &Conn,
    ctx: &mut RequestCtx,
    found: Found<'r>,
    principal: Option<&Principal>,
    request: &Request<RequestBody>,
    target: &RequestTarget,
) -> Result<(&'r CompiledRoute, &'r CompiledRule), Reason> {
    let route = found.route.ok_or(Reason::NoRoute)?;
    ctx.route = Some(Arc::clone(&route.name));
    // The card is presented by the browser whatever page asks: an unsafe request it carries from
    // another site's page is refused unless the route says otherwise. Tokens are not ambient
    // (a page cannot attach one it does not have), so token requests are not judged here.
    if route.cross_site == CrossSite::Refuse
        && principal.is_some_and(|p| p.method == AuthMethod::Smartcard)
        && canonical::origin::is_cross_site(request.method(), request.headers(), target.authority.as_ref())
    {
        tracing::info!(client = %conn.remote, route = %route.name, "cross-site request on a smartcard refused");
        return Err(Reason::CrossSiteRequest);
    }
    Ok((route, found.rule.ok_or(Reason::ActivityNotPermitted)?))
}
