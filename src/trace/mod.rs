//! OpenTelemetry traces (DESIGN.md §5 "Observability"): a server span per request, a client span
//! per upstream attempt, internal spans for session expansion and compression and for ledger
//! batches, exported over OTLP/HTTP (protobuf). A span is finished on the request path into a
//! bounded queue (a push under a lock: never a wait; a full queue drops the span and counts it)
//! and encoded and sent by one exporter task off the request path, so a collector that is slow
//! or down costs dropped spans, never a slower request. The exporter is woken once a batch (by
//! its first span, or when it is full), not once a span. W3C `traceparent` in, `traceparent`
//! out.
//!
//! Written here rather than with `tracing-opentelemetry` (docs/design-differences.md):
//! the gateway's logs are events, not spans, and a span is a few fields recorded at two points,
//! so the bridge, the SDK and its runtime glue were all cost and no help.

pub mod export;
pub mod otlp;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use http::HeaderValue;
use tokio::sync::Notify;

/// W3C Trace Context's header. A constant: looked up by a `&str`, a header name is parsed and
/// checked on every call.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The most spans the exporter sends in one request; a queue this long wakes it at once.
pub(crate) const MAX_BATCH: usize = 512;

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

tokio::task_local! {
    /// The `traceparent` an upstream request of the current attempt carries (set around each
    /// sampled attempt; the transport adds it as a header).
    pub static UPSTREAM_TRACEPARENT: HeaderValue;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// The attributes spans carry: OpenTelemetry's HTTP and GenAI semantic conventions, and the
/// gateway's own. A closed set, so setting one is a store (no search among those already set)
/// and its key is written from a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Attr {
    HttpRoute,
    HttpRequestMethod,
    UrlPath,
    HttpResponseStatusCode,
    ErrorType,
    GenAiSystem,
    GenAiOperationName,
    GenAiRequestModel,
    GenAiResponseModel,
    GenAiUsageInputTokens,
    GenAiUsageOutputTokens,
    Key,
    Provider,
    Attempt,
    Attempts,
    SessionId,
    ResponseId,
    PreviousResponseId,
    Cache,
    StreamCancelled,
    UsageRows,
    UsageSink,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Static(&'static str),
    /// A name the configuration holds (a provider's id): shared, not copied.
    Shared(Arc<str>),
    Int(i64),
    Bool(bool),
}

/// A span's name. Most are fixed; a client span's is its operation and model, joined only when
/// it is encoded: no string is built for it on the request path.
#[derive(Debug, Clone, PartialEq)]
pub enum Name {
    Static(&'static str),
    Owned(String),
    /// `"{0} {1}"`.
    Pair(&'static str, Arc<str>),
}

/// A finished span, as exported.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub name: Name,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(Attr, Value)>,
    /// The span failed, with this message.
    pub error: Option<String>,
}

/// Where finished spans go, and the sampling decision for new traces.
pub struct Tracer {
    /// Finished spans waiting for the exporter, at most `max_queue`.
    queue: Mutex<Vec<Span>>,
    max_queue: usize,
    /// Said when a batch starts (a span into an empty queue) and when one is full.
    pub(crate) ready: Notify,
    sample_ratio: f64,
    /// Shutdown asks the exporter for a last batch, and waits (a bounded time) for it.
    pub(crate) flush: Notify,
    pub(crate) flushed: Notify,
}

/// A span being recorded: attributes are added as the request goes, and it is finished once
/// (later calls do nothing), by whoever knows the outcome.
pub struct Active {
    tracer: Arc<Tracer>,
    span: Mutex<Recording>,
    done: AtomicBool,
}

/// A span and which attributes it has (bit `Attr as u8`): one set twice replaces its value.
struct Recording {
    span: Span,
    set: u32,
}

// === impl Recording ===

impl Recording {
    fn set(&mut self, key: Attr, value: Value) {
        if self.set & key.bit() == 0 {
            self.set |= key.bit();
            self.span.attributes.push((key, value));
        } else if let Some(slot) = self.span.attributes.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        }
    }
}

// === impl Name ===

impl Name {
    /// Its length in bytes, as encoded.
    pub(crate) fn len(&self) -> usize {
        match self {
            Name::Static(s) => s.len(),
            Name::Owned(s) => s.len(),
            Name::Pair(a, b) => a.len() + 1 + b.len(),
        }
    }

    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Name::Static(s) => out.extend_from_slice(s.as_bytes()),
            Name::Owned(s) => out.extend_from_slice(s.as_bytes()),
            Name::Pair(a, b) => {
                out.extend_from_slice(a.as_bytes());
                out.push(b' ');
                out.extend_from_slice(b.as_bytes());
            }
        }
    }
}

