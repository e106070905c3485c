//! Provider kinds: wire formats (pure translation, no I/O) and the running `Provider`.
//!
//! An adapter turns our canonical request into upstream bytes and upstream bytes back into what
//! an OpenAI client expects; only `routing::transport` sends anything. The one `match` over wire
//! formats lives in [`Wire`].

pub mod mock;
pub mod openai;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::StatusCode;

use crate::config::ProviderKind;
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
}

pub struct Provider {
    pub id: Arc<str>,
    pub kind: ProviderKind,
    pub wire: Wire,
    pub transport: Transport,
    pub timeout: Duration,
    pub probe: Option<ProbeSpec>,
    limiter: Option<DefaultDirectRateLimiter>,
    up: AtomicBool,
    probe_failures: AtomicU32,
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
    pub fn build_chat(self, req: &ChatRequest, upstream_model_json: &[u8]) -> UpstreamRequest {
        match self {
            Wire::OpenAi => UpstreamRequest {
                endpoint: Endpoint::Chat,
                body: openai::splice(&req.body, &req.model_span, upstream_model_json),
                stream: req.stream,
            },
        }
    }

    pub fn build_embeddings(
        self,
        req: &EmbeddingsRequest,
        upstream_model_json: &[u8],
    ) -> UpstreamRequest {
        match self {
            Wire::OpenAi => UpstreamRequest {
                endpoint: Endpoint::Embeddings,
                body: openai::splice(&req.body, &req.model_span, upstream_model_json),
                stream: false,
            },
        }
    }

    /// A successful non-stream body as the client will see it, and the usage it reports.
    pub fn parse_response(self, body: Bytes) -> Result<(Bytes, Option<Usage>), GatewayError> {
        match self {
            Wire::OpenAi => openai::parse_response(body),
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
        match self {
            Wire::OpenAi => openai::parse_error(
                &provider.id,
                provider.transport.secret(),
                status,
                retry_after,
                body,
            ),
        }
    }

    pub fn stream_relay(self) -> StreamRelay {
        match self {
            Wire::OpenAi => StreamRelay::OpenAi(openai::StreamRelay::default()),
        }
    }
}

/// Per-stream translation state, one variant per wire format.
pub enum StreamRelay {
    OpenAi(openai::StreamRelay),
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
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            StreamRelay::OpenAi(relay) => relay.usage,
        }
    }
}

// === impl Provider ===

impl Provider {
    pub fn new(
        id: Arc<str>,
        kind: ProviderKind,
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
            kind,
            wire,
            transport,
            timeout,
            probe,
            limiter,
            up: AtomicBool::new(true),
            probe_failures: AtomicU32::new(0),
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
