//! Dispatch: a request through the routes (`routing::dispatch` picks and retries) with each
//! attempt composed here from its adapter (what to send, how to read the answer) and the
//! route's transport (the bytes), then handed to the outcome recorder. Everything before a
//! stream's first event is an attempt that may be retried on another route (the commit point).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderValue;
use tokio::time::{Instant, timeout};

use super::media_stream::MediaStream;

use super::context::{Rejection, RequestCtx};
use super::outcome::Recorder;
use super::relay::RelayStream;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::{Adapter, Priced, ResponseContext, StreamRelay, Usage};
use crate::request::{ChatRequest, EmbeddingsRequest};
use crate::routing::dispatch::{Served, dispatch};
use crate::routing::transport::{UpstreamRequest, UpstreamResponse, collect};
use crate::routing::{ModelEntry, Route};
use crate::trace::{Attr, Kind, Name, UPSTREAM_TRACEPARENT, Value};
use crate::usage::estimate::Reply;

/// Largest non-stream upstream chat answer accepted.
const MAX_COMPLETION: usize = 64 * 1024 * 1024;
/// Largest upstream embeddings answer accepted (2,048 inputs × 3,072 floats as JSON fit).
const MAX_EMBEDDINGS: usize = 256 * 1024 * 1024;
/// Largest upstream error body read (the rest is not needed to report it).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A whole answer as the client will see it, and the usage it reports.
pub type Answer = (Bytes, Option<Usage>);

/// A non-stream chat completion. `affinity`: a session's key, pinning its first attempt.
pub async fn complete(
    ctx: &RequestCtx,
    model: &ModelEntry,
    chat: &ChatRequest,
    recorder: Recorder,
    affinity: Option<u64>,
) -> Result<Served<Answer>, Rejection> {
    let response_ctx = response_context(chat);
    let (served, recorder) = through_routes(ctx, model, affinity, recorder, |route| {
        let (adapter, upstream) = chat_request(&route, chat);
        let response_ctx = &response_ctx;
        async move {
            let body = send_buffered(&route, adapter, upstream?, MAX_COMPLETION).await?;
            adapter.parse_response(body, response_ctx)
        }
    })
    .await?;
    let (body, usage) = &served.value;
    let reply = Reply::Completion(body.clone());
    recorder.served(&served.route, served.attempts, *usage, reply);
    Ok(served)
}

/// A chat stream, answered once its first event is in hand. The recorder goes with the stream
/// and records it when it ends.
pub async fn stream(
    ctx: &RequestCtx,
    model: &ModelEntry,
    chat: &ChatRequest,
    recorder: Recorder,
    affinity: Option<u64>,
) -> Result<Served<RelayStream>, Rejection> {
    let deadline = ctx.deadline;
    let response_ctx = response_context(chat);
    // Without a ledger nothing counts a stream's chunks: do not keep them.
    let counting = ctx.app.usage.is_some();
    let (mut served, recorder) = through_routes(ctx, model, affinity, recorder, |route| {
        let (adapter, upstream) = chat_request(&route, chat);
        let mut relay = adapter.stream_relay(response_ctx.clone(), route.provider.id.clone());
        if !counting {
            relay = relay.without_counting();
        }
        async move { open_stream(&route, adapter, upstream?, relay, deadline).await }
    })
    .await?;
    let ttft = ctx.started.elapsed();
    let observer = recorder.streaming(&served.route, served.attempts, ttft);
    served.value.observe(observer);
    served.value.close_on(&ctx.app.closing);
    Ok(served)
}

/// Embeddings. DashScope takes a few texts per call: the batches go out together and their
/// answers are joined in order.
pub async fn embed(
    ctx: &RequestCtx,
    model: &ModelEntry,
    req: &EmbeddingsRequest,
    recorder: Recorder,
) -> Result<Served<Answer>, Rejection> {
    let (served, recorder) = through_routes(ctx, model, None, recorder, |route| {
        let adapter = Adapter::of(route.provider.kind);
        let calls =
            adapter.build_embeddings(req, &route.upstream_model, &route.upstream_model_json);
        async move {
            let calls = calls?
                .into_iter()
                .map(|call| send_buffered(&route, adapter, call, MAX_EMBEDDINGS));
            let bodies = futures_util::future::try_join_all(calls).await?;
            adapter.parse_embeddings(bodies, &route.upstream_model, req)
        }
    })
    .await?;
    recorder.served(
        &served.route,
        served.attempts,
        served.value.1,
        Reply::Embeddings,
    );
    Ok(served)
}

