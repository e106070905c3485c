//! `POST /v1/rerank` and `/v2/rerank` (PROTOCOLS.md §13.5): the Cohere/Jina shape, so Cohere's
//! SDKs (base URL = the gateway's root: v1 and v2 paths) and Jina-style clients (base URL =
//! the gateway's `/v1`) work unchanged.

use http::{Request, Response};
use hyper::body::Incoming;

use super::{read_body, render};
use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::call::pipeline::{self, Answered};
use crate::request::RerankRequest;

pub async fn handle(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let body = read_body(ctx, req).await?;
    let rerank = RerankRequest::parse(body)?;
    let answer = pipeline::rerank(ctx, key, &rerank).await?;
    Ok(render(Answered::Whole(answer)))
}
