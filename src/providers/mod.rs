//! Adapters, one per provider kind: pure translation between our canonical request and answer
//! and each upstream's wire format, plus where its endpoints are. No I/O: `routing::transport`
//! sends, `call` composes. The one `match` over configured kinds is [`Adapter::of`]; every
//! other method is enum dispatch over the adapters.

pub mod anthropic;
pub mod completion;
pub mod dashscope;
pub mod messages;
pub mod mock;
mod mock_media;
pub mod openai;
pub mod rerank;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use crate::anthropic::stream::EventStream;
use crate::config::{ProviderConfig, ProviderKind};
use crate::error::GatewayError;
use crate::request::{ChatRequest, EmbeddingsRequest, Form, PassRequest, RerankRequest};
use crate::routing::Route;
use crate::routing::transport::{Endpoint, Reach, UpstreamRequest};
use crate::usage::estimate::Transcript;
use crate::usage::record::Unit;
pub use types::{Priced, Relayed, ResponseContext, Usage};

/// What a provider kind speaks and where it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// OpenAI's wire format over HTTP (OpenAI and every compatible server).
    OpenAi,
    /// DashScope's native API over HTTP.
    DashScope,
    /// Anthropic's Messages API over HTTP (and DashScope's Anthropic-compatible endpoint).
    Anthropic,
    /// OpenAI's wire format, answered in process (offline demos and tests).
    Mock,
}

/// Per-stream translation state, one variant per wire format.
pub enum StreamRelay {
    OpenAi(openai::StreamRelay),
    DashScope(Box<dashscope::stream::StreamRelay>),
    /// DashScope answering a legacy completion: its chat chunks become `text_completion` ones.
    DashScopeText(Box<dashscope::stream::StreamRelay>),
    /// Messages events, as chat chunks or passed through to a Messages client.
    Anthropic(Box<anthropic::stream::StreamRelay>),
    /// Messages events answering a legacy completion.
    AnthropicText(Box<anthropic::stream::StreamRelay>),
    /// Any chat-speaking relay's chunks as Anthropic events, for a Messages client.
    Messages(Box<StreamRelay>, Box<messages::ChatToMessages>),
}

// === impl Adapter ===