impl Default for Name {
    fn default() -> Self {
        Name::Static("")
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Static(s) => f.write_str(s),
            Name::Owned(s) => f.write_str(s),
            Name::Pair(a, b) => write!(f, "{a} {b}"),
        }
    }
}

impl From<&'static str> for Name {
    fn from(name: &'static str) -> Self {
        Name::Static(name)
    }
}

impl From<String> for Name {
    fn from(name: String) -> Self {
        Name::Owned(name)
    }
}

// === impl Attr ===

impl Attr {
    pub const ALL: [Attr; 22] = [
        Attr::HttpRoute,
        Attr::HttpRequestMethod,
        Attr::UrlPath,
        Attr::HttpResponseStatusCode,
        Attr::ErrorType,
        Attr::GenAiSystem,
        Attr::GenAiOperationName,
        Attr::GenAiRequestModel,
        Attr::GenAiResponseModel,
        Attr::GenAiUsageInputTokens,
        Attr::GenAiUsageOutputTokens,
        Attr::Key,
        Attr::Provider,
        Attr::Attempt,
        Attr::Attempts,
        Attr::SessionId,
        Attr::ResponseId,
        Attr::PreviousResponseId,
        Attr::Cache,
        Attr::StreamCancelled,
        Attr::UsageRows,
        Attr::UsageSink,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Attr::HttpRoute => "http.route",
            Attr::HttpRequestMethod => "http.request.method",
            Attr::UrlPath => "url.path",
            Attr::HttpResponseStatusCode => "http.response.status_code",
            Attr::ErrorType => "error.type",
            Attr::GenAiSystem => "gen_ai.system",
            Attr::GenAiOperationName => "gen_ai.operation.name",
            Attr::GenAiRequestModel => "gen_ai.request.model",
            Attr::GenAiResponseModel => "gen_ai.response.model",
            Attr::GenAiUsageInputTokens => "gen_ai.usage.input_tokens",
            Attr::GenAiUsageOutputTokens => "gen_ai.usage.output_tokens",
            Attr::Key => "switchyard.key",
            Attr::Provider => "switchyard.provider",
            Attr::Attempt => "switchyard.attempt",
            Attr::Attempts => "switchyard.attempts",
            Attr::SessionId => "switchyard.session_id",
            Attr::ResponseId => "switchyard.response_id",
            Attr::PreviousResponseId => "switchyard.previous_response_id",
            Attr::Cache => "switchyard.cache",
            Attr::StreamCancelled => "switchyard.stream.cancelled",
            Attr::UsageRows => "switchyard.usage.rows",
            Attr::UsageSink => "switchyard.usage.sink",
        }
    }

    const fn bit(self) -> u32 {
        1 << self as u8
    }
}

// === impl Tracer ===

