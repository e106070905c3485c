//! `POST /v1/completions` (legacy, PROTOCOLS.md §11): `prompt` in, `text_completion` out,
//! streamed with `[DONE]`, on a chat model's routes.

use http::{Request, Response};
use hyper::body::Incoming;

use super::{cache_directives, read_body, render};
use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::call::pipeline;
use crate::request::ChatRequest;

pub async fn handle(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let cache = cache_directives(ctx, req.headers())?;
    let body = read_body(ctx, req).await?;
    let mut completion = ChatRequest::parse_completion(body)?;
    completion.cache = cache;
    Ok(render(pipeline::chat(ctx, key, completion, None).await?))
}
