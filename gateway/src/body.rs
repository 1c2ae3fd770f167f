//! The message bodies the gateway passes along, whichever transport a request came by.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

/// Request body: from a TCP connection (HTTP/1.1 or HTTP/2) or an HTTP/3 stream.
pub(crate) type RequestBody = Either<Incoming, crate::serve::quic_body::RequestBody>;

/// Response body: streamed from the upstream, or generated here.
pub(crate) type ResponseBody = Either<Incoming, Full<Bytes>>;
