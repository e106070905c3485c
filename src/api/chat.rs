//! `POST /v1/chat/completions`, non-stream and SSE stream.
//!
//! The client's body goes upstream as it came, with only `model` replaced. A stream is answered
//! only once the first upstream event is in hand (the commit point), so any failure before it is
//! retried on another route and the client never sees it.

use std::sync::Arc;

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::{Rejection, RequestCtx, json, read_body, served_by};
use crate::body::Body;
use crate::config::ModelType;
use crate::limits::keys::not_allowed;
use crate::providers::{ResponseContext, Usage};
use crate::request::ChatRequest;
use crate::routing::dispatch::{dispatch, open_stream, send_buffered};
use crate::routing::relay::{StreamEnd, StreamObserver};
use crate::routing::{ModelEntry, Route};

/// Largest non-stream upstream answer accepted.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

pub async fn handle(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = ctx.runtime.keys.authenticate(req.headers())?;
    let body = read_body(req, ctx.runtime.max_body_bytes).await?;
    let chat = ChatRequest::parse(body)?;
    let model = ctx.runtime.model(&chat.model, ModelType::Chat)?;
    if key.as_ref().is_some_and(|k| !k.allows(&model.name)) {
        return Err(not_allowed(&model.name).into());
    }
    match chat.stream {
        true => stream(ctx, model, &chat).await,
        false => buffered(ctx, model, &chat).await,
    }
}

async fn buffered(
    ctx: &RequestCtx,
    model: &ModelEntry,
    chat: &ChatRequest,
) -> Result<Response<Body>, Rejection> {
    let response_ctx = response_context(chat);
    let served = dispatch(model, ctx.runtime.max_attempts, |route: Arc<Route>| {
        let upstream =
            route
                .provider
                .wire
                .build_chat(chat, &route.upstream_model, &route.upstream_model_json);
        let response_ctx = &response_ctx;
        async move {
            let body = send_buffered(&route, upstream?, MAX_RESPONSE).await?;
            route.provider.wire.parse_response(body, response_ctx)
        }
    })
    .await?;
    let (body, usage) = served.value;
    let route = &served.route;
    if let Some(u) = usage {
        route.metrics.tokens(u.input_tokens, u.output_tokens);
    }
    route.metrics.request(200, ctx.started.elapsed());
    let mut response = json(StatusCode::OK, body);
    served_by(&mut response, route);
    Ok(response)
}

async fn stream(
    ctx: &RequestCtx,
    model: &ModelEntry,
    chat: &ChatRequest,
) -> Result<Response<Body>, Rejection> {
    let deadline = ctx.deadline;
    let response_ctx = response_context(chat);
    let served = dispatch(model, ctx.runtime.max_attempts, |route: Arc<Route>| {
        let upstream =
            route
                .provider
                .wire
                .build_chat(chat, &route.upstream_model, &route.upstream_model_json);
        let relay = route
            .provider
            .wire
            .stream_relay(response_ctx.clone(), route.provider.id.clone());
        async move { open_stream(&route, upstream?, relay, deadline).await }
    })
    .await?;
    let route = served.route;
    let mut relay = served.value;
    route.metrics.ttft(ctx.started.elapsed());
    relay.observe(Box::new(StreamMetrics {
        route: route.clone(),
        started: ctx.started,
    }));
    let mut response = Response::new(relay.boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Reverse proxies in front of the gateway must not buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    served_by(&mut response, &route);
    Ok(response)
}

/// What a translating adapter needs to answer as OpenAI would: the client's model name, whether
/// it asked for the usage chunk, one `created` for every chunk.
fn response_context(chat: &ChatRequest) -> ResponseContext {
    ResponseContext {
        client_model: chat.model.clone(),
        include_usage: chat.include_usage,
        created: crate::clock::unix_now(),
    }
}

/// Records a stream's metrics when it ends, however it ends.
struct StreamMetrics {
    route: Arc<Route>,
    started: Instant,
}

// === impl StreamMetrics ===

impl StreamObserver for StreamMetrics {
    fn finished(self: Box<Self>, end: StreamEnd, usage: Option<Usage>) {
        let how = match &end {
            StreamEnd::Completed => "completed",
            StreamEnd::Failed(e) => {
                tracing::warn!(provider = %self.route.provider.id, error = %e, "stream failed after the commit point");
                "failed"
            }
            StreamEnd::Cancelled => "cancelled",
        };
        crate::metrics::stream_ended(&self.route.provider.id, how);
        if let Some(u) = usage {
            self.route.metrics.tokens(u.input_tokens, u.output_tokens);
        }
        self.route.metrics.request(200, self.started.elapsed());
    }
}
