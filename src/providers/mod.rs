//! Provider kinds: wire formats (pure translation, no I/O) and the running `Provider`.
//!
//! An adapter turns our canonical request into upstream bytes and upstream bytes back into what
//! an OpenAI client expects; only `routing::transport` sends anything. The one `match` over wire
//! formats lives in [`Wire`].

pub mod dashscope;
pub mod mock;
pub mod openai;

use crate::usage::estimate::Transcript;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::StatusCode;

use crate::error::GatewayError;
use crate::request::{ChatRequest, EmbeddingsRequest};
use crate::routing::transport::Transport;

/// Token counts as the upstream reported them (or as we estimated them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Which endpoint of the upstream a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Embeddings,
}

/// What the dispatcher sends: the endpoint and the finished body.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub endpoint: Endpoint,
    pub body: Bytes,
    pub stream: bool,
}

/// The wire format a provider speaks upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    DashScope,
}

pub use dashscope::ResponseContext;

pub struct Provider {
    pub id: Arc<str>,
    pub wire: Wire,
    pub transport: Transport,
    pub timeout: Duration,
    pub probe: Option<ProbeSpec>,
    limiter: Option<DefaultDirectRateLimiter>,
    up: AtomicBool,
    probe_failures: AtomicU32,
    /// Milliseconds since `epoch` of the last request this provider answered (any answer).
    last_answer_ms: AtomicU64,
    epoch: Instant,
}
/// How and how often the provider is probed (never spending tokens).
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

// === impl Wire ===

impl Wire {
    pub fn build_chat(
        self,
        req: &ChatRequest,
        upstream_model: &str,
        upstream_model_json: &[u8],
    ) -> Result<UpstreamRequest, GatewayError> {
        let body = match self {
            Wire::OpenAi => {
                let body = openai::splice(&req.body, &req.model_span, upstream_model_json);
                match req.stream && !req.include_usage {
                    true => openai::ask_for_usage(body, req.has_stream_options),
                    false => body,
                }
            }
            Wire::DashScope => dashscope::build_chat(&req.body, upstream_model, req.stream)?,
        };
        Ok(UpstreamRequest {
            endpoint: Endpoint::Chat,
            body,
            stream: req.stream,
        })
    }

    /// One request per upstream call: DashScope takes at most 10 (or 25) texts a call.
    pub fn build_embeddings(
        self,
        req: &EmbeddingsRequest,
        upstream_model: &str,
        upstream_model_json: &[u8],
    ) -> Result<Vec<UpstreamRequest>, GatewayError> {
        let bodies = match self {
            Wire::OpenAi => vec![openai::splice(
                &req.body,
                &req.model_span,
                upstream_model_json,
            )],
            Wire::DashScope => {
                dashscope::build_embeddings(&req.input, upstream_model, req.dimensions)?
            }
        };
        Ok(bodies
            .into_iter()
            .map(|body| UpstreamRequest {
                endpoint: Endpoint::Embeddings,
                body,
                stream: false,
            })
            .collect())
    }

