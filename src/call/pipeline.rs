//! The steps composed, one entry per kind of model call: chat and legacy completions (whole
//! answers and streams, with an optional session) and embeddings. Each is admit → expand → dispatch, with the outcome
//! recorded by the recorder made at admission; `api/` parses before and renders after.

use std::sync::Arc;

use bytes::Bytes;

use super::admit;
use super::cached::{self, Plan};
use super::context::{Rejection, RequestCtx};
use super::dispatch;
use super::outcome::Recorder;
use super::turn;
use crate::body::Body;
use crate::cache::{Endpoint, Verdict};
use crate::config::ModelType;
use crate::limits::keys::ApiKey;
use crate::limits::rate::Admission;
use crate::request::{ChatRequest, EmbeddingsRequest, Form, PassRequest, RerankRequest};
use crate::routing::dispatch::Served;
use crate::routing::transport;
use crate::routing::{ModelEntry, Route, affinity};
use crate::usage::record::{Purpose, Unit};

/// A served request: the answer's body, the route that served it (none for a cache hit), the
/// key's limits (for the `x-ratelimit-*` headers), the session it belongs to and what the
/// result cache did.
pub struct Answer<T> {
    pub body: T,
    pub route: Option<Arc<Route>>,
    pub admission: Admission,
    pub session: Option<String>,
    pub cache: Option<Verdict>,
}

/// An answer as the client gets it: one JSON body, an SSE stream (boxed once, here), or a
/// media answer with the upstream's content type (audio, text, subtitles; whole or streamed).
pub enum Answered {
    Whole(Answer<Bytes>),
    Stream(Answer<Body>),
    Typed(Answer<Body>, http::HeaderValue),
}

/// A chat request, or a legacy completion (`Form::Completion`: a chat model's routes,
/// `text_completion` answers passed through from OpenAI-kind upstreams or translated from
/// DashScope's). With `session`, the stored history is expanded into it first and the turn is
/// appended before the answer ends; the session's turns stick to one route while it is healthy.
pub async fn chat(
    ctx: &RequestCtx,
    key: Option<Arc<ApiKey>>,
    mut chat: ChatRequest,
    session: Option<String>,
) -> Result<Answered, Rejection> {
    let key = key.as_deref();
    let model = admit::model(ctx, key, &chat.model, ModelType::Chat)?;
    admit::choices(ctx, &chat)?;
    let (endpoint, purpose) = match chat.form {
        Form::Chat => (Endpoint::Chat, Purpose::Chat),
        Form::Completion => (Endpoint::Completion, Purpose::Completion),
    };
    let mut plan = Plan::new(
        ctx,
        key,
        model,
        endpoint,
        &chat.body,
        chat.cache,
        session.is_some(),
    );
    if let Some(hit) = plan.lookup(ctx, model).await
        && let Some(body) = hit.body(chat.stream, chat.include_usage)
    {
        let request = chat.body.clone();
        let admission = cached::admit(ctx, key, model, purpose, chat.stream, request, &hit).await?;
        let cache = Some(Verdict::Hit { age: hit.age });
        return Ok(match chat.stream {
            true => Answered::Stream(Answer {
                body: crate::body::full(body),
                route: None,
                admission,
                session: None,
                cache,
            }),
            false => Answered::Whole(Answer {
                body,
                route: None,
                admission,
                session: None,
                cache,
            }),
        });
    }
    let turn = match session {
        None => None,
        Some(id) => {
            let owner = key.map(|k| &*k.name);
            // Boxed (here and below): the session store's futures are large, and a request
            // without a session should not carry (and move) their space.
            let turn = Box::pin(turn::begin(ctx, &id, owner, model, &chat)).await?;
            chat = ChatRequest::parse(turn.body.clone())?;
            Some(turn)
        }
    };
    // Reserved: the prompt as sent upstream (session history included) plus the completion.
    let admission = admit::generation_limits(ctx, key, model, model.encoding(), &chat).await?;
    let session = turn.as_ref().map(|t| t.id.clone());
    let recorder = Recorder::new(
        ctx,
        key,
        model,
        purpose,
        chat.stream,
        chat.body.clone(),
        admission.clone(),
    )
    .in_session(session.as_deref());
    let affinity = session.as_deref().map(affinity::session_key);
    if chat.stream {
        let served = dispatch::stream(ctx, model, &chat, recorder, affinity).await?;
        let mut relay = served.value;
        let cache = plan.verdict();
        // A session's turn and a cache entry never both: a session's request is not cached.
        if let Some(turn) = turn {
            relay.finish_with(turn::stream_finisher(ctx, turn));
        } else if let Some(store) = plan.stream_store(ctx) {
            relay.finish_with(store);
        }
        return Ok(Answered::Stream(Answer {
            body: crate::body::boxed(relay),
            route: Some(served.route),
            admission,
            session,
            cache,
        }));
    }
    let served = dispatch::complete(ctx, model, &chat, recorder, affinity).await?;
    let (body, usage) = served.value;
    if let Some(turn) = turn {
        Box::pin(turn::store_reply(ctx, turn, &body)).await?;
    }
    let cache = plan.verdict();
    plan.store(ctx, &body, usage);
    Ok(Answered::Whole(Answer {
        body,
        route: Some(served.route),
        admission,
        session,
        cache,
    }))
}