impl Tracer {
    /// A tracer whose spans wait in a queue of `max_queue` for `export::run`.
    pub fn new(sample_ratio: f64, max_queue: usize) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Vec::new()),
            max_queue,
            ready: Notify::new(),
            sample_ratio,
            flush: Notify::new(),
            flushed: Notify::new(),
        })
    }

    /// At shutdown: the spans still queued go out in a last batch, within `within`.
    pub async fn flush(&self, within: std::time::Duration) {
        self.flush.notify_one();
        let _ = tokio::time::timeout(within, self.flushed.notified()).await;
    }

    fn emit(&self, span: Span) {
        let queued = {
            let mut queue = self.lock_queue();
            if queue.len() >= self.max_queue {
                None
            } else {
                queue.push(span);
                Some(queue.len())
            }
        };
        match queued {
            // The exporter waits for a batch's first span, then lingers unless it fills.
            Some(1 | MAX_BATCH) => self.ready.notify_one(),
            Some(_) => {}
            None => crate::metrics::span_dropped(),
        }
    }

    /// Moves up to `max` of the oldest queued spans to the end of `batch`.
    pub(crate) fn take(&self, batch: &mut Vec<Span>, max: usize) {
        let mut queue = self.lock_queue();
        if batch.is_empty() && queue.len() <= max {
            // The whole queue: the two vectors trade places, no span is moved.
            std::mem::swap(batch, &mut *queue);
        } else {
            let n = queue.len().min(max);
            batch.extend(queue.drain(..n));
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.lock_queue().len()
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<Span>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a new trace is recorded: decided from the trace id (the W3C "trace id ratio"),
    /// so every replica decides alike for one trace.
    fn samples(&self, trace_id: &TraceId) -> bool {
        if self.sample_ratio >= 1.0 {
            return true;
        }
        let low = u64::from_be_bytes(trace_id[8..].try_into().unwrap_or([0; 8]));
        (low >> 11) as f64 / (1u64 << 53) as f64 <= self.sample_ratio
    }
}

// === impl Active ===

impl Active {
    /// A request's server span: continuing the client's trace when it sent a valid
    /// `traceparent` (and follows its sampled flag), else a new trace sampled by ratio. `None`
    /// when the trace is not recorded.
    pub fn server(
        tracer: &Arc<Tracer>,
        traceparent: Option<&HeaderValue>,
        name: Name,
    ) -> Option<Arc<Self>> {
        let (trace_id, parent) = match traceparent.and_then(|v| parse_traceparent(v.as_bytes())) {
            Some((trace_id, parent, sampled)) => {
                if !sampled {
                    return None;
                }
                (trace_id, Some(parent))
            }
            None => {
                let trace_id = new_trace_id();
                if !tracer.samples(&trace_id) {
                    return None;
                }
                (trace_id, None)
            }
        };
        Some(Arc::new(Self::new(
            tracer.clone(),
            trace_id,
            parent,
            name,
            Kind::Server,
        )))
    }

    /// A root span of its own trace (a ledger batch), if sampled.
    pub fn root(tracer: &Arc<Tracer>, name: &'static str) -> Option<Self> {
        let trace_id = new_trace_id();
        tracer.samples(&trace_id).then(|| {
            Self::new(
                tracer.clone(),
                trace_id,
                None,
                Name::Static(name),
                Kind::Internal,
            )
        })
    }

    /// A span under this one.
    pub fn child(&self, name: impl Into<Name>, kind: Kind) -> Self {
        let (trace_id, parent) = {
            let recording = self.lock();
            (recording.span.trace_id, recording.span.span_id)
        };
        Self::new(
            self.tracer.clone(),
            trace_id,
            Some(parent),
            name.into(),
            kind,
        )
    }

    fn new(
        tracer: Arc<Tracer>,
        trace_id: TraceId,
        parent: Option<SpanId>,
        name: Name,
        kind: Kind,
    ) -> Self {
        Self {
            tracer,
            span: Mutex::new(Recording {
                span: Span {
                    trace_id,
                    span_id: new_span_id(),
                    parent,
                    name,
                    kind,
                    start_ns: unix_nanos(),
                    end_ns: 0,
                    attributes: Vec::with_capacity(12),
                    error: None,
                },
                set: 0,
            }),
            done: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recording> {
        self.span.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, key: Attr, value: Value) {
        self.lock().set(key, value);
    }

    /// Several attributes under one lock (those known together: a route's, a span's first).
    pub fn set_all<const N: usize>(&self, attributes: [(Attr, Value); N]) {
        let mut recording = self.lock();
        for (key, value) in attributes {
            recording.set(key, value);
        }
    }

    pub fn set_str(&self, key: Attr, value: &str) {
        self.set(key, Value::Str(value.to_owned()));
    }

    pub fn set_int(&self, key: Attr, value: i64) {
        self.set(key, Value::Int(value));
    }

    /// The `traceparent` naming this span as the parent (sampled).
    pub fn traceparent(&self) -> HeaderValue {
        let recording = self.lock();
        traceparent(&recording.span.trace_id, &recording.span.span_id)
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Ends the span (with an error message if it failed) and queues it for export; only the
    /// first call counts.
    pub fn finish(&self, error: Option<&str>) {
        if self.done.swap(true, Ordering::AcqRel) {
            return;
        }
        let span = {
            let mut recording = self.lock();
            let span = &mut recording.span;
            // Taken, not cloned: nothing reads a finished span's attributes again.
            Span {
                trace_id: span.trace_id,
                span_id: span.span_id,
                parent: span.parent,
                name: std::mem::take(&mut span.name),
                kind: span.kind,
                start_ns: span.start_ns,
                end_ns: unix_nanos().max(span.start_ns),
                attributes: std::mem::take(&mut span.attributes),
                error: error.map(str::to_owned),
            }
        };
        self.tracer.emit(span);
    }
}

/// `traceparent: 00-<trace id>-<parent id>-<flags>`; `None` unless well-formed with non-zero
/// ids (W3C Trace Context §3.2).
pub fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, bool)> {
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = crate::hex::parse_byte(&value[0..2])?;
    // Version ff is invalid; a future version may be longer but starts the same way.
    if version == 0xff || (version == 0 && value.len() != 55) {
        return None;
    }
    let mut trace_id = [0u8; 16];
    for (i, b) in trace_id.iter_mut().enumerate() {
        *b = crate::hex::parse_byte(&value[3 + 2 * i..5 + 2 * i])?;
    }
    let mut parent = [0u8; 8];
    for (i, b) in parent.iter_mut().enumerate() {
        *b = crate::hex::parse_byte(&value[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = crate::hex::parse_byte(&value[53..55])?;
    if trace_id == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace_id, parent, flags & 1 == 1))
}

/// A sampled `traceparent` for a span.
pub fn traceparent(trace_id: &TraceId, span_id: &SpanId) -> HeaderValue {
    let mut out = *b"00-________________________________-________________-01";
    crate::hex::write(&mut out[3..35], trace_id);
    crate::hex::write(&mut out[36..52], span_id);
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("00-0-0-00"))
}

pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

thread_local! {
    /// xorshift64* state, seeded once per thread from the OS: ids must be unique, not secret.
    static RNG: Cell<u64> = Cell::new({
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
        u64::from_le_bytes(seed) | 1
    });
}

fn next_u64() -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

fn new_trace_id() -> TraceId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&next_u64().to_be_bytes());
    id[8..].copy_from_slice(&next_u64().to_be_bytes());
    id
}

fn new_span_id() -> SpanId {
    loop {
        let id = next_u64();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_bad_ones_are_ignored() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let (trace, parent, sampled) = parse_traceparent(good).unwrap();
        assert!(sampled);
        assert_eq!(traceparent(&trace, &parent).as_bytes(), good);
        let unsampled = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!parse_traceparent(unsampled).unwrap().2);
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"garbage",
        ] {
            assert!(
                parse_traceparent(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// An attribute set twice keeps its place and its last value; the others are kept in order.
    #[test]
    fn an_attribute_set_again_is_replaced() {
        let tracer = Tracer::new(1.0, 4);
        let span = Active::root(&tracer, "t").expect("sampled");
        span.set_int(Attr::HttpResponseStatusCode, 200);
        span.set(Attr::ErrorType, Value::Static("first"));
        span.set_int(Attr::HttpResponseStatusCode, 502);
        span.set_str(Attr::Provider, "p");
        span.finish(None);
        let mut done = Vec::new();
        tracer.take(&mut done, 8);
        assert_eq!(
            done[0].attributes,
            [
                (Attr::HttpResponseStatusCode, Value::Int(502)),
                (Attr::ErrorType, Value::Static("first")),
                (Attr::Provider, Value::Str("p".into())),
            ]
        );
    }

    #[test]
    fn attribute_names_are_distinct_and_fit_the_mask() {
        let all = Attr::ALL;
        let names: std::collections::HashSet<&str> = all.iter().map(|a| a.name()).collect();
        assert_eq!(names.len(), all.len());
        // `ALL` lists each in its place (the OTLP encoder indexes its key table by it).
        assert!(all.iter().enumerate().all(|(i, a)| *a as usize == i));
        assert!(all.len() <= 32, "the set mask is a u32");
    }

    #[test]
    fn ids_are_distinct_and_never_zero() {
        let ids: std::collections::HashSet<SpanId> = (0..10_000).map(|_| new_span_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(!ids.contains(&[0; 8]));
    }

    #[test]
    fn sampling_follows_the_ratio() {
        let none = Tracer::new(0.0, 1);
        let half = Tracer::new(0.5, 1);
        let sampled = (0..10_000)
            .filter(|_| half.samples(&new_trace_id()))
            .count();
        assert!((4_500..5_500).contains(&sampled), "{sampled}");
        let zero = (0..1_000).filter(|_| none.samples(&new_trace_id())).count();
        assert!(zero <= 1, "{zero}");
    }
}
