//! `POST /v1/chat/completions`, non-stream and SSE stream: parse the request, hand it to the
//! pipeline, render the answer.
//!
//! The client's body goes upstream as it came, with only `model` replaced. A stream is answered
//! only once the first upstream event is in hand (the commit point), so any failure before it is
//! retried on another route and the client never sees it.

use http::{Request, Response};
use hyper::body::Incoming;

use super::{cache_directives, read_body, render, session_header};
use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::call::pipeline;
use crate::request::ChatRequest;

pub async fn handle(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let header_session = session_header(req.headers())?;
    let cache = cache_directives(ctx, req.headers())?;
    let body = read_body(ctx, req).await?;
    let mut chat = ChatRequest::parse(body)?;
    chat.cache = cache;
    let session = chat.session_id.take().or(header_session);
    Ok(render(pipeline::chat(ctx, key, chat, session).await?))
}
