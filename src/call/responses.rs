//! `POST /v1/responses` through the chat pipeline (PROTOCOLS.md §10.6): admit, expand the
//! chain, dispatch as chat (same routing, commit point, limits, ledger row and metrics as a
//! chat request), then answer as a response: a whole object, or the chat stream translated
//! event by event as it arrives ([`ResponsesStream`]). The response is stored before the client
//! sees it end.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::admit;
use super::cached::{self, Plan};
use super::chain::Chain;
use super::chat_events::{ChatEvent, ChatEvents};
use super::context::{Rejection, RequestCtx};
use super::dispatch;
use super::outcome::Recorder;
use super::pipeline::{Answer, Answered};
use crate::cache::{Directives, Endpoint, Verdict};
use crate::config::ModelType;
use crate::error::GatewayError;
use crate::limits::keys::ApiKey;
use crate::request::ChatRequest;
use crate::responses::request::ResponsesRequest;
use crate::responses::response::{self, Head, Output};
use crate::responses::stream::EventStream;
use crate::usage::record::Purpose;

/// A Responses request.
/// `body` is the client's, for the result cache's key (with `cache`, its headers' controls): a
/// response that continues another (`previous_response_id`) is never cached. The cache holds
/// the chat answer a response is made from, so a hit is a new response (new ids), stored like
/// any other.
pub async fn responses(
    ctx: &RequestCtx,
    key: Option<Arc<ApiKey>>,
    req: ResponsesRequest,
    body: &[u8],
    cache: Option<Directives>,
) -> Result<Answered, Rejection> {
    let key = key.as_deref();
    let model = admit::model(ctx, key, &req.model, ModelType::Chat)?;
    let owner = key.map(|k| &*k.name);
    let encoding = model.encoding();
    let expanded = Box::pin(Chain::expand(
        &ctx.app,
        &req,
        owner,
        encoding,
        ctx.trace.clone(),
    ))
    .await?;
    let chained = req.previous_response_id.is_some();
    let mut plan = Plan::new(ctx, key, model, Endpoint::Responses, body, cache, chained);
    let head = Head::new(req.model.clone(), req.echo.clone());
    if let Some(hit) = plan.lookup(ctx, model).await
        && let Some(chat) = hit.body(req.stream, true)
    {
        let request = Bytes::copy_from_slice(body);
        let admission = cached::admit(
            ctx,
            key,
            model,
            Purpose::Responses,
            req.stream,
            request,
            &hit,
        )
        .await?;
        let cache = Some(Verdict::Hit { age: hit.age });
        if req.stream {
            let events = ResponsesStream::new(crate::body::full(chat), head, expanded.chain);
            return Ok(Answered::Stream(Answer {
                body: crate::body::boxed(events),
                route: None,
                admission,
                session: None,
                cache,
            }));
        }
        let object = head.finished(&response::from_completion(&chat)?);
        Box::pin(expanded.chain.store(&object)).await?;
        return Ok(Answered::Whole(Answer {
            body: Bytes::from(object.to_string()),
            route: None,
            admission,
            session: None,
            cache,
        }));
    }
    let chat = ChatRequest::parse(Bytes::from(req.chat_body(expanded.messages)))?;
    let admission = admit::generation_limits(ctx, key, model, encoding, &chat).await?;
    let recorder = Recorder::new(
        ctx,
        key,
        model,
        Purpose::Responses,
        chat.stream,
        chat.body.clone(),
        admission.clone(),
    );
    let chain = expanded.chain;
    let cache = plan.verdict();
    if req.stream {
        let mut served = dispatch::stream(ctx, model, &chat, recorder, None).await?;
        if let Some(store) = plan.stream_store(ctx) {
            served.value.finish_with(store);
        }
        let events = ResponsesStream::new(crate::body::boxed(served.value), head, chain);
        return Ok(Answered::Stream(Answer {
            body: crate::body::boxed(events),
            route: Some(served.route),
            admission,
            session: None,
            cache,
        }));
    }
    let served = dispatch::complete(ctx, model, &chat, recorder, None).await?;
    let (completion, usage) = served.value;
    let output = response::from_completion(&completion)?;
    let object = head.finished(&output);
    Box::pin(chain.store(&object)).await?;
    plan.store(ctx, &completion, usage);
    Ok(Answered::Whole(Answer {
        body: Bytes::from(object.to_string()),
        route: Some(served.route),
        admission,
        session: None,
        cache,
    }))
}

/// The chat relay's stream, translated to Responses events as each chunk arrives. The final
/// `response.completed` waits for the response to be stored.
pub struct ResponsesStream {
    chat: ChatEvents,
    events: EventStream,
    /// Events ready to send.
    out: Vec<u8>,
    phase: Phase,
    chain: Option<Chain>,
}

enum Phase {
    Start,
    Streaming,
    /// The upstream finished; the response is being stored.
    Storing(Storing, Output),
    Ended,
}

type Storing = Pin<Box<dyn Future<Output = Result<(), GatewayError>> + Send>>;

// === impl ResponsesStream ===

impl ResponsesStream {
    fn new(chat: crate::body::Body, head: Head, chain: Chain) -> Self {
        Self {
            chat: ChatEvents::new(chat),
            events: EventStream::new(head),
            out: Vec::with_capacity(1024),
            phase: Phase::Start,
            chain: Some(chain),
        }
    }

    fn upstream_done(&mut self) {
        let output = self.events.finish(&mut self.out);
        let object = self.events.head().finished(&output);
        match self.chain.take() {
            Some(chain) => {
                let storing: Storing = Box::pin(async move { chain.store(&object).await });
                self.phase = Phase::Storing(storing, output);
            }
            None => {
                self.events.completed(&output, &mut self.out);
                self.phase = Phase::Ended;
            }
        }
    }

    fn fail(&mut self, error: GatewayError) {
        self.events.failed(&error, &mut self.out);
        self.phase = Phase::Ended;
    }
}

impl HttpBody for ResponsesStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        loop {
            if !this.out.is_empty() {
                let bytes = Bytes::from(std::mem::take(&mut this.out));
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            match &mut this.phase {
                Phase::Ended => return Poll::Ready(None),
                Phase::Start => {
                    this.events.start(&mut this.out);
                    this.phase = Phase::Streaming;
                }
                Phase::Storing(storing, output) => {
                    let stored = ready!(storing.as_mut().poll(cx));
                    let output = output.clone();
                    match stored {
                        Ok(()) => {
                            this.events.completed(&output, &mut this.out);
                            this.phase = Phase::Ended;
                        }
                        Err(e) => this.fail(e),
                    }
                }
                Phase::Streaming => match ready!(this.chat.poll_next(cx)) {
                    ChatEvent::Chunk(data) => this.events.on_chunk(&data, &mut this.out),
                    ChatEvent::Done => this.upstream_done(),
                    ChatEvent::Failed(e) => this.fail(e),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.phase, Phase::Ended) && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
