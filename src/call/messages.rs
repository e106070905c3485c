//! `POST /v1/messages` through the chat pipeline (PROTOCOLS.md §12.7): admitted, routed,
//! committed, limited, recorded (`purpose = 'messages'`) and measured as a chat request is, then
//! answered as Anthropic's: a whole `message`, or the chat stream translated event by event as
//! it arrives ([`MessagesStream`]), with a `ping` through upstream silences. A `kind: anthropic`
//! route gets the client's own body and its answer comes back as it is (the model renamed).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde_json::Value;
use tokio::time::Sleep;

use super::admit;
use super::context::{Rejection, RequestCtx};
use super::dispatch;
use super::outcome::Recorder;
use super::pipeline::{Answer, Answered};
use super::relay::RelayStream;
use crate::anthropic::message_id;
use crate::anthropic::request::{MessagesRequest, Purpose as Counting};
use crate::anthropic::response;
use crate::anthropic::stream::ping;
use crate::config::ModelType;
use crate::limits::keys::ApiKey;
use crate::providers::Adapter;
use crate::request::ChatRequest;
use crate::routing::Route;
use crate::usage::record::Purpose;

/// A `ping` after this long without an event (PROTOCOLS.md §12.7.3 rule 9).
const PING_AFTER: Duration = Duration::from_secs(15);
/// Silence is measured in ticks of this: a frame only clears a counter (resetting a timer on
/// every frame cost more than the rest of passing it on), and a `ping` goes out after
/// [`PING_AFTER`] to [`PING_AFTER`] + one tick without a frame.
const PING_TICK: Duration = Duration::from_secs(5);
const QUIET_TICKS: u32 = (PING_AFTER.as_secs() / PING_TICK.as_secs()) as u32;

/// A Messages request.
pub async fn messages(
    ctx: &RequestCtx,
    key: Option<Arc<ApiKey>>,
    body: Bytes,
    beta: Option<HeaderValue>,
) -> Result<Answered, Rejection> {
    let key = key.as_deref();
    let req = MessagesRequest::parse(&body, Counting::Create)?;
    let model = admit::model(ctx, key, &req.model, ModelType::Chat)?;
    let encoding = model.encoding();
    // Translated only if some route needs a chat request (then its answer needs an id).
    let translated = !model.routes().all(|r| passes_through(r));
    let id = match translated {
        true => message_id(ctx.request_id.to_str().unwrap_or_default()),
        false => String::new(),
    };
    let native = req.native(body.clone(), beta, id.clone());
    let (name, stream, thinking) = (req.model.clone(), req.stream, req.thinking);
    let chat = if translated {
        let mut chat = req.into_chat()?;
        chat.native = Some(Arc::new(native));
        chat
    } else {
        ChatRequest::native(native, req.model, req.stream, req.max_tokens)
    };
    let admission = admit::generation_limits(ctx, key, model, encoding, &chat).await?;
    let recorder = Recorder::new(
        ctx,
        key,
        model,
        Purpose::Messages,
        chat.stream,
        chat.body.clone(),
        admission.clone(),
    );
    if stream {
        // Anthropic's events already, whichever route served (see `providers::messages`).
        let served = dispatch::stream(ctx, model, &chat, recorder, None).await?;
        return Ok(Answered::Stream(Answer {
            body: crate::body::boxed(Pinged::new(served.value)),
            route: Some(served.route),
            admission,
            session: None,
            cache: None,
        }));
    }
    let served = dispatch::complete(ctx, model, &chat, recorder, None).await?;
    let (body, usage) = &served.value;
    let message = match passes_through(&served.route) {
        true => body.clone(),
        false => Bytes::from(response::from_completion(
            body, id, &name, thinking, *usage,
        )?),
    };
    Ok(Answered::Whole(Answer {
        body: message,
        route: Some(served.route),
        admission,
        session: None,
        cache: None,
    }))
}

