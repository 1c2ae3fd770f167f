//! Forwarding an allowed request (DESIGN §2 step 6): the signed identity assertion where the
//! route asks, the header contract (client-sent identity removed, verified identity added), the
//! canonical target, and the exchange with the upstream cluster, streaming both ways.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use http_body_util::Either;
use spinegate_vocab::Reason;

use super::authorise::Decision;
use super::context::RequestCtx;
use crate::assertion;
use crate::body::{RequestBody, ResponseBody};
use crate::conn::Conn;
use crate::metrics as m;
use crate::peer::Peer;
use crate::proxy::body::GuardedBody;
use crate::proxy::headers::{self, Outbound};
use crate::routing::CompiledRoute;
use crate::runtime::Runtime;
use spinegate_canonical::RequestTarget;

/// Sends the request upstream as judged, and passes the upstream's response on.
pub(super) async fn forward(
    conn: &Conn,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    route: &CompiledRoute,
    decision: Decision,
    target: &RequestTarget,
    request: Request<RequestBody>,
) -> Result<Response<ResponseBody>, Reason> {
    let cluster = &runtime.clusters[route.upstream];
    ctx.upstream = Some(Arc::clone(&cluster.name));
    let principal = decision.principal.as_ref();
    let assertion = match (&runtime.assertion, principal, route.identity_assertion) {
        (Some(signer), Some(p), true) => {
            let subject = assertion::Subject {
                principal: p,
                role: decision.role(),
                organisation: decision.organisation.as_deref(),
                audience: &cluster.name,
                request_id: ctx.request_id.to_str().unwrap_or(""),
                certificate_sha256: conn.peer.as_ref().map(Peer::leaf_sha256),
            };
            metrics::counter!(m::IDENTITY_ASSERTIONS, "route" => route.name.to_string()).increment(1);
            HeaderValue::from_str(&signer.sign(&subject, ctx.now.as_secs())).ok()
        }
        _ => None,
    };
    let (mut parts, body) = request.into_parts();
    // The upstream is asked for exactly what was judged: the canonical path, the query as sent.
    parts.uri = target.path_and_query().parse().map_err(|_| Reason::InvalidPath)?;
    let authority = target.authority.as_ref();
    let outbound = Outbound {
        request_id: &ctx.request_id,
        correlation_id: ctx.correlation_id.as_ref(),
        principal,
        role: decision.role(),
        organisation: decision.organisation.as_deref(),
        assertion,
        client_ip: conn.remote.ip(),
        host: authority.map(|a| a.host()),
        expiry_warning: ctx.expiry_warning.as_ref(),
    };
    parts.headers = headers::to_upstream(std::mem::take(&mut parts.headers), &outbound, &runtime.header_filter);
    let body = GuardedBody::new(body, runtime.body_limits(), Arc::clone(&runtime.header_filter));

    let sent = Instant::now();
    let result = cluster.forward(Request::from_parts(parts, body), authority.map(|a| a.as_str())).await;
    let elapsed = sent.elapsed();
    ctx.upstream_time = Some(elapsed);
    m::request::upstream_exchange(&cluster.name, elapsed.as_secs_f64());
    match result {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
        Err(e) => {
            // The client's doing (a body too large, too slow, broken off) is not an upstream error.
            if let Some(kind) = e.upstream_kind() {
                metrics::counter!(m::UPSTREAM_ERRORS, "upstream" => cluster.name.to_string(), "kind" => kind)
                    .increment(1);
            }
            tracing::warn!(
                request_id = ctx.request_id.to_str().unwrap_or(""),
                upstream = %cluster.name,
                error = %error_chain(&e),
                "upstream exchange failed"
            );
            Err(Reason::from(&e))
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
