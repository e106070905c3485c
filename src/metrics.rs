//! Metric names, their descriptions, and the recorder. Labels are low-cardinality only:
//! provider, configured model name, status class, token type, failure reason; never a request
//! id, a key or a client-supplied string.
//!
//! Per-route handles are registered once when a route is built, so the request path increments
//! them without hashing label sets.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS_TOTAL: &str = "gateway_requests_total";
pub const REQUEST_DURATION: &str = "gateway_request_duration_seconds";
pub const TTFT: &str = "gateway_ttft_seconds";
pub const TOKENS_USED: &str = "gateway_tokens_used_total";
pub const UPSTREAM_HEALTHY: &str = "gateway_upstream_healthy";
pub const UPSTREAM_FAILURES: &str = "gateway_upstream_failures_total";
pub const REQUESTS_IN_FLIGHT: &str = "gateway_requests_in_flight";
pub const STREAMS_ENDED: &str = "gateway_streams_ended_total";
pub const COST: &str = "gateway_cost_nanodollars_total";
pub const SPANS_EXPORTED: &str = "gateway_trace_spans_exported_total";
pub const SPANS_DROPPED: &str = "gateway_trace_spans_dropped_total";
pub const EJECTIONS: &str = "gateway_route_ejections_total";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the Prometheus recorder once per process and describes every metric.
pub fn install() -> Result<PrometheusHandle, String> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
            describe();
            zero();
            Ok(handle)
        })
        .clone()
}

/// Series without labels exist from the start at 0, so a dashboard or an alert sees "none yet"
/// rather than "no data" (and `rate()` has a starting point).
fn zero() {
    for name in [
        USAGE_ROWS_SPILLED,
        USAGE_ROWS_REPLAYED,
        USAGE_QUEUE_FULL,
        USAGE_ROWS_DROPPED,
        SESSION_TURNS,
        SESSION_STORE_ERRORS,
        SESSIONS_EVICTED,
        LIMITER_REDIS_ERRORS,
        CACHE_EVICTIONS,
        CACHE_REDIS_ERRORS,
    ] {
        counter!(name).increment(0);
    }
    gauge!(CACHE_BYTES).set(0.0);
    gauge!(USAGE_QUEUE_DEPTH).set(0.0);
    gauge!(REQUESTS_IN_FLIGHT).set(0.0);
}

/// The labelled series whose label values the config and catalog fix, at 0 (see [`zero`]):
/// every provider's stream endings and upstream failures, every limited key's refusals. Called
/// for every table built; a series that exists already keeps its count.
pub fn known_series<'a>(
    providers: impl Iterator<Item = &'a str>,
    limited_keys: impl Iterator<Item = &'a str>,
) {
    for provider in providers {
        for outcome in ["completed", "failed", "cancelled"] {
            counter!(STREAMS_ENDED, "provider" => provider.to_owned(), "outcome" => outcome)
                .increment(0);
        }
        // What `upstream_failure` counts: the retryable kinds.
        for reason in [
            "upstream_rate_limited",
            "upstream_auth",
            "upstream_failed",
            "upstream_unreachable",
            "upstream_timeout",
        ] {
            counter!(UPSTREAM_FAILURES, "provider" => provider.to_owned(), "reason" => reason)
                .increment(0);
        }
    }
    for key in limited_keys {
        counter!(RATE_LIMITED, "key" => key.to_owned()).increment(0);
    }
}

/// The usage writer's series for its sink, at 0.
pub fn sink_series(sink: &'static str) {
    counter!(USAGE_ROWS_WRITTEN, "sink" => sink).increment(0);
    // Registered: its buckets are exported at 0 until the first write.
    drop(histogram!(USAGE_WRITE_SECONDS));
}

