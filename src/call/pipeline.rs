//! The steps composed, one entry per kind of model call: chat and legacy completions (whole
//! answers and streams, with an optional session) and embeddings. Each is admit → expand → dispatch, with the outcome
//! recorded by the recorder made at admission; `api/` parses before and renders after.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;

use super::admit;
use super::context::{Rejection, RequestCtx};
use super::dispatch;
use super::outcome::Recorder;
use super::turn;
use crate::body::Body;
use crate::config::ModelType;
use crate::limits::keys::ApiKey;
use crate::limits::rate::Admission;
use crate::request::{ChatRequest, EmbeddingsRequest, Form};
use crate::routing::{Route, affinity};
use crate::usage::record::Purpose;

/// A served request: the answer's body, the route that served it, the key's limits (for the
/// `x-ratelimit-*` headers) and the session it belongs to.
pub struct Answer<T> {
    pub body: T,
    pub route: Arc<Route>,
    pub admission: Admission,
    pub session: Option<String>,
}

/// An answer as the client gets it: one JSON body, or an SSE stream (boxed once, here).
pub enum Answered {
    Whole(Answer<Bytes>),
    Stream(Answer<Body>),
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
    let purpose = match chat.form {
        Form::Chat => Purpose::Chat,
        Form::Completion => Purpose::Completion,
    };
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
        if let Some(turn) = turn {
            relay.finish_with(turn::stream_finisher(ctx, turn));
        }
        return Ok(Answered::Stream(Answer {
            body: relay.boxed_unsync(),
            route: served.route,
            admission,
            session,
        }));
    }
    let served = dispatch::complete(ctx, model, &chat, recorder, affinity).await?;
    let (body, _) = served.value;
    if let Some(turn) = turn {
        Box::pin(turn::store_reply(ctx, turn, &body)).await?;
    }
    Ok(Answered::Whole(Answer {
        body,
        route: served.route,
        admission,
        session,
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
    Ok(Answer {
        body: served.value.0,
        route: served.route,
        admission,
        session: None,
    })
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
