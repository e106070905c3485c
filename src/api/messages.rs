//! Anthropic's Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`
//! (PROTOCOLS.md §12), on every chat model. Errors on these paths are rendered in Anthropic's
//! envelope (the router knows the dialect from the path).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{json, read_body, render};
use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::call::messages;
use crate::providers::ANTHROPIC_BETA;

pub async fn create(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let beta = req.headers().get(ANTHROPIC_BETA).cloned();
    let body = read_body(ctx, req).await?;
    Ok(render(messages::messages(ctx, key, body, beta).await?))
}

pub async fn count_tokens(
    ctx: &RequestCtx,
    req: Request<Incoming>,
) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let body = read_body(ctx, req).await?;
    let counted = messages::count_tokens(ctx, key, &body).await?;
    Ok(json(StatusCode::OK, counted.to_string()))
}