fn describe() {
    describe_counter!(
        REQUESTS_TOTAL,
        "Client requests by provider, model and status class (2xx, 4xx, 5xx)."
    );
    describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from request start to the end of the response."
    );
    describe_histogram!(
        TTFT,
        metrics::Unit::Seconds,
        "Streams: time from request start to the first event sent to the client."
    );
    describe_counter!(
        TOKENS_USED,
        "Tokens reported by upstreams, by type (input, output)."
    );
    describe_gauge!(
        UPSTREAM_HEALTHY,
        "1 when the provider's probes pass and at least one of its routes is not ejected."
    );
    describe_counter!(
        UPSTREAM_FAILURES,
        "Failed upstream attempts (each counts toward ejection), by reason."
    );
    describe_gauge!(REQUESTS_IN_FLIGHT, "Requests being handled right now.");
    describe_counter!(
        COST,
        "Cost of the tokens upstreams reported, at the model's prices, in nano-dollars (1e-9 USD)."
    );
    describe_counter!(SPANS_EXPORTED, "Trace spans the OTLP collector accepted.");
    describe_counter!(
        SPANS_DROPPED,
        "Trace spans dropped: the export queue was full (reason=queue_full) or the collector failed (reason=export_failed)."
    );
    describe_counter!(
        EJECTIONS,
        "Routes ejected after consecutive failures (passive health)."
    );
    describe_gauge!(USAGE_QUEUE_DEPTH, "Usage records waiting for the writer.");
    describe_counter!(USAGE_ROWS_WRITTEN, "Usage rows written, by sink.");
    describe_counter!(
        USAGE_ROWS_SPILLED,
        "Usage rows written to the spill file because the database was unavailable."
    );
    describe_counter!(
        USAGE_ROWS_REPLAYED,
        "Spilled usage rows replayed into the database."
    );
    describe_counter!(
        USAGE_QUEUE_FULL,
        "Usage records that found the queue full (they wait in the bounded overflow)."
    );
    describe_counter!(
        USAGE_ROWS_DROPPED,
        "Usage rows dropped because the writer's queue and its overflow were both full."
    );
    describe_histogram!(
        USAGE_WRITE_SECONDS,
        metrics::Unit::Seconds,
        "Time to write one batch of usage rows."
    );
    describe_counter!(
        SESSION_TURNS,
        "Session turns stored (messages and reply appended)."
    );
    describe_counter!(
        SESSION_COMPRESSIONS,
        "Session compressions by outcome: summarised, or dropped (the summary failed; the oldest turns were dropped to fit)."
    );
    describe_counter!(
        SESSION_STORE_ERRORS,
        "Session store calls that failed or timed out (the request got a 503)."
    );
    describe_counter!(
        SESSIONS_EVICTED,
        "Sessions evicted from the memory store at its max_sessions bound."
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Result-cache lookups by model and result: hit, miss, bypass (not read: no-store, a session, the store unreachable)."
    );
    describe_gauge!(
        CACHE_BYTES,
        "Bytes the memory result cache holds (entries, keys and bookkeeping)."
    );
    describe_counter!(
        CACHE_EVICTIONS,
        "Result-cache entries evicted from the memory store at its max_bytes bound."
    );
    describe_counter!(
        CACHE_REDIS_ERRORS,
        "Result-cache Redis calls that failed or timed out (the request went on as a bypass)."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused by a key's rpm/tpm limit, by key name."
    );
    describe_counter!(
        LIMITER_REDIS_ERRORS,
        "Rate-limit checks Redis could not answer (then limits.on_redis_error applies)."
    );
    describe_counter!(
        STREAMS_ENDED,
        "Streams by how they ended: completed, failed (error event sent), cancelled (client left)."
    );
}

pub fn upstream_failure(provider: &str, reason: &'static str) {
    counter!(UPSTREAM_FAILURES, "provider" => provider.to_owned(), "reason" => reason).increment(1);
}

pub fn stream_ended(provider: &str, how: &'static str) {
    counter!(STREAMS_ENDED, "provider" => provider.to_owned(), "outcome" => how).increment(1);
}

pub fn set_upstream_healthy(provider: &str, healthy: bool) {
    gauge!(UPSTREAM_HEALTHY, "provider" => provider.to_owned()).set(if healthy {
        1.0
    } else {
        0.0
    });
}

/// `gateway_requests_total` for requests that never reached a route (bad input, auth, …): the
/// model label is `none`, as the client's string must not become a label.
pub fn request_without_route(status: u16) {
    counter!(REQUESTS_TOTAL, "provider" => "none", "model" => "none", "status" => status_class(status)).increment(1);
}