impl Adapter {
    /// The adapter of a configured provider kind: the one `match` over kinds.
    pub fn of(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::Openai => Adapter::OpenAi,
            ProviderKind::Dashscope => Adapter::DashScope,
            ProviderKind::Anthropic => Adapter::Anthropic,
            ProviderKind::Mock => Adapter::Mock,
        }
    }

    /// How the provider is reached: its endpoints, stream headers and probe URL, or in process.
    pub fn reach(self, config: &ProviderConfig) -> Result<Reach, String> {
        let base_url = || {
            config
                .base_url
                .clone()
                .ok_or_else(|| format!("provider {:?}: base_url is required", config.id))
        };
        Ok(match self {
            Adapter::OpenAi => Reach::Http(openai::http_spec(base_url()?)),
            Adapter::DashScope => Reach::Http(dashscope::http_spec(base_url()?)),
            Adapter::Anthropic => Reach::Http(anthropic::http_spec(base_url()?)),
            Adapter::Mock => Reach::Local(Arc::new(mock::MockUpstream::new(
                &config.mock.clone().unwrap_or_default(),
            ))),
        })
    }

    /// Whether the provider is the vendor's own API rather than a compatible one (only
    /// Anthropic's is told apart: see `anthropic::passthrough`).
    pub fn first_party(self, config: &ProviderConfig) -> bool {
        self == Adapter::Anthropic
            && config
                .base_url
                .as_deref()
                .is_some_and(anthropic::is_first_party)
    }

    /// A chat request (or a legacy completion, or a Messages client's request) as `route`
    /// takes it.
    pub fn build_chat(
        self,
        req: &ChatRequest,
        route: &Route,
    ) -> Result<UpstreamRequest, GatewayError> {
        let endpoint = match req.form {
            Form::Chat => Endpoint::Chat,
            Form::Completion => Endpoint::Completions,
        };
        let model = &*route.upstream_model;
        let body = match (self, req.form) {
            (Adapter::OpenAi | Adapter::Mock, _) => {
                let body = openai::splice(&req.body, &req.model_span, &route.upstream_model_json);
                match req.stream && !req.include_usage {
                    true => openai::ask_for_usage(body, req.has_stream_options),
                    false => body,
                }
            }
            (Adapter::DashScope, Form::Chat) => {
                dashscope::build_chat(&req.body, model, req.stream)?
            }
            (Adapter::DashScope, Form::Completion) => {
                dashscope::build_completion(&req.body, model, req.stream)?
            }
            (Adapter::Anthropic, _) => {
                if let Some(native) = &req.native {
                    let body = anthropic::passthrough(
                        native,
                        &route.upstream_model_json,
                        route.provider.first_party,
                    )?;
                    let mut upstream = UpstreamRequest::new(endpoint, body, req.stream);
                    upstream
                        .headers
                        .extend(native.beta.clone().map(|v| (ANTHROPIC_BETA, v)));
                    return Ok(upstream);
                }
                let target = anthropic::request::Target {
                    model,
                    max_output_tokens: route.max_output_tokens,
                    stream: req.stream,
                };
                Bytes::from(match req.form {
                    Form::Chat => anthropic::request::from_chat(&req.body, &target)?,
                    Form::Completion => anthropic::request::from_completion(&req.body, &target)?,
                })
            }
        };
        Ok(UpstreamRequest::new(endpoint, body, req.stream))
    }

    /// One request per upstream call: DashScope takes at most 10 (or 25) texts a call.
    pub fn build_embeddings(
        self,
        req: &EmbeddingsRequest,
        upstream_model: &str,
        upstream_model_json: &[u8],
    ) -> Result<Vec<UpstreamRequest>, GatewayError> {
        let bodies = match self {
            Adapter::OpenAi | Adapter::Mock => vec![openai::splice(
                &req.body,
                &req.model_span,
                upstream_model_json,
            )],
            Adapter::DashScope => {
                dashscope::build_embeddings(&req.body, &req.input, upstream_model, req.dimensions)?
            }
            Adapter::Anthropic => {
                return Err(GatewayError::invalid_request(
                    "this model's route (Anthropic Messages API) serves no embeddings",
                )
                .with_param("model"));
            }
        };
        Ok(bodies
            .into_iter()
            .map(|body| UpstreamRequest::new(Endpoint::Embeddings, body, false))
            .collect())
    }

    /// A request passed on as it came (moderations, image generations) as `route` takes it: its
    /// model replaced, or written in when the client named none. Only OpenAI-kind routes serve
    /// these (the config refuses others).
    pub fn build_pass(
        self,
        endpoint: Endpoint,
        req: &PassRequest,
        route: &Route,
    ) -> Result<UpstreamRequest, GatewayError> {
        let model = &route.upstream_model_json;
        let body = match (self, &req.model) {
            (Adapter::OpenAi | Adapter::Mock, Some((_, span))) => {
                openai::splice(&req.body, span, model)
            }
            (Adapter::OpenAi | Adapter::Mock, None) => openai::insert_model(&req.body, model),
            _ => {
                return Err(GatewayError::invalid_request(
                    "this model's route cannot serve this endpoint",
                )
                .with_param("model"));
            }
        };
        Ok(UpstreamRequest::new(endpoint, body, false))
    }

    /// A passed-on answer as the client gets it (as it came; a 200 that is not a JSON object
    /// is the upstream's failure, retried elsewhere), with the tokens and units it reports.
    pub fn parse_pass(self, endpoint: Endpoint, body: Bytes) -> Result<Priced, GatewayError> {
        let (body, _) = openai::parse_response(body)?;
        let (usage, units) = openai::pass_units(endpoint, &body);
        Ok(Priced { body, usage, units })
    }

    /// A rerank request as `route` takes it.
    pub fn build_rerank(
        self,
        req: &RerankRequest,
        route: &Route,
    ) -> Result<UpstreamRequest, GatewayError> {
        let body = match self {
            Adapter::OpenAi | Adapter::Mock => {
                openai::splice(&req.body, &req.model_span, &route.upstream_model_json)
            }
            Adapter::DashScope => rerank::to_dashscope(req, &route.upstream_model)?,
            Adapter::Anthropic => {
                return Err(GatewayError::invalid_request(
                    "this model's route (Anthropic Messages API) serves no rerank",
                )
                .with_param("model"));
            }
        };
        Ok(UpstreamRequest::new(Endpoint::Rerank, body, false))
    }

    /// A rerank answer in the Cohere/Jina shape, with its tokens and its searches: what the
    /// upstream billed (Cohere's `search_units`), else counted as Cohere counts them.
    pub fn parse_rerank(self, body: Bytes, req: &RerankRequest) -> Result<Priced, GatewayError> {
        let answer = match self {
            Adapter::DashScope => rerank::from_dashscope(&body, &req.model)?,
            _ => rerank::from_openai_kind(body)?,
        };
        let searches = answer.searches.unwrap_or_else(|| req.searches());
        Ok(Priced {
            body: answer.body,
            usage: answer.usage,
            units: Some((Unit::Searches, searches)),
        })
    }

    /// A successful non-stream chat body as the client will see it, and the usage it reports.
    pub fn parse_response(
        self,
        body: Bytes,
        ctx: &ResponseContext,
    ) -> Result<(Bytes, Option<Usage>), GatewayError> {
        match (self, ctx.form) {
            (Adapter::OpenAi | Adapter::Mock, _) => openai::parse_response(body),
            (Adapter::DashScope, Form::Chat) => dashscope::parse_chat_response(&body, ctx),
            (Adapter::DashScope, Form::Completion) => {
                let (chat, usage) = dashscope::parse_chat_response(&body, ctx)?;
                Ok((completion::from_chat(&chat)?, usage))
            }
            (Adapter::Anthropic, _) if let Some(native) = &ctx.messages => {
                Ok(anthropic::response::native(body, native.model_json()))
            }
            (Adapter::Anthropic, Form::Chat) => {
                let (chat, usage) = anthropic::response::to_chat(&body, ctx)?;
                Ok((chat, Some(usage)))
            }
            (Adapter::Anthropic, Form::Completion) => {
                let (chat, usage) = anthropic::response::to_chat(&body, ctx)?;
                Ok((completion::from_chat(&chat)?, Some(usage)))
            }
        }
    }

    /// The answers to `build_embeddings`' requests, in order, as one OpenAI list.
    pub fn parse_embeddings(
        self,
        bodies: Vec<Bytes>,
        upstream_model: &str,
        req: &EmbeddingsRequest,
    ) -> Result<(Bytes, Option<Usage>), GatewayError> {
        match self {
            Adapter::OpenAi | Adapter::Mock => match bodies.into_iter().next() {
                Some(body) => openai::parse_response(body),
                None => Err(GatewayError::new(
                    crate::error::ErrorKind::Internal,
                    "no embeddings response",
                )),
            },
            Adapter::Anthropic => Err(GatewayError::new(
                crate::error::ErrorKind::Internal,
                "no embeddings from an Anthropic route",
            )),
            Adapter::DashScope => dashscope::parse_embeddings(
                &bodies,
                dashscope::embedding_batch(upstream_model),
                &req.model,
                req.base64,
            ),
        }
    }

    /// A non-2xx upstream answer as the error the client (or the retry loop) sees.
    pub fn parse_error(
        self,
        provider: &str,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> GatewayError {
        let parse = match self {
            // Anthropic's envelope (`{"type":"error","error":{"type","message"}}`) reads as
            // OpenAI's, and its statuses mean the same: 429, 5xx and 529 (overloaded) are
            // retried; other 4xx are the request's and keep the upstream's type and words.
            Adapter::OpenAi | Adapter::Mock | Adapter::Anthropic => openai::parse_error,
            Adapter::DashScope => dashscope::parse_error,
        };
        parse(provider, status, retry_after, body)
    }

    pub fn stream_relay(self, ctx: ResponseContext, provider: Arc<str>) -> StreamRelay {
        // A Messages client's answer from a chat-speaking route: its events, its model's name.
        let messages = ctx
            .messages
            .clone()
            .map(|native| (native, ctx.client_model.clone()));
        let relay = match self {
            Adapter::OpenAi | Adapter::Mock => {
                StreamRelay::OpenAi(openai::StreamRelay::new(ctx.include_usage))
            }
            Adapter::DashScope => {
                let form = ctx.form;
                let relay = Box::new(dashscope::stream::StreamRelay::new(ctx, provider));
                match form {
                    Form::Chat => StreamRelay::DashScope(relay),
                    Form::Completion => StreamRelay::DashScopeText(relay),
                }
            }
            // A Messages client's stream passes through as it came.
            Adapter::Anthropic => {
                let form = ctx.form;
                let relay = Box::new(anthropic::stream::StreamRelay::new(ctx));
                return match form {
                    Form::Completion if !relay.native() => StreamRelay::AnthropicText(relay),
                    _ => StreamRelay::Anthropic(relay),
                };
            }
        };
        match messages {
            None => relay,
            Some((native, model)) => {
                let events = EventStream::new(native.message_id.clone(), model, native.thinking);
                StreamRelay::Messages(
                    Box::new(relay),
                    Box::new(messages::ChatToMessages::new(events)),
                )
            }
        }
    }
}

