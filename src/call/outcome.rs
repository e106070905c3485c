//! The one outcome recorder: however a request ends (answered, failed, a stream completed, cut
//! or abandoned), this writes its ledger row, counts its metrics and settles its limits. With
//! `usage.sink: none` the row is never built.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::context::{Rejection, RequestCtx};
use super::relay::{StreamEnd, StreamObserver};
use crate::error::GatewayError;
use crate::limits::keys::ApiKey;
use crate::limits::rate::Admission;
use crate::limits::spend::Spend;
use crate::providers::Usage;
use crate::routing::dispatch::Failure;
use crate::routing::{ModelEntry, Route};
use crate::state::App;
use crate::tokens::Encoding;
use crate::trace::{Active, Attr, Value};
use crate::usage::estimate::{Estimate, Reply, Transcript};
use crate::usage::price::{Price, format_cost, parse_cost};
use crate::usage::record::{Purpose, Status, Unit, UsageRecord, UsageSource};

/// How a request ended, as its ledger row records it.
pub struct Outcome<'a> {
    pub status: Status,
    /// What the client got (499: it left; a committed stream that failed still answered 200).
    pub http_status: u16,
    /// The upstream's counts; `None`: the writer counts `reply` itself.
    pub usage: Option<Usage>,
    /// What came back, as far as it got (`None`: nothing did, so nothing was billed).
    pub reply: Option<Reply>,
    pub error: Option<&'a GatewayError>,
    pub latency: Duration,
    /// What the request is priced by besides tokens (rerank searches).
    pub units: Option<(Unit, u64)>,
}

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

/// Records a request's outcome once it is known: made at admission, spent by one of
/// [`Recorder::served`], [`Recorder::failed`] or [`Recorder::streaming`].
pub struct Recorder {
    app: Arc<App>,
    draft: Draft,
    /// Settled to the tokens really used.
    admission: Admission,
    started: Instant,
    /// The request's server span, given the GenAI attributes as they become known.
    trace: Option<Arc<Active>>,
}

/// Records a stream's outcome when it ends, however it ends.
struct StreamRecorder {
    route: Arc<Route>,
    recorder: Recorder,
    /// A media stream's: priced by these units and the usage its events report, never by
    /// counting what was relayed (audio is not text).
    units: Option<Option<(Unit, u64)>>,
}

// === impl Draft ===

impl Draft {
    fn new(
        ctx: &RequestCtx,
        key: Option<&ApiKey>,
        model: &ModelEntry,
        stream: bool,
        purpose: Purpose,
        request: Bytes,
    ) -> Self {
        // Without a ledger the row is only needed for a budget's exact cost.
        if ctx.app.usage.is_none() && key.is_none_or(|k| k.budget.is_none()) {
            return Self(None);
        }
        let elapsed_us = ctx.started.elapsed().as_micros() as i64;
        Self(Some(Box::new(Known {
            record: UsageRecord {
                request_id: ctx.request_id.to_str().unwrap_or("-").to_owned(),
                created_at_us: crate::clock::unix_micros() - elapsed_us,
                key_name: key.map(|k| k.name.clone()),
                session_id: None,
                model_name: model.name.clone(),
                provider_id: None,
                upstream_model: None,
                stream,
                input_tokens: 0,
                output_tokens: 0,
                cached_input_tokens: 0,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
                usage_source: UsageSource::Upstream,
                cost: String::new(),
                cache_saved_cost: "0".into(),
                units: None,
                unit: None,
                latency_ms: 0,
                ttft_ms: None,
                attempts: 0,
                status: Status::Ok,
                http_status: 0,
                error_message: None,
                purpose,
                estimate: None,
                journal: 0,
            },
            price: Price::from_config(model.price.as_ref()),
            request,
            encoding: Encoding::O200kBase,
        })))
    }

    /// The route that served (or last failed) and how many routes were tried.
    fn routed(&mut self, route: Option<&Route>, attempts: u32, ttft: Option<Duration>) {
        let Some(known) = &mut self.0 else { return };
        if let Some(route) = route {
            known.record.provider_id = Some(route.provider.id.clone());
            known.record.upstream_model = Some(route.upstream_model.clone());
            known.encoding = route.encoding;
        }
        known.record.attempts = attempts.min(i16::MAX as u32) as i16;
        known.record.ttft_ms = ttft.map(millis);
    }

