//! The response body type every handler returns, and constructors for it.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Handlers answer with a buffered body or a stream; both box into this. Streams never fail at
/// the body level: an upstream failure becomes an SSE error event, rendered by `GatewayError`.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().boxed_unsync()
}