/// Registered once: this is called twice on every request.
pub fn in_flight(delta: f64) {
    static GAUGE: OnceLock<metrics::Gauge> = OnceLock::new();
    GAUGE
        .get_or_init(|| gauge!(REQUESTS_IN_FLIGHT))
        .increment(delta);
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

pub const USAGE_QUEUE_DEPTH: &str = "gateway_usage_queue_depth";
pub const USAGE_ROWS_WRITTEN: &str = "gateway_usage_rows_written_total";
pub const USAGE_ROWS_SPILLED: &str = "gateway_usage_rows_spilled_total";
pub const USAGE_ROWS_REPLAYED: &str = "gateway_usage_rows_replayed_total";
pub const USAGE_QUEUE_FULL: &str = "gateway_usage_queue_full_total";
pub const USAGE_ROWS_DROPPED: &str = "gateway_usage_rows_dropped_total";
pub const USAGE_WRITE_SECONDS: &str = "gateway_usage_write_seconds";

pub const SESSION_TURNS: &str = "gateway_session_turns_total";
pub const SESSION_COMPRESSIONS: &str = "gateway_session_compressions_total";
pub const SESSION_STORE_ERRORS: &str = "gateway_session_store_errors_total";
pub const SESSIONS_EVICTED: &str = "gateway_sessions_evicted_total";

pub const CACHE_LOOKUPS: &str = "gateway_cache_lookups_total";
pub const CACHE_BYTES: &str = "gateway_cache_stored_bytes";
pub const CACHE_EVICTIONS: &str = "gateway_cache_evictions_total";
pub const CACHE_REDIS_ERRORS: &str = "gateway_cache_redis_errors_total";

pub const RATE_LIMITED: &str = "gateway_rate_limited_total";
pub const LIMITER_REDIS_ERRORS: &str = "gateway_limiter_redis_errors_total";

pub fn rate_limited(key: &str) {
    counter!(RATE_LIMITED, "key" => key.to_owned()).increment(1);
}

pub fn span_dropped() {
    counter!(SPANS_DROPPED, "reason" => "queue_full").increment(1);
}

pub fn spans_failed(n: usize) {
    counter!(SPANS_DROPPED, "reason" => "export_failed").increment(n as u64);
}

pub fn spans_exported(n: usize) {
    counter!(SPANS_EXPORTED).increment(n as u64);
}

pub fn limiter_redis_error() {
    counter!(LIMITER_REDIS_ERRORS).increment(1);
}

pub fn session_turn() {
    counter!(SESSION_TURNS).increment(1);
}

pub fn session_compressed(outcome: &'static str) {
    counter!(SESSION_COMPRESSIONS, "outcome" => outcome).increment(1);
}

pub fn session_store_error() {
    counter!(SESSION_STORE_ERRORS).increment(1);
}

pub fn cache_bytes(bytes: usize) {
    gauge!(CACHE_BYTES).set(bytes as f64);
}

pub fn cache_redis_error() {
    counter!(CACHE_REDIS_ERRORS).increment(1);
}

pub fn cache_evicted() {
    counter!(CACHE_EVICTIONS).increment(1);
}

pub fn session_evicted() {
    counter!(SESSIONS_EVICTED).increment(1);
}

pub fn usage_queue_depth(depth: usize) {
    gauge!(USAGE_QUEUE_DEPTH).set(depth as f64);
}

pub fn usage_written(sink: &'static str, rows: usize) {
    counter!(USAGE_ROWS_WRITTEN, "sink" => sink).increment(rows as u64);
}

pub fn usage_spilled(rows: usize) {
    counter!(USAGE_ROWS_SPILLED).increment(rows as u64);
}

pub fn usage_replayed(rows: usize) {
    counter!(USAGE_ROWS_REPLAYED).increment(rows as u64);
}

pub fn usage_queue_full() {
    counter!(USAGE_QUEUE_FULL).increment(1);
}

pub fn usage_dropped() {
    counter!(USAGE_ROWS_DROPPED).increment(1);
}

pub fn usage_write_seconds(elapsed: Duration) {
    histogram!(USAGE_WRITE_SECONDS).record(elapsed.as_secs_f64());
}

/// Pre-registered handles for one (provider, model) pair.
/// A model's own series, registered once when its entry is built: result-cache lookups by
/// result, and the requests the cache answered (as `provider="cache"` in the request series).
pub struct ModelMetrics {
    hit: Counter,
    miss: Counter,
    bypass: Counter,
    cached: Counter,
    cached_duration: Histogram,
}

/// What a result-cache lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
    Bypass,
}

