//! `POST /v1/audio/transcriptions`, `/v1/audio/translations` (multipart uploads, streamed
//! upstream as they arrive) and `POST /v1/audio/speech` (the audio streamed back as it is
//! made): PROTOCOLS.md §13.1, §13.2.

use http::{Request, Response};
use hyper::body::Incoming;

use super::{read_body, read_upload, render};
use crate::body::Body;
use crate::call::admit;
use crate::call::context::{Rejection, RequestCtx};
use crate::call::media;
use crate::request::SpeechRequest;
use crate::routing::transport::Endpoint;
use crate::upload;

/// A transcription (`translate: false`) or a translation into English.
pub async fn transcribe(
    ctx: &RequestCtx,
    req: Request<Incoming>,
    translate: bool,
) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let upload = read_upload(ctx, req, &upload::AUDIO).await?;
    let endpoint = match translate {
        true => Endpoint::Translations,
        false => Endpoint::Transcriptions,
    };
    let answer = media::upload(ctx, key, endpoint, &upload).await?;
    Ok(render(answer))
}

pub async fn speech(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = admit::authenticate(ctx, req.headers())?;
    let body = read_body(ctx, req).await?;
    let speech = SpeechRequest::parse(body)?;
    let answer = media::speech(ctx, key, &speech).await?;
    Ok(render(answer))
}
