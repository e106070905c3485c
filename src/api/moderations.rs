//! `POST /v1/moderations` (PROTOCOLS.md §13.4): `moderation` models; `model` may be left out
//! (the first configured moderation model serves), as OpenAI's SDK allows.

use http::{Request, Response};
use hyper::body::Incoming;

use super::{read_body, render};
use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::call::pipeline::{self, Answered};
use crate::config::ModelType;
use crate::request::PassRequest;

pub async fn handle(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let body = read_body(ctx, req).await?;
    let request = PassRequest::parse(body, "input")?;
    let answer = pipeline::pass(ctx, key, ModelType::Moderation, &request).await?;
    Ok(render(Answered::Whole(answer)))
}