// === impl StreamRelay ===

impl StreamRelay {
    pub fn on_frame(&mut self, frame: Bytes) -> Result<Relayed, GatewayError> {
        match self {
            StreamRelay::OpenAi(relay) => relay.on_frame(frame),
            StreamRelay::DashScope(relay) => relay.on_frame(frame),
            StreamRelay::DashScopeText(relay) => Ok(text_chunks(relay.on_frame(frame)?)),
            StreamRelay::Anthropic(relay) => relay.on_frame(frame),
            StreamRelay::AnthropicText(relay) => Ok(text_chunks(relay.on_frame(frame)?)),
            StreamRelay::Messages(chat, events) => {
                let relayed = chat.on_frame(frame)?;
                Ok(events.on_chat(relayed, || chat.usage()))
            }
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            StreamRelay::OpenAi(relay) => relay.usage,
            StreamRelay::DashScope(relay) | StreamRelay::DashScopeText(relay) => relay.usage(),
            StreamRelay::Anthropic(relay) | StreamRelay::AnthropicText(relay) => relay.usage(),
            StreamRelay::Messages(chat, _) => chat.usage(),
        }
    }

    /// Nothing will count this stream's frames (no ledger): do not keep them.
    pub fn without_counting(mut self) -> Self {
        self.stop_counting();
        self
    }