/// A request priced by what its answer reports (rerank, moderations, image generations):
/// `build` makes each route's request, `parse` reads its answer; recorded with the answer's
/// tokens and units. No count from the upstream is zero tokens, not an estimate: these
/// endpoints are priced by their units where they are priced at all.
pub async fn priced<B, P>(
    ctx: &RequestCtx,
    model: &ModelEntry,
    recorder: Recorder,
    build: B,
    parse: P,
) -> Result<Served<Bytes>, Rejection>
where
    B: Fn(Adapter, &Route) -> Result<UpstreamRequest, GatewayError>,
    P: Fn(Adapter, Bytes) -> Result<Priced, GatewayError> + Copy,
{
    let (served, recorder) = through_routes(ctx, model, None, recorder, |route| {
        let adapter = Adapter::of(route.provider.kind);
        let upstream = build(adapter, &route);
        // Image answers are base64 images: up to the chat bound.
        async move {
            let body = send_buffered(&route, adapter, upstream?, MAX_COMPLETION).await?;
            parse(adapter, body)
        }
    })
    .await?;
    let Priced { body, usage, units } = served.value;
    recorder.served_with_units(
        &served.route,
        served.attempts,
        Some(usage.unwrap_or_default()),
        Reply::Embeddings,
        units,
    );
    Ok(Served {
        value: body,
        route: served.route,
        attempts: served.attempts,
    })
}

/// What a media attempt got: a whole answer (JSON, text, subtitles), or a streamed one (audio,
/// SSE) past its first read; either with the upstream's content type.
pub enum Got {
    Whole(Bytes, HeaderValue),
    // Boxed: the stream's timers and state are large, and whole answers are the common case.
    Stream(Box<MediaStream>, HeaderValue),
}

/// Audio and image edits: each route's request from `build`; the answer read whole, or streamed
/// when it is SSE or `stream` says so (speech's audio), its first read before the commit point.
/// `until`: when an attempt gives up (an upload's attempt lasts as long as the client takes to
/// send it: the request's deadline, not the provider's timeout). `spent`: whether the request
/// can no longer be sent again (an upload already read by a route), making a failure final.
pub async fn media<B, S>(
    ctx: &RequestCtx,
    model: &ModelEntry,
    recorder: Recorder,
    stream: bool,
    until: Option<Instant>,
    build: B,
    spent: S,
) -> Result<(Served<Got>, Recorder), Rejection>
where
    B: Fn(Adapter, &Route) -> Result<UpstreamRequest, GatewayError>,
    S: Fn() -> bool + Copy,
{
    let deadline = ctx.deadline;
    through_routes(ctx, model, None, recorder, |route| {
        let adapter = Adapter::of(route.provider.kind);
        let upstream = build(adapter, &route);
        async move {
            let attempt = async {
                let response = send_checked(&route, adapter, upstream?).await?;
                let content_type = response
                    .content_type
                    .unwrap_or(HeaderValue::from_static("application/octet-stream"));
                let sse = content_type.as_bytes().starts_with(b"text/event-stream");
                let mut body = response.body;
                if !(stream || sse) {
                    let body = collect(body, MAX_COMPLETION).await?;
                    return Ok(Got::Whole(
                        route.provider.transport.scrub(body),
                        content_type,
                    ));
                }
                let first = body.next().await.transpose()?.unwrap_or_default();
                let stream = MediaStream::new(first, body, sse, route.clone(), deadline);
                Ok(Got::Stream(Box::new(stream), content_type))
            };
            let until = until.unwrap_or_else(|| Instant::now() + route.provider.timeout);
            let result = tokio::time::timeout_at(until, attempt)
                .await
                .unwrap_or_else(|_| Err(timed_out(&route)));
            match result {
                // Counted against the route here: the dispatcher will not see it as a failure.
                Err(e) if e.is_retryable() && spent() => {
                    route.health.record_failure(Instant::now());
                    crate::metrics::upstream_failure(&route.provider.id, e.metric_label());
                    Err(e.not_retried())
                }
                result => result,
            }
        }
    })
    .await
}