// === impl ModelMetrics ===

impl ModelMetrics {
    pub fn new(model: &str) -> Self {
        let lookups = |result: &'static str| counter!(CACHE_LOOKUPS, "model" => model.to_owned(), "result" => result);
        Self {
            hit: lookups("hit"),
            miss: lookups("miss"),
            bypass: lookups("bypass"),
            cached: counter!(REQUESTS_TOTAL, "provider" => "cache", "model" => model.to_owned(), "status" => "2xx"),
            cached_duration: histogram!(REQUEST_DURATION, "provider" => "cache", "model" => model.to_owned()),
        }
    }

    pub fn cache_lookup(&self, found: Lookup) {
        match found {
            Lookup::Hit => &self.hit,
            Lookup::Miss => &self.miss,
            Lookup::Bypass => &self.bypass,
        }
        .increment(1);
    }

    /// A request the result cache answered.
    pub fn cached(&self, duration: Duration) {
        self.cached.increment(1);
        self.cached_duration.record(duration.as_secs_f64());
    }
}

pub struct RouteMetrics {
    ok: Counter,
    client_error: Counter,
    server_error: Counter,
    duration: Histogram,
    ttft: Histogram,
    input_tokens: Counter,
    output_tokens: Counter,
    cost: Counter,
    ejections: Counter,
    /// The model's prices in nano-dollars per million tokens (input, output).
    prices: (u64, u64),
}

// === impl RouteMetrics ===

impl RouteMetrics {
    /// `prices`: the model's (input, output) prices in nano-dollars per million tokens.
    pub fn new(provider: &str, model: &str, prices: (u64, u64)) -> Self {
        let labels = |status: &'static str| counter!(REQUESTS_TOTAL, "provider" => provider.to_owned(), "model" => model.to_owned(), "status" => status);
        let tokens = |kind: &'static str| counter!(TOKENS_USED, "provider" => provider.to_owned(), "model" => model.to_owned(), "type" => kind);
        Self {
            ok: labels("2xx"),
            client_error: labels("4xx"),
            server_error: labels("5xx"),
            duration: histogram!(REQUEST_DURATION, "provider" => provider.to_owned(), "model" => model.to_owned()),
            ttft: histogram!(TTFT, "provider" => provider.to_owned(), "model" => model.to_owned()),
            input_tokens: tokens("input"),
            output_tokens: tokens("output"),
            cost: counter!(COST, "provider" => provider.to_owned(), "model" => model.to_owned()),
            ejections: counter!(EJECTIONS, "provider" => provider.to_owned(), "model" => model.to_owned()),
            prices,
        }
    }

    pub fn ejected(&self) {
        self.ejections.increment(1);
    }

    pub fn request(&self, status: u16, duration: Duration) {
        match status_class(status) {
            "2xx" => self.ok.increment(1),
            "4xx" => self.client_error.increment(1),
            _ => self.server_error.increment(1),
        }
        self.duration.record(duration.as_secs_f64());
    }

    pub fn ttft(&self, elapsed: Duration) {
        self.ttft.record(elapsed.as_secs_f64());
    }

    /// Tokens the upstream reported, and their cost: tokens × nano-dollars per million tokens
    /// / 1e6 is exact in nano-dollars for any price with up to 3 decimals per million tokens.
    pub fn tokens(&self, input: u64, output: u64) {
        self.input_tokens.increment(input);
        self.output_tokens.increment(output);
        let femto = u128::from(input) * u128::from(self.prices.0)
            + u128::from(output) * u128::from(self.prices.1);
        self.cost
            .increment(((femto + 500_000) / 1_000_000).min(u128::from(u64::MAX)) as u64);
    }
}