    fn stop_counting(&mut self) {
        match self {
            StreamRelay::OpenAi(relay) => relay.keep_seen = false,
            StreamRelay::Messages(chat, _) => chat.stop_counting(),
            _ => {}
        }
    }

    /// The frames an OpenAI-kind stream relayed, to count if it ends without usage. DashScope
    /// reports usage in every event and Anthropic in its first and last, so there is never
    /// anything to count.
    pub fn take_seen(&mut self) -> Transcript {
        match self {
            StreamRelay::OpenAi(relay) => std::mem::take(&mut relay.seen),
            StreamRelay::Messages(chat, _) => chat.take_seen(),
            _ => Transcript::default(),
        }
    }

    /// A committed stream's error, in the stream's own format: Anthropic's `event: error` for
    /// a Messages client's pass-through, else OpenAI's `data: {"error":…}`.
    pub fn error_frame(&self, e: &GatewayError) -> Bytes {
        match self {
            StreamRelay::Anthropic(relay) if relay.native() => e.to_anthropic_event(),
            StreamRelay::Messages(..) => e.to_anthropic_event(),
            _ => e.to_sse_event(),
        }
    }

    /// The stream's last frame when the upstream closed right after it, without its blank
    /// line: `done` as `on_frame` made it, properly ended.
    pub fn last_frame(&self, done: Bytes) -> Bytes {
        match self {
            StreamRelay::OpenAi(_) => Bytes::from_static(crate::sse::DONE_FRAME),
            StreamRelay::Anthropic(relay) if relay.native() => {
                let mut frame = done.trim_ascii_end().to_vec();
                frame.extend_from_slice(b"\n\n");
                Bytes::from(frame)
            }
            _ => done,
        }
    }

    /// DashScope events are one `data:` line each, and some upstreams omit the blank line
    /// between them (PROTOCOLS.md §5.5): a `data:` line ends the event.
    pub fn data_line_ends_event(&self) -> bool {
        match self {
            StreamRelay::DashScope(_) | StreamRelay::DashScopeText(_) => true,
            StreamRelay::Messages(chat, _) => chat.data_line_ends_event(),
            _ => false,
        }
    }
}

/// Translated chat chunks as `text_completion` chunks.
fn text_chunks(relayed: Relayed) -> Relayed {
    match relayed {
        Relayed::Forward(chat) => Relayed::Forward(completion::chunks_from_chat(&chat)),
        Relayed::Done(chat) => Relayed::Done(completion::chunks_from_chat(&chat)),
    }
}

pub(crate) const ANTHROPIC_BETA: http::HeaderName = http::HeaderName::from_static("anthropic-beta");