/// Tries routes with `attempt` until one serves (`routing::dispatch`); a request that no route
/// served is recorded here, so the caller only handles success.
async fn through_routes<T, F, Fut>(
    ctx: &RequestCtx,
    model: &ModelEntry,
    affinity: Option<u64>,
    recorder: Recorder,
    attempt: F,
) -> Result<(Served<T>, Recorder), Rejection>
where
    F: FnMut(Arc<Route>) -> Fut,
    Fut: Future<Output = Result<T, GatewayError>>,
{
    let Some(server) = &ctx.trace else {
        return match dispatch(model, ctx.runtime.max_attempts, affinity, attempt).await {
            Ok(served) => Ok((served, recorder)),
            Err(failure) => Err(recorder.failed(failure)),
        };
    };
    // A traced request: each attempt is a client span under the request's, and its upstream
    // request carries that span as its `traceparent`.
    let mut attempt = attempt;
    let mut tried = 0i64;
    let traced = |route: Arc<Route>| {
        tried += 1;
        let span = server.child(
            Name::Pair(model.kind_operation(), route.upstream_model.clone()),
            Kind::Client,
        );
        span.set_all([
            (Attr::GenAiSystem, Value::Static(route.provider.kind.name())),
            (
                Attr::GenAiOperationName,
                Value::Static(model.kind_operation()),
            ),
            (
                Attr::GenAiRequestModel,
                Value::Shared(route.upstream_model.clone()),
            ),
            (Attr::Provider, Value::Shared(route.provider.id.clone())),
            (Attr::Attempt, Value::Int(tried)),
        ]);
        let provider = route.provider.clone();
        let work = UPSTREAM_TRACEPARENT.scope(span.traceparent(), attempt(route));
        async move {
            // Scrubbed before the span sees it, as routing::dispatch does before anything else
            // does: an upstream's error text may quote the provider's key.
            let result = work
                .await
                .map_err(|e| e.scrubbed(provider.transport.secret()));
            match &result {
                Ok(_) => span.finish(None),
                Err(e) => {
                    span.set_all([
                        (Attr::ErrorType, Value::Static(e.metric_label())),
                        (
                            Attr::HttpResponseStatusCode,
                            Value::Int(i64::from(e.status().as_u16())),
                        ),
                    ]);
                    span.finish(Some(e.message()));
                }
            }
            result
        }
    };
    // Boxed: the traced attempts' futures are larger, and only a traced request should carry
    // them (every request's future holds the space of its largest branch).
    match Box::pin(dispatch(model, ctx.runtime.max_attempts, affinity, traced)).await {
        Ok(served) => Ok((served, recorder)),
        Err(failure) => Err(recorder.failed(failure)),
    }
}

/// A chat request as `route`'s adapter sends it.
fn chat_request(
    route: &Route,
    chat: &ChatRequest,
) -> (Adapter, Result<UpstreamRequest, GatewayError>) {
    let adapter = Adapter::of(route.provider.kind);
    let upstream = adapter.build_chat(chat, route);
    (adapter, upstream)
}

/// What a translating adapter needs to answer as OpenAI would: the client's model name, whether
/// it asked for the usage chunk, one `created` for every chunk.
fn response_context(chat: &ChatRequest) -> ResponseContext {
    ResponseContext {
        client_model: chat.model.clone(),
        include_usage: chat.include_usage,
        created: crate::clock::unix_now(),
        form: chat.form,
        messages: chat.native.clone(),
    }
}

/// One non-stream attempt: send, check the status, read the body, within the provider timeout.
/// The 2xx body comes back as the upstream sent it; translating it is the adapter's job.
async fn send_buffered(
    route: &Route,
    adapter: Adapter,
    req: UpstreamRequest,
    max_response: usize,
) -> Result<Bytes, GatewayError> {
    let attempt = async {
        let body = send_checked(route, adapter, req).await?.body;
        let body = collect(body, max_response).await?;
        // Whole, before any adapter reads it.
        Ok(route.provider.transport.scrub(body))
    };
    timeout(route.provider.timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(timed_out(route)))
}

/// One stream attempt up to the commit point: send, check the status, and read until the first
/// data frame is ready, within the provider timeout.
async fn open_stream(
    route: &Arc<Route>,
    adapter: Adapter,
    req: UpstreamRequest,
    relay: StreamRelay,
    deadline: Instant,
) -> Result<RelayStream, GatewayError> {
    let attempt = async {
        let body = send_checked(route, adapter, req).await?.body;
        let mut stream =
            RelayStream::new(body, relay, route.clone(), route.provider.timeout, deadline);
        stream.prime().await?;
        Ok(stream)
    };
    timeout(route.provider.timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(timed_out(route)))
}

/// Sends, and turns a non-2xx answer into the adapter's error.
async fn send_checked(
    route: &Route,
    adapter: Adapter,
    req: UpstreamRequest,
) -> Result<UpstreamResponse, GatewayError> {
    let provider = &route.provider;
    let response = provider.transport.send(req).await?;
    if response.status.is_success() {
        return Ok(response);
    }
    let body = collect(response.body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    Err(adapter.parse_error(&provider.id, response.status, response.retry_after, &body))
}

fn timed_out(route: &Route) -> GatewayError {
    GatewayError::new(
        ErrorKind::UpstreamTimeout,
        format!(
            "provider {:?} did not answer within {:?}",
            &*route.provider.id, route.provider.timeout
        ),
    )
}
