//! `POST /v1/chat/completions`, non-stream and SSE stream.
//!
//! The client's body goes upstream as it came, with only `model` replaced. A stream is answered
//! only once the first upstream event is in hand (the commit point), so any failure before it is
//! retried on another route and the client never sees it.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::ledger::Draft;
use super::sessions;
use super::{Rejection, RequestCtx, admit, json, rate_headers, read_body, served_by, settle};
use crate::body::Body;
use crate::config::ModelType;
use crate::limits::keys::not_allowed;
use crate::limits::rate::Admission;
use crate::providers::{ResponseContext, Usage};
use crate::request::ChatRequest;
use crate::routing::dispatch::{Failure, Served, dispatch, open_stream, send_buffered};
use crate::routing::relay::{StreamEnd, StreamObserver};
use crate::routing::{ModelEntry, Route};
use crate::sessions::Turn;
use crate::state::App;
use crate::usage::estimate::{Reply, Transcript};

/// Largest non-stream upstream answer accepted.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

pub async fn handle(ctx: &RequestCtx, req: Request<Incoming>) -> Result<Response<Body>, Rejection> {
    let key = ctx.runtime.keys.authenticate(req.headers())?;
    let header_session = sessions::session_header(req.headers())?;
    let body = read_body(req, ctx.runtime.max_body_bytes).await?;
    let mut chat = ChatRequest::parse(body)?;
    let model = ctx.runtime.model(&chat.model, ModelType::Chat)?;
    if key.as_ref().is_some_and(|k| !k.allows(&model.name)) {
        return Err(not_allowed(&model.name).into());
    }
    let turn = match chat.session_id.take().or(header_session) {
        None => None,
        Some(id) => {
            let owner = key.as_ref().map(|k| &*k.name);
            // Boxed (here and below): the session store's futures are large, and a request
            // without a session should not carry (and move) their space.
            let turn = Box::pin(sessions::begin_turn(ctx, &id, owner, model, &chat)).await?;
            chat = ChatRequest::parse(turn.body.clone())?;
            Some(turn)
        }
    };
    // Reserved: the prompt as sent upstream (session history included) plus the completion.
    let admission = admit(ctx, key.as_deref(), model.encoding(), |encoding| {
        let prompt = encoding.count_chat_prompt(&chat.body).unwrap_or(0);
        prompt
            + chat
                .max_tokens
                .unwrap_or(u64::from(ctx.app.limits.default_max_tokens))
    })
    .await?;
    let draft = Draft::new(
        ctx,
        key.as_deref(),
        model,
        chat.stream,
        "chat",
        chat.body.clone(),
    )
    .in_session(turn.as_ref().map(|t| t.id.as_str()));
    let call = Call {
        ctx,
        model,
        chat: &chat,
        draft,
        turn,
        admission: &admission,
    };
    let response = match chat.stream {
        true => stream(call).await,
        false => buffered(call).await,
    };
    match response {
        Ok(mut response) => {
            rate_headers(&mut response, &admission);
            Ok(response)
        }
        Err(rejection) => {
            settle(&ctx.app, &admission, Some(0)); // nothing was generated
            Err(rejection)
        }
    }
}

/// One chat request on its way upstream: what both answer shapes need.
struct Call<'a> {
    ctx: &'a RequestCtx,
    model: &'a ModelEntry,
    chat: &'a ChatRequest,
    draft: Draft,
    turn: Option<Turn>,
    admission: &'a Admission,
}

async fn buffered(call: Call<'_>) -> Result<Response<Body>, Rejection> {
    let ctx = call.ctx;
    let affinity = call.turn.as_ref().map(|t| t.affinity);
    let served = complete(ctx, call.model, call.chat, call.draft, affinity).await?;
    let (body, usage) = &served.value;
    let used = usage.map(|u| u.input_tokens + u.output_tokens);
    settle(&ctx.app, call.admission, used);
    let mut response = json(StatusCode::OK, body.clone());
    if let Some(turn) = call.turn {
        Box::pin(sessions::store_reply(ctx, turn, body, &mut response)).await?;
    }
    served_by(&mut response, &served.route);
    Ok(response)
}