    /// A cache hit's row: nothing generated (zero tokens, zero cost), the stored answer's cost
    /// at the model's prices as what it saved.
    fn cached(self, saved: Option<Usage>, latency: Duration) -> Option<UsageRecord> {
        let Known {
            mut record, price, ..
        } = *self.0?;
        record.usage_source = UsageSource::Cache;
        record.cost = "0".into();
        record.cache_saved_cost = saved.map_or_else(|| "0".into(), |u| price.cost(&u));
        record.latency_ms = millis(latency);
        record.status = Status::Ok;
        record.http_status = 200;
        Some(record)
    }

    /// The finished row. With upstream usage its tokens are exact; without, the row carries
    /// what the writer needs to count them and is `estimated`. A request that got no reply at
    /// all was not billed: 0 tokens.
    fn finish(self, outcome: Outcome<'_>) -> Option<UsageRecord> {
        let Known {
            mut record,
            price,
            request,
            encoding,
        } = *self.0?;
        let r = &mut record;
        if outcome.usage.is_none()
            && let Some(reply) = outcome.reply
        {
            r.estimate = Some(Box::new(Estimate {
                encoding,
                price,
                request,
                reply,
            }));
        }
        let (usage, source) = match outcome.usage {
            Some(u) => (u, UsageSource::Upstream),
            None => (Usage::default(), UsageSource::Estimated),
        };
        r.input_tokens = usage.input_tokens as i64;
        r.output_tokens = usage.output_tokens as i64;
        r.cached_input_tokens = usage.cached_input_tokens as i64;
        r.cache_write_tokens = usage.cache_write_tokens as i64;
        r.reasoning_tokens = usage.reasoning_tokens as i64;
        r.usage_source = source;
        let units_cost = outcome
            .units
            .map_or(0, |(unit, n)| price.units_cost(unit, n));
        r.cost = format_cost(price.cost_units(&usage) + units_cost);
        r.unit = outcome.units.map(|(unit, _)| unit);
        r.units = outcome.units.map(|(_, n)| n);
        r.latency_ms = millis(outcome.latency);
        r.status = outcome.status;
        r.http_status = outcome.http_status as i16;
        r.error_message = outcome.error.map(|e| e.message().to_owned());
        Some(record)
    }
}

// === impl Recorder ===

impl Recorder {
    /// At admission: `request` is the body as it goes upstream (counted if no usage comes back).
    pub fn new(
        ctx: &RequestCtx,
        key: Option<&ApiKey>,
        model: &ModelEntry,
        purpose: Purpose,
        stream: bool,
        request: Bytes,
        admission: Admission,
    ) -> Self {
        if let Some(span) = &ctx.trace {
            span.set_all([
                (
                    Attr::GenAiOperationName,
                    Value::Static(model.kind_operation()),
                ),
                (Attr::GenAiRequestModel, Value::Shared(model.name.clone())),
            ]);
            if let Some(key) = key {
                span.set_str(Attr::Key, &key.name);
            }
        }
        Self {
            app: ctx.app.clone(),
            draft: Draft::new(ctx, key, model, stream, purpose, request),
            admission,
            started: ctx.started,
            trace: ctx.trace.clone(),
        }
    }

