//! `POST /v1/embeddings`: string, string array or token arrays; float or base64. OpenAI-kind
//! upstreams receive the client's body with only `model` replaced, so `encoding_format` and
//! `dimensions` are honoured by the upstream itself; DashScope routes are translated, batched and
//! base64-encoded by the gateway.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::chat::record_failure;
use super::ledger::Draft;
use super::{Rejection, RequestCtx, admit, json, rate_headers, read_body, served_by, settle};
use crate::body::Body;
use crate::config::ModelType;
use crate::limits::keys::not_allowed;
use crate::request::EmbeddingsRequest;
use crate::routing::Route;
use crate::routing::dispatch::{dispatch, send_buffered};
use crate::usage::estimate::Reply;

/// Largest upstream embeddings answer accepted (2,048 inputs × 3,072 floats as JSON fit).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

pub async fn handle(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = ctx.runtime.keys.authenticate(req.headers())?;
    let body = read_body(req, ctx.runtime.max_body_bytes).await?;
    let embeddings = EmbeddingsRequest::parse(body)?;
    let model = ctx.runtime.model(&embeddings.model, ModelType::Embedding)?;
    if key.as_ref().is_some_and(|k| !k.allows(&model.name)) {
        return Err(not_allowed(&model.name).into());
    }
    let admission = admit(ctx, key.as_deref(), model.encoding(), |encoding| {
        encoding.count_embedding_input(&embeddings.body)
    })
    .await?;
    let draft = Draft::new(
        ctx,
        key.as_deref(),
        model,
        false,
        "embedding",
        embeddings.body.clone(),
    );
    let served = dispatch(
        model,
        ctx.runtime.max_attempts,
        None,
        |route: Arc<Route>| {
            let calls = route.build_embeddings(&embeddings);
            let embeddings = &embeddings;
            async move {
                // DashScope takes a few texts per call: the batches go out together, answers in order.
                let calls = calls?
                    .into_iter()
                    .map(|call| send_buffered(&route, call, MAX_RESPONSE));
                let bodies = futures_util::future::try_join_all(calls).await?;
                route
                    .provider
                    .wire
                    .parse_embeddings(bodies, &route.upstream_model, embeddings)
            }
        },
    )
    .await
    .map_err(|failure| {
        settle(&ctx.app, &admission, Some(0));
        record_failure(ctx, draft.clone(), failure)
    })?;
    let (body, usage) = served.value;
    settle(&ctx.app, &admission, usage.map(|u| u.input_tokens));
    let record = draft
        .routed(Some(&served.route), served.attempts, None)
        .finish(
            usage,
            Some(Reply::Embeddings),
            "ok",
            200,
            None,
            ctx.started.elapsed(),
        );
    ctx.app.record_usage(record);
    if let Some(u) = usage {
        served.route.metrics.tokens(u.input_tokens, 0);
    }
    served.route.metrics.request(200, ctx.started.elapsed());
    let mut response = json(StatusCode::OK, body);
    served_by(&mut response, &served.route);
    rate_headers(&mut response, &admission);
    Ok(response)
}