/// A non-stream completion through the router, with its ledger row and metrics: the client's
/// chat requests and the sessions' summary calls.
pub async fn complete(
    ctx: &RequestCtx,
    model: &ModelEntry,
    chat: &ChatRequest,
    draft: Draft,
    affinity: Option<u64>,
) -> Result<Served<(Bytes, Option<Usage>)>, Rejection> {
    let response_ctx = response_context(chat);
    let served = dispatch(
        model,
        ctx.runtime.max_attempts,
        affinity,
        |route: Arc<Route>| {
            let upstream = route.build_chat(chat);
            let response_ctx = &response_ctx;
            async move {
                let body = send_buffered(&route, upstream?, MAX_RESPONSE).await?;
                route.provider.wire.parse_response(body, response_ctx)
            }
        },
    )
    .await
    .map_err(|failure| record_failure(ctx, draft.clone(), failure))?;
    let (body, usage) = served.value;
    let route = &served.route;
    let record = draft.routed(Some(route), served.attempts, None).finish(
        usage,
        Some(Reply::Completion(body.clone())),
        "ok",
        200,
        None,
        ctx.started.elapsed(),
    );
    ctx.app.record_usage(record);
    if let Some(u) = usage {
        route.metrics.tokens(u.input_tokens, u.output_tokens);
    }
    route.metrics.request(200, ctx.started.elapsed());
    Ok(Served {
        value: (body, usage),
        route: served.route,
        attempts: served.attempts,
    })
}

async fn stream(call: Call<'_>) -> Result<Response<Body>, Rejection> {
    let Call {
        ctx,
        model,
        chat,
        draft,
        turn,
        admission,
    } = call;
    let deadline = ctx.deadline;
    let response_ctx = response_context(chat);
    let affinity = turn.as_ref().map(|t| t.affinity);
    let ledger = ctx.app.usage.is_some();
    let served = dispatch(
        model,
        ctx.runtime.max_attempts,
        affinity,
        |route: Arc<Route>| {
            let upstream = route.build_chat(chat);
            let mut relay = route
                .provider
                .wire
                .stream_relay(response_ctx.clone(), route.provider.id.clone());
            if !ledger {
                relay = relay.without_counting();
            }
            async move { open_stream(&route, upstream?, relay, deadline).await }
        },
    )
    .await
    .map_err(|failure| record_failure(ctx, draft.clone(), failure))?;
    let route = served.route;
    let mut relay = served.value;
    let ttft = ctx.started.elapsed();
    route.metrics.ttft(ttft);
    relay.observe(Box::new(StreamEnded {
        route: route.clone(),
        started: ctx.started,
        app: ctx.app.clone(),
        draft: Some(draft.routed(Some(&route), served.attempts, Some(ttft))),
        admission: admission.clone(),
    }));
    let session_id = turn.as_ref().map(|t| t.id.clone());
    if let Some(turn) = turn {
        relay.finish_with(sessions::stream_finisher(ctx, turn));
    }
    let mut response = Response::new(relay.boxed_unsync());
    if let Some(id) = session_id {
        sessions::session_header_out(&mut response, &id);
    }
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

/// Records a stream's metrics and ledger row when it ends, however it ends.
struct StreamEnded {
    route: Arc<Route>,
    started: Instant,
    app: Arc<App>,
    draft: Option<Draft>,
    /// Settled to the upstream's usage (an estimate is only known later: the reservation stands).
    admission: Admission,
}

/// A request no route served still gets its row: status `error`, the status the client got.
pub fn record_failure(ctx: &RequestCtx, draft: Draft, failure: Failure) -> Rejection {
    let status = failure.error.status().as_u16();
    let record = draft
        .routed(failure.route.as_deref(), failure.attempts, None)
        .finish(
            None,
            None,
            "error",
            status,
            Some(&failure.error),
            ctx.started.elapsed(),
        );
    ctx.app.record_usage(record);
    failure.into()
}

// === impl StreamEnded ===

impl StreamObserver for StreamEnded {
    fn finished(mut self: Box<Self>, end: StreamEnd, usage: Option<Usage>, seen: Transcript) {
        settle(
            &self.app,
            &self.admission,
            usage.map(|u| u.input_tokens + u.output_tokens),
        );
        // Committed streams answered 200; a client that left is recorded as 499 (nginx's
        // "client closed request").
        let (status, http_status) = match &end {
            StreamEnd::Completed => ("ok", 200),
            StreamEnd::Failed(_) => ("error", 200),
            StreamEnd::Cancelled => ("cancelled", 499),
        };
        if let Some(draft) = self.draft.take() {
            let error = match &end {
                StreamEnd::Failed(e) => Some(e),
                _ => None,
            };
            self.app.record_usage(draft.finish(
                usage,
                Some(Reply::Chunks(seen)),
                status,
                http_status,
                error,
                self.started.elapsed(),
            ));
        }
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
