//! Building the ledger row of a request: a draft when the request reaches routing, finished
//! with the outcome (for streams, by the stream's observer when it ends, however it ends).
//! With `usage.sink: none` the draft is empty and every step is a no-op: no row is built.

use std::time::Duration;

use bytes::Bytes;

use super::RequestCtx;
use crate::error::GatewayError;
use crate::limits::keys::ApiKey;
use crate::providers::Usage;
use crate::routing::{ModelEntry, Route};
use crate::tokens::Encoding;
use crate::usage::estimate::{Estimate, Reply};
use crate::usage::record::{Price, UsageRecord};

/// Everything about a request's row that is known before its outcome (`None`: no ledger).
#[derive(Clone)]
pub struct Draft(Option<Box<Known>>);

#[derive(Clone)]
struct Known {
    record: UsageRecord,
    price: Price,
    /// The body sent upstream, counted if the upstream reports no usage (a refcount, no copy).
    request: Bytes,
    encoding: Encoding,
}

// === impl Draft ===

impl Draft {
    pub fn new(
        ctx: &RequestCtx,
        key: Option<&ApiKey>,
        model: &ModelEntry,
        stream: bool,
        purpose: &'static str,
        request: Bytes,
    ) -> Self {
        if ctx.app.usage.is_none() {
            return Self(None);
        }
        let elapsed_us = ctx.started.elapsed().as_micros() as i64;
        Self(Some(Box::new(Known {
            record: UsageRecord {
                request_id: ctx.request_id.to_str().unwrap_or("-").to_owned(),
                created_at_us: crate::clock::unix_micros() - elapsed_us,
                key_name: key.map(|k| k.name.to_string()),
                session_id: None,
                model_name: model.name.clone(),
                provider_id: None,
                upstream_model: None,
                stream,
                input_tokens: 0,
                output_tokens: 0,
                usage_source: String::new(),
                cost: String::new(),
                latency_ms: 0,
                ttft_ms: None,
                attempts: 0,
                status: String::new(),
                http_status: 0,
                error_message: None,
                purpose: purpose.to_owned(),
                estimate: None,
            },
            price: Price::from_config(model.price.as_ref()),
            request,
            encoding: Encoding::O200kBase,
        })))
    }

    /// The session the request belongs to.
    pub fn in_session(mut self, id: Option<&str>) -> Self {
        if let Some(known) = &mut self.0 {
            known.record.session_id = id.map(str::to_owned);
        }
        self
    }

    /// The route that served (or last failed) and how many routes were tried.
    pub fn routed(mut self, route: Option<&Route>, attempts: u32, ttft: Option<Duration>) -> Self {
        let Some(known) = &mut self.0 else {
            return self;
        };
        if let Some(route) = route {
            known.record.provider_id = Some(route.provider.id.to_string());
            known.record.upstream_model = Some(route.upstream_model.clone());
            known.encoding = route.encoding;
        }
        known.record.attempts = attempts.min(i16::MAX as u32) as i16;
        known.record.ttft_ms = ttft.map(|t| t.as_millis().min(i32::MAX as u128) as i32);
        self
    }

    /// The finished row. With upstream usage its tokens are exact; without, the row carries
    /// what the writer needs to count them (`reply`: what came back) and is `estimated`. A
    /// request that got no reply at all was not billed: 0 tokens.
    pub fn finish(
        self,
        usage: Option<Usage>,
        reply: Option<Reply>,
        status: &'static str,
        http_status: u16,
        error: Option<&GatewayError>,
        latency: Duration,
    ) -> Option<UsageRecord> {
        let known = *self.0?;
        let Known {
            mut record,
            price,
            request,
            encoding,
        } = known;
        let r = &mut record;
        if usage.is_none()
            && let Some(reply) = reply
        {
            r.estimate = Some(Box::new(Estimate {
                encoding,
                price,
                request,
                reply,
            }));
        }
        let (usage, source) = match usage {
            Some(u) => (u, "upstream"),
            None => (Usage::default(), "estimated"),
        };
        r.input_tokens = usage.input_tokens as i64;
        r.output_tokens = usage.output_tokens as i64;
        r.usage_source = source.to_owned();
        r.cost = price.cost(usage.input_tokens, usage.output_tokens);
        r.latency_ms = latency.as_millis().min(i32::MAX as u128) as i32;
        r.status = status.to_owned();
        r.http_status = http_status as i16;
        r.error_message = error.map(|e| e.message().to_owned());
        Some(record)
    }
}
