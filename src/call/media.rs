//! Audio and image edits (DESIGN.md §5 "Other endpoints", PROTOCOLS.md §13.1–§13.3): the same
//! admission, routing and recording as every model call, with bodies that are not chat's.
//! Uploads (transcriptions, translations, image edits) go upstream as they arrive
//! ([`crate::upload`]); answers come back with the upstream's content type, whole (JSON, text,
//! subtitles) or streamed as they arrive (speech audio, SSE events).

use std::sync::Arc;

use bytes::Bytes;

use super::admit;
use super::context::{Rejection, RequestCtx};
use super::dispatch::{self, Got};
use super::outcome::Recorder;
use super::pipeline::{Answer, Answered, admit_by_units};
use crate::config::ModelType;
use crate::error::GatewayError;
use crate::limits::keys::ApiKey;
use crate::limits::rate::Admission;
use crate::providers::{Adapter, openai};
use crate::request::SpeechRequest;
use crate::routing::Route;
use crate::routing::dispatch::Served;
use crate::routing::transport::{Endpoint, UpstreamRequest};
use crate::upload::Upload;
use crate::usage::estimate::Reply;
use crate::usage::record::{Purpose, Unit};

/// A transcription, a translation or an image edit: `upload` routed by its `model` field (for
/// image edits, the first image model when it names none).
pub async fn upload(
    ctx: &RequestCtx,
    key: Option<Arc<ApiKey>>,
    endpoint: Endpoint,
    upload: &Upload,
) -> Result<Answered, Rejection> {
    let key = key.as_deref();
    let (kind, purpose) = match endpoint {
        Endpoint::Translations => (ModelType::Transcription, Purpose::Translation),
        Endpoint::ImageEdits => (ModelType::Image, Purpose::Image),
        _ => (ModelType::Transcription, Purpose::Transcription),
    };
    let model = admit::model_or_first(ctx, key, upload.model(), kind)?;
    // Seconds measured from a WAV upload's header, where the answer reports none.
    let measured = upload.audio_seconds.map(|s| (Unit::Seconds, s));
    let known = match endpoint {
        Endpoint::ImageEdits => Some((Unit::Images, upload.images)),
        _ => measured,
    };
    let (admission, recorder) =
        admit_by_units(ctx, key, model, purpose, &Bytes::new(), known).await?;
    let build = |adapter: Adapter, route: &Route| {
        served_by_openai_kind(adapter)?;
        let outgoing = upload.outgoing(&route.upstream_model)?;
        Ok(UpstreamRequest::upload(endpoint, outgoing))
    };
    // The client's upload takes as long as it takes: the request's deadline bounds it.
    let until = Some(ctx.deadline);
    let (served, recorder) =
        dispatch::media(ctx, model, recorder, false, until, build, || upload.spent()).await?;
    // An image edit is priced by the images its answer holds; audio by the seconds the answer
    // reports, else those of the WAV sent.
    let units = match endpoint {
        Endpoint::ImageEdits => None,
        _ => measured,
    };
    Ok(answered(ctx, served, recorder, admission, endpoint, units))
}

/// Speech: the audio (or its SSE events) streamed back as the upstream produces it, priced by
/// the characters of its input.
pub async fn speech(
    ctx: &RequestCtx,
    key: Option<Arc<ApiKey>>,
    req: &SpeechRequest,
) -> Result<Answered, Rejection> {
    let key = key.as_deref();
    let model = admit::model(ctx, key, &req.model, ModelType::Speech)?;
    let characters = Some((Unit::Characters, req.characters));
    let (admission, recorder) =
        admit_by_units(ctx, key, model, Purpose::Speech, &req.body, characters).await?;
    let build = |adapter: Adapter, route: &Route| {
        served_by_openai_kind(adapter)?;
        let body = openai::splice(&req.body, &req.model_span, &route.upstream_model_json);
        Ok(UpstreamRequest::new(Endpoint::Speech, body, false))
    };
    let (served, recorder) =
        dispatch::media(ctx, model, recorder, true, None, build, || false).await?;
    Ok(answered(
        ctx,
        served,
        recorder,
        admission,
        Endpoint::Speech,
        characters,
    ))
}

/// A media answer as the client gets it, with its outcome recorded: a whole one at once (the
/// tokens and units its JSON reports, else `units`), a streamed one when it ends (`units` and
/// the usage its events report).
fn answered(
    ctx: &RequestCtx,
    served: Served<Got>,
    recorder: Recorder,
    admission: Admission,
    endpoint: Endpoint,
    units: Option<(Unit, u64)>,
) -> Answered {
    let route = served.route;
    let (body, content_type) = match served.value {
        Got::Whole(body, content_type) => {
            // A JSON answer reports its usage and units (an upstream may leave its type out).
            let (usage, reported) = match body.first() {
                Some(b'{') => openai::pass_units(endpoint, &body),
                _ => (None, None),
            };
            recorder.served_with_units(
                &route,
                served.attempts,
                Some(usage.unwrap_or_default()),
                Reply::Embeddings,
                reported.or(units),
            );
            (crate::body::full(body), content_type)
        }
        Got::Stream(mut stream, content_type) => {
            let ttft = ctx.started.elapsed();
            stream.observe(recorder.streaming_media(&route, served.attempts, ttft, units));
            stream.close_on(&ctx.app.closing);
            (http_body_util::BodyExt::boxed_unsync(stream), content_type)
        }
    };
    let answer = Answer {
        body,
        route: Some(route),
        admission,
        session: None,
        cache: None,
    };
    Answered::Typed(answer, content_type)
}

/// Only OpenAI-kind routes serve these (the load-time check refuses the others; a control-plane
/// route it could not see is refused here).
fn served_by_openai_kind(adapter: Adapter) -> Result<(), GatewayError> {
    match adapter {
        Adapter::OpenAi | Adapter::Mock => Ok(()),
        _ => Err(
            GatewayError::invalid_request("this model's route cannot serve this endpoint")
                .with_param("model"),
        ),
    }
}