    /// A successful non-stream chat body as the client will see it, and the usage it reports.
    pub fn parse_response(
        self,
        body: Bytes,
        ctx: &ResponseContext,
    ) -> Result<(Bytes, Option<Usage>), GatewayError> {
        match self {
            Wire::OpenAi => openai::parse_response(body),
            Wire::DashScope => dashscope::parse_chat_response(&body, ctx),
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
            Wire::OpenAi => match bodies.into_iter().next() {
                Some(body) => openai::parse_response(body),
                None => Err(GatewayError::new(
                    crate::error::ErrorKind::Internal,
                    "no embeddings response",
                )),
            },
            Wire::DashScope => dashscope::parse_embeddings(
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
        provider: &Provider,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> GatewayError {
        let parse = match self {
            Wire::OpenAi => openai::parse_error,
            Wire::DashScope => dashscope::parse_error,
        };
        parse(
            &provider.id,
            provider.transport.secret(),
            status,
            retry_after,
            body,
        )
    }

    pub fn stream_relay(self, ctx: ResponseContext, provider: Arc<str>) -> StreamRelay {
        match self {
            Wire::OpenAi => StreamRelay::OpenAi(openai::StreamRelay::new(ctx.include_usage)),
            Wire::DashScope => {
                StreamRelay::DashScope(Box::new(dashscope::stream::StreamRelay::new(ctx, provider)))
            }
        }
    }
}

/// Per-stream translation state, one variant per wire format.
pub enum StreamRelay {
    OpenAi(openai::StreamRelay),
    DashScope(Box<dashscope::stream::StreamRelay>),
}

/// What one upstream frame becomes for the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Relayed {
    /// Send these bytes (possibly empty: nothing to send for this frame).
    Forward(Bytes),
    /// Send these bytes; the stream is complete.
    Done(Bytes),
}

// === impl StreamRelay ===

impl StreamRelay {
    pub fn on_frame(&mut self, frame: Bytes) -> Result<Relayed, GatewayError> {
        match self {
            StreamRelay::OpenAi(relay) => relay.on_frame(frame),
            StreamRelay::DashScope(relay) => relay.on_frame(frame),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            StreamRelay::OpenAi(relay) => relay.usage,
            StreamRelay::DashScope(relay) => relay.usage(),
        }
    }

    /// Nothing will count this stream's frames (no ledger): do not keep them.
    pub fn without_counting(mut self) -> Self {
        if let StreamRelay::OpenAi(relay) = &mut self {
            relay.keep_seen = false;
        }
        self
    }

    /// The frames an OpenAI-kind stream relayed, to count if it ends without usage. DashScope
    /// reports usage in every event, so there is never anything to count.
    pub fn take_seen(&mut self) -> Transcript {
        match self {
            StreamRelay::OpenAi(relay) => std::mem::take(&mut relay.seen),
            StreamRelay::DashScope(_) => Transcript::default(),
        }
    }

    /// DashScope events are one `data:` line each, and some upstreams omit the blank line
    /// between them (PROTOCOLS.md §5.5): a `data:` line ends the event.
    pub fn data_line_ends_event(&self) -> bool {
        matches!(self, StreamRelay::DashScope(_))
    }
}

// === impl Provider ===

impl Provider {
    pub fn new(
        id: Arc<str>,
        wire: Wire,
        transport: Transport,
        timeout: Duration,
        probe: Option<ProbeSpec>,
        max_rps: Option<u32>,
    ) -> Self {
        let limiter = max_rps
            .and_then(NonZeroU32::new)
            .map(|rps| RateLimiter::direct(Quota::per_second(rps)));
        Self {
            id,
            wire,
            transport,
            timeout,
            probe,
            limiter,
            up: AtomicBool::new(true),
            probe_failures: AtomicU32::new(0),
            last_answer_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether the provider's `max_rps` ceiling lets one more request through now.
    pub fn admit(&self) -> bool {
        self.limiter.as_ref().is_none_or(|l| l.check().is_ok())
    }

    /// False once active probes have failed `unhealthy_after` times in a row.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A real request got an answer from this provider: evidence that it is up.
    pub fn note_answer(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64 + 1;
        self.last_answer_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether a real request got an answer within `window`.
    pub fn answered_within(&self, window: Duration) -> bool {
        let last = self.last_answer_ms.load(Ordering::Relaxed);
        last != 0
            && (self.epoch.elapsed().as_millis() as u64 + 1).saturating_sub(last)
                <= window.as_millis() as u64
    }

    /// Records a probe result; returns true when the provider changed state.
    pub fn record_probe(&self, ok: bool, unhealthy_after: u32) -> bool {
        if ok {
            self.probe_failures.store(0, Ordering::Relaxed);
            return !self.up.swap(true, Ordering::Relaxed);
        }
        let failures = self.probe_failures.fetch_add(1, Ordering::Relaxed) + 1;
        failures >= unhealthy_after && self.up.swap(false, Ordering::Relaxed)
    }
}