/// Whether the route got the client's own body, and so answered in Messages already.
fn passes_through(route: &Route) -> bool {
    Adapter::of(route.provider.kind) == Adapter::Anthropic
}

/// `POST /v1/messages/count_tokens`: the request as the chat route would get it, counted with
/// the model's tokenizer. Never calls an upstream and reserves nothing.
pub async fn count_tokens(
    ctx: &RequestCtx,
    key: Option<Arc<ApiKey>>,
    body: &[u8],
) -> Result<Value, Rejection> {
    let req = MessagesRequest::parse(body, Counting::CountTokens)?;
    let model = admit::model(ctx, key.as_deref(), &req.model, ModelType::Chat)?;
    let encoding = model.encoding();
    let chat = req.chat_body()?;
    encoding.ready().await;
    let tokens = encoding.count_chat_prompt(&chat).unwrap_or(0);
    Ok(serde_json::json!({"input_tokens": tokens}))
}

/// A Messages stream with a `ping` through every upstream silence longer than [`PING_AFTER`]
/// (Claude Code gives up after five minutes without a byte).
pub struct Pinged {
    events: RelayStream,
    /// The next tick.
    tick: Pin<Box<Sleep>>,
    /// Ticks since the last frame went out.
    quiet: u32,
}

// === impl Pinged ===

impl Pinged {
    fn new(events: RelayStream) -> Self {
        Self {
            events,
            tick: Box::pin(tokio::time::sleep(PING_TICK)),
            quiet: 0,
        }
    }
}

impl HttpBody for Pinged {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.events).poll_frame(cx) {
            this.quiet = 0;
            return Poll::Ready(frame);
        }
        loop {
            ready!(this.tick.as_mut().poll(cx));
            let next = this.tick.deadline() + PING_TICK;
            this.tick.as_mut().reset(next);
            this.quiet += 1;
            if this.quiet >= QUIET_TICKS {
                this.quiet = 0;
                let mut bytes = Vec::with_capacity(48);
                ping(&mut bytes);
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(bytes)))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.events.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;
    use tokio::time::Instant;

    use super::*;
    use crate::anthropic::stream::EventStream;
    use crate::call::test_support::{chunks_every, route};
    use crate::providers::messages::ChatToMessages;
    use crate::providers::{StreamRelay, openai};

    /// Claude Code gives up on a stream after five minutes without a byte: through an upstream
    /// silence the client gets a `ping` after 15 to 20 s, and none while events flow.
    #[tokio::test(start_paused = true)]
    async fn a_silent_upstream_is_bridged_with_pings() {
        let t0 = Instant::now();
        // A chunk at once, the next 41 s later, `[DONE]` 41 s after that.
        let upstream = chunks_every(Duration::from_secs(41), Some(2));
        let events = EventStream::new("msg_1".into(), "m".into(), false);
        let translate = StreamRelay::Messages(
            Box::new(StreamRelay::OpenAi(openai::StreamRelay::new(true))),
            Box::new(ChatToMessages::new(events)),
        );
        let idle = Duration::from_secs(120);
        let mut relay = RelayStream::new(upstream, translate, route(), idle, t0 + idle * 10);
        relay.prime().await.expect("primed");
        let mut stream = Pinged::new(relay);
        let mut pings = Vec::new();
        let mut texts = Vec::new();
        while let Some(frame) = stream.frame().await {
            let data = frame.expect("frame").into_data().expect("data");
            let at = t0.elapsed().as_secs();
            let text = String::from_utf8_lossy(&data);
            pings.extend(text.matches("event: ping\n").map(|_| at));
            texts.extend(text.matches("\"text_delta\"").map(|_| at));
            if text.contains("event: message_stop") {
                assert_eq!(at, 82);
            }
        }
        assert_eq!(texts, [0, 41], "the two chunks, as they came");
        assert_eq!(
            pings,
            [0, 15, 30, 55, 70],
            "the first with message_start, then silences"
        );
    }
}
