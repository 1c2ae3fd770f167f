//! The per-request pipeline (DESIGN §2) as named phases over one [`RequestCtx`](context): each
//! phase is a plain async function in its own file, and this file only orders them. A phase
//! either passes the request on or ends it with the [`Reason`] that becomes the response.
//!
//! ## Phases, in order
//! - [`admission`]: a connection's refused certificate, a card the listener requires, the
//!   canonical request target (path and authority), size limits.
//! - [`endpoints`]: the gateway's own resources — back-channel logout, the identity page.
//! - [`route`]: the route and rule for the canonical target; after authentication, whether
//!   the request may use it (no route, a cross-site request on a card, no rule for the method).
//! - [`authenticate`]: the certificate re-checked, the bearer token verified, the deny list.
//! - [`authorise`]: the organisation named, the user's roles, the selected role, the rule.
//! - [`audit`]: the audit record of every access decision.
//! - [`forward`]: the identity assertion, the header contract, the upstream exchange.
//! - [`respond`]: the refusal in the client's format, response headers, metrics, access log.

mod admission;
mod audit;
mod authenticate;
mod authorise;
mod context;
mod endpoints;
mod forward;
mod respond;
mod route;

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use spinegate_vocab::Reason;

use self::context::RequestCtx;
use self::endpoints::Endpoint;
use crate::body::{RequestBody, ResponseBody};
use crate::conn::{Conn, InFlight};
use crate::runtime::Runtime;

/// Handles one request on `conn`. Never fails: every refusal becomes a response.
pub(crate) async fn handle(
    conn: Arc<Conn>,
    request: Request<RequestBody>,
) -> Result<Response<ResponseBody>, Infallible> {
    let _in_flight = InFlight::begin(&conn.traffic);
    let runtime = conn.services.runtime.load_full();
    let mut ctx = RequestCtx::new(&request, conn.services.clock.now());
    // Boxed: hyper keeps the space of one request's future for the connection's whole life, so
    // the phases' state (the upstream exchange, a directory lookup) lives only while they run
    // and an idle kept-alive connection holds a few hundred bytes here instead of kilobytes.
    let outcome = Box::pin(phases(&conn, &runtime, &mut ctx, request)).await;
    Ok(respond::finish(&conn, &runtime, &mut ctx, outcome))
}

/// The phases, in DESIGN §2's order; the first refusal ends the request.
async fn phases(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    request: Request<RequestBody>,
) -> Result<Response<ResponseBody>, Reason> {
    let target = admission::admit(conn, runtime, ctx, &request)?;
    match endpoints::of(runtime, &target) {
        Some(Endpoint::BackchannelLogout) => return Ok(endpoints::backchannel_logout(conn, runtime, request).await),
        Some(Endpoint::WhoAmI) => return endpoints::whoami(conn, runtime, ctx, request.headers()).await,
        None => {}
    }
    // The route and rule are found before authentication because the route says how tokens
    // must be bound (and a public rule needs no credential), but an unauthenticated request is
    // refused before it can learn whether the route exists.
    let found = route::find(conn, runtime, &target, &ctx.method)?;
    let principal = match found.is_public() {
        true => None,
        false => Some(authenticate::principal(conn, runtime, ctx, request.headers(), found.token_binding()).await?),
    };
    let (route, rule) = route::admit(conn, ctx, found, principal.as_ref(), &request, &target)?;
    let decision = authorise::decide(conn, runtime, ctx, (route, rule), principal, &target, request.headers()).await?;
    audit::record(conn, ctx, Ok(()));
    forward::forward(conn, runtime, ctx, route, decision, &target, request).await
}
