//! The response body type every handler returns, and constructors for it.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Handlers answer with a buffered body or a stream; both box into this. SSE streams never fail
/// at the body level (an upstream failure becomes an error event, rendered by `GatewayError`);
/// a binary stream (speech audio) that the upstream cuts short fails with [`Cut`], so the client
/// sees a truncated body, never a clean end.
pub type Body = UnsyncBoxBody<Bytes, Cut>;

/// A response body that ended before its end: hyper aborts the response (HTTP/1.1: no last
/// chunk, the connection closed; HTTP/2: the stream reset).
#[derive(Debug)]
pub struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upstream cut the response short")
    }
}

impl std::error::Error for Cut {}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    boxed(Full::new(bytes.into()))
}

pub fn empty() -> Body {
    boxed(Empty::new())
}

/// A body that cannot fail, boxed.
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static,
{
    body.map_err(|never| match never {}).boxed_unsync()
}

/// Most a refused body is read for, and how long, before its connection is let go.
const DISCARD_BYTES: usize = 64 * 1024 * 1024;
const DISCARD_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops a body, up to `DISCARD_BYTES` or `DISCARD_FOR`, whichever comes first.
pub async fn discard(body: hyper::body::Incoming) {
    let drain = async {
        let mut body = http_body_util::Limited::new(body, DISCARD_BYTES);
        while let Some(Ok(_)) = body.frame().await {}
    };
    let _ = tokio::time::timeout(DISCARD_FOR, drain).await;
}
