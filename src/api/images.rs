//! `POST /v1/images/generations` and `/v1/images/edits` (multipart, streamed upstream as it
//! arrives) (PROTOCOLS.md §13.3): `image` models; `model` may be left out (the first
//! configured image model serves). The answer (base64 images, megabytes) is relayed as it
//! came; the ledger counts its images.

use http::{Request, Response};
use hyper::body::Incoming;

use super::{read_body, read_upload, render};
use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::call::media;
use crate::call::pipeline::{self, Answered};
use crate::config::ModelType;
use crate::request::PassRequest;
use crate::routing::transport::Endpoint;

pub async fn generate(
    ctx: &RequestCtx,
    req: Request<Incoming>,
) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let body = read_body(ctx, req).await?;
    let request = PassRequest::parse(body, "prompt")?;
    let answer = pipeline::pass(ctx, key, ModelType::Image, &request).await?;
    Ok(render(Answered::Whole(answer)))
}

pub async fn edit(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let upload = read_upload(ctx, req, &crate::upload::IMAGE_EDIT).await?;
    let answer = media::upload(ctx, key, Endpoint::ImageEdits, &upload).await?;
    Ok(render(answer))
}