    /// The session the request belongs to.
    pub fn in_session(mut self, id: Option<&str>) -> Self {
        if let (Some(span), Some(id)) = (&self.trace, id) {
            span.set_str(Attr::SessionId, id);
        }
        if let Some(known) = &mut self.draft.0 {
            known.record.session_id = id.map(str::to_owned);
        }
        self
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// A route answered (a whole answer, not a stream).
    pub fn served(self, route: &Route, attempts: u32, usage: Option<Usage>, reply: Reply) {
        self.served_with_units(route, attempts, usage, reply, None);
    }

    /// A route answered a request priced by units too (rerank searches).
    pub fn served_with_units(
        mut self,
        route: &Route,
        attempts: u32,
        usage: Option<Usage>,
        reply: Reply,
        units: Option<(Unit, u64)>,
    ) {
        self.draft.routed(Some(route), attempts, None);
        self.traced(Some(route), Some(attempts), usage);
        let latency = self.started.elapsed();
        self.settle(usage.map(|u| u.input_tokens + u.output_tokens));
        if let Some(u) = usage {
            route.metrics.tokens(u.input_tokens, u.output_tokens);
        }
        route.metrics.request(200, latency);
        self.write(Outcome {
            status: Status::Ok,
            http_status: 200,
            usage,
            reply: Some(reply),
            error: None,
            latency,
            units,
        });
    }

    /// The result cache answered (no route, no upstream call, nothing to settle: a hit reserves
    /// no tokens and no budget). `saved`: the stored answer's usage.
    /// `stream`: the hit was replayed as a stream, whose server span ends here (the router
    /// leaves a stream's span to its recorder).
    pub fn cached(self, saved: Option<Usage>, stream: bool) {
        let latency = self.started.elapsed();
        self.traced(None, Some(0), None);
        if let (true, Some(span)) = (stream, &self.trace) {
            span.finish(None);
        }
        let record = self.draft.cached(saved, latency);
        self.app.record_usage(record);
    }

    /// No route served: the row says so with the status the client gets, and nothing generated
    /// is charged to the key's limits.
    pub fn failed(mut self, failure: Failure) -> Rejection {
        let status = failure.error.status().as_u16();
        let latency = self.started.elapsed();
        self.draft
            .routed(failure.route.as_deref(), failure.attempts, None);
        self.traced(failure.route.as_deref(), Some(failure.attempts), None);
        if let Some(span) = &self.trace {
            span.set(Attr::ErrorType, Value::Static(failure.error.metric_label()));
        }
        self.settle(Some(0));
        match &failure.route {
            Some(route) => route.metrics.request(status, latency),
            None => crate::metrics::request_without_route(status),
        }
        self.write(Outcome {
            status: Status::Error,
            http_status: status,
            usage: None,
            reply: None,
            error: Some(&failure.error),
            latency,
            units: None,
        });
        Rejection {
            recorded: true,
            ..failure.into()
        }
    }

    /// A stream passed its commit point on `route`: the returned observer records it when it ends.
    pub fn streaming(
        mut self,
        route: &Arc<Route>,
        attempts: u32,
        ttft: Duration,
    ) -> Box<dyn StreamObserver> {
        route.metrics.ttft(ttft);
        self.draft.routed(Some(route), attempts, Some(ttft));
        self.traced(Some(route), Some(attempts), None);
        Box::new(StreamRecorder {
            route: route.clone(),
            recorder: self,
            units: None,
        })
    }

    /// A media stream (audio, transcript events) passed its commit point: recorded when it ends
    /// with `units` and the usage its events reported (zero tokens if none).
    pub fn streaming_media(
        self,
        route: &Arc<Route>,
        attempts: u32,
        ttft: Duration,
        units: Option<(Unit, u64)>,
    ) -> Box<dyn StreamObserver> {
        route.metrics.ttft(ttft);
        let mut recorder = self;
        recorder.draft.routed(Some(route), attempts, Some(ttft));
        recorder.traced(Some(route), Some(attempts), None);
        Box::new(StreamRecorder {
            route: route.clone(),
            recorder,
            units: Some(units),
        })
    }

    /// The server span's GenAI attributes: who served, after how many attempts, with what usage.
    fn traced(&self, route: Option<&Route>, attempts: Option<u32>, usage: Option<Usage>) {
        let Some(span) = &self.trace else { return };
        if let Some(attempts) = attempts {
            span.set_int(Attr::Attempts, i64::from(attempts));
        }
        if let Some(route) = route {
            span.set_all([
                (Attr::GenAiSystem, Value::Static(route.provider.kind.name())),
                (
                    Attr::GenAiResponseModel,
                    Value::Shared(route.upstream_model.clone()),
                ),
                (Attr::Provider, Value::Shared(route.provider.id.clone())),
            ]);
        }
        if let Some(u) = usage {
            span.set_all([
                (
                    Attr::GenAiUsageInputTokens,
                    Value::Int(u.input_tokens as i64),
                ),
                (
                    Attr::GenAiUsageOutputTokens,
                    Value::Int(u.output_tokens as i64),
                ),
            ]);
        }
    }

    /// Settles the reservation to the tokens really used (`None`: unknown, it stands), on the
    /// app's background runtime after the response.
    fn settle(&self, used: Option<u64>) {
        if !self.admission.is_limited() {
            return;
        }
        let Some(used) = used else { return };
        let (app, admission) = (self.app.clone(), self.admission.clone());
        self.app
            .background
            .spawn(async move { app.limits.settle(&admission, used).await });
    }

    fn write(self, outcome: Outcome<'_>) {
        let record = self.draft.finish(outcome);
        if let Some(spend) = self.admission.spend.clone() {
            settle_budget(&self.app, spend, record.as_ref());
        }
        self.app.record_usage(record);
    }
}

/// A duration as the ledger's `integer` milliseconds.
fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

/// Settles a budget reservation to the row's exact cost, off the request path. A row whose
/// tokens the writer will count (no upstream usage) is counted here too, the same way, so the
/// budget is charged what the ledger will say.
fn settle_budget(app: &Arc<App>, spend: Spend, record: Option<&UsageRecord>) {
    let cost = match record {
        None => Err(0),
        Some(r) => match &r.estimate {
            Some(estimate) => Ok(estimate.clone()),
            None => Err(parse_cost(&r.cost).map_or(0, |c| i64::try_from(c).unwrap_or(i64::MAX))),
        },
    };
    let app2 = app.clone();
    app.background.spawn(async move {
        let units = match cost {
            Err(units) => units,
            Ok(estimate) => {
                let counted = tokio::task::spawn_blocking(move || estimate.count().cost).await;
                counted
                    .ok()
                    .and_then(|c| parse_cost(&c))
                    .map_or(0, |c| i64::try_from(c).unwrap_or(i64::MAX))
            }
        };
        app2.limits.budgets.settle(&spend, units).await;
    });
}

// === impl StreamRecorder ===

impl StreamObserver for StreamRecorder {
    fn finished(self: Box<Self>, end: StreamEnd, usage: Option<Usage>, seen: Transcript) {
        let Self {
            route,
            recorder,
            units,
        } = *self;
        // A media stream's usage is what its events said, or none at all.
        let usage = match units {
            Some(_) => Some(usage.unwrap_or_default()),
            None => usage,
        };
        let latency = recorder.started.elapsed();
        if let Some(span) = &recorder.trace {
            recorder.traced(Some(&route), None, usage);
            let error = match &end {
                StreamEnd::Completed => None,
                StreamEnd::Failed(e) => Some(e.message().to_owned()),
                StreamEnd::Cancelled => {
                    span.set(Attr::StreamCancelled, Value::Bool(true));
                    None
                }
            };
            span.finish(error.as_deref());
        }
        // An estimate is only known later, in the writer: until then the reservation stands.
        recorder.settle(usage.map(|u| u.input_tokens + u.output_tokens));
        // Committed streams answered 200; a client that left is recorded as 499 (nginx's
        // "client closed request").
        let (status, http_status, how) = match &end {
            StreamEnd::Completed => (Status::Ok, 200, "completed"),
            StreamEnd::Failed(e) => {
                tracing::warn!(provider = %route.provider.id, error = %e, "stream failed after the commit point");
                (Status::Error, 200, "failed")
            }
            StreamEnd::Cancelled => (Status::Cancelled, 499, "cancelled"),
        };
        crate::metrics::stream_ended(&route.provider.id, how);
        if let Some(u) = usage {
            route.metrics.tokens(u.input_tokens, u.output_tokens);
        }
        route.metrics.request(200, latency);
        let error = match &end {
            StreamEnd::Failed(e) => Some(e),
            _ => None,
        };
        recorder.write(Outcome {
            status,
            http_status,
            usage,
            reply: Some(Reply::Chunks(seen)),
            error,
            latency,
            units: units.flatten(),
        });
    }
}
