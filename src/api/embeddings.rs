//! `POST /v1/embeddings`: string, string array or token arrays; float or base64. OpenAI-kind
//! upstreams receive the client's body with only `model` replaced, so `encoding_format` and
//! `dimensions` are honoured by the upstream itself; DashScope routes are translated, batched and
//! base64-encoded by the gateway.

use http::{Request, Response};
use hyper::body::Incoming;

use super::{cache_directives, read_body, render};
use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::call::pipeline::{self, Answered};
use crate::request::EmbeddingsRequest;

pub async fn handle(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let cache = cache_directives(ctx, req.headers())?;
    let body = read_body(ctx, req).await?;
    let mut embeddings = EmbeddingsRequest::parse(body)?;
    embeddings.cache = cache;
    let answer = pipeline::embeddings(ctx, key, &embeddings).await?;
    Ok(render(Answered::Whole(answer)))
}