/// An embeddings request.
pub async fn embeddings(
    ctx: &RequestCtx,
    key: Option<Arc<ApiKey>>,
    req: &EmbeddingsRequest,
) -> Result<Answer<Bytes>, Rejection> {
    let key = key.as_deref();
    let model = admit::model(ctx, key, &req.model, ModelType::Embedding)?;
    let mut plan = Plan::new(
        ctx,
        key,
        model,
        Endpoint::Embeddings,
        &req.body,
        req.cache,
        false,
    );
    if let Some(hit) = plan.lookup(ctx, model).await {
        let request = req.body.clone();
        let admission =
            cached::admit(ctx, key, model, Purpose::Embedding, false, request, &hit).await?;
        return Ok(Answer {
            body: hit.entry.body,
            route: None,
            admission,
            session: None,
            cache: Some(Verdict::Hit { age: hit.age }),
        });
    }
    let admission = admit::limits(ctx, key, model, model.encoding(), |encoding| {
        (encoding.count_embedding_input(&req.body), 0)
    })
    .await?;
    let recorder = Recorder::new(
        ctx,
        key,
        model,
        Purpose::Embedding,
        false,
        req.body.clone(),
        admission.clone(),
    );
    let served = dispatch::embed(ctx, model, req, recorder).await?;
    let (body, usage) = served.value;
    let cache = plan.verdict();
    plan.store(ctx, &body, usage);
    Ok(Answer {
        body,
        route: Some(served.route),
        admission,
        session: None,
        cache,
    })
}

/// A rerank request: admitted (rpm; tokens are counted by the upstream, searches by the
/// ledger), routed and recorded as `purpose = 'rerank'` with its searches.
pub async fn rerank(
    ctx: &RequestCtx,
    key: Option<Arc<ApiKey>>,
    req: &RerankRequest,
) -> Result<Answer<Bytes>, Rejection> {
    let key = key.as_deref();
    let model = admit::model(ctx, key, &req.model, ModelType::Rerank)?;
    let searches = Some((Unit::Searches, req.searches()));
    let (admission, recorder) =
        admit_by_units(ctx, key, model, Purpose::Rerank, &req.body, searches).await?;
    let served = dispatch::priced(
        ctx,
        model,
        recorder,
        |adapter, route| adapter.build_rerank(req, route),
        |adapter, body| adapter.parse_rerank(body, req),
    )
    .await?;
    Ok(whole(served, admission))
}

/// A moderation or an image generation: passed on to an OpenAI-kind route as it came (its model
/// replaced, or named when the client gave none: the first configured model of the type),
/// recorded with the tokens and images its answer reports.
pub async fn pass(
    ctx: &RequestCtx,
    key: Option<Arc<ApiKey>>,
    kind: ModelType,
    req: &PassRequest,
) -> Result<Answer<Bytes>, Rejection> {
    let key = key.as_deref();
    let name = req.model.as_ref().map(|(name, _)| name.as_str());
    let model = admit::model_or_first(ctx, key, name, kind)?;
    let (endpoint, purpose) = match kind {
        ModelType::Image => (transport::Endpoint::ImageGenerations, Purpose::Image),
        _ => (transport::Endpoint::Moderations, Purpose::Moderation),
    };
    // The images asked for (`n`, default 1).
    let images = (kind == ModelType::Image).then(|| (Unit::Images, req.images()));
    let (admission, recorder) = admit_by_units(ctx, key, model, purpose, &req.body, images).await?;
    let served = dispatch::priced(
        ctx,
        model,
        recorder,
        |adapter, route| adapter.build_pass(endpoint, req, route),
        |adapter, body| adapter.parse_pass(endpoint, body),
    )
    .await?;
    Ok(whole(served, admission))
}

/// Admits a request priced by what its answer reports (tokens counted upstream, units): the
/// key's rpm and budget, no tokens reserved but the units known now (`known`); and its
/// recorder.
pub(super) async fn admit_by_units(
    ctx: &RequestCtx,
    key: Option<&ApiKey>,
    model: &ModelEntry,
    purpose: Purpose,
    body: &Bytes,
    known: Option<(Unit, u64)>,
) -> Result<(Admission, Recorder), Rejection> {
    let admission = admit::priced_limits(ctx, key, model, known).await?;
    let recorder = Recorder::new(
        ctx,
        key,
        model,
        purpose,
        false,
        body.clone(),
        admission.clone(),
    );
    Ok((admission, recorder))
}

/// A whole answer a route served, outside any session or cache.
fn whole(served: Served<Bytes>, admission: Admission) -> Answer<Bytes> {
    Answer {
        body: served.value,
        route: Some(served.route),
        admission,
        session: None,
        cache: None,
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
