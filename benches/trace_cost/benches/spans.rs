//! One request's spans on the request path: a server span with the gateway's 14 attributes and
//! one attempt span with 5, started, filled and ended. Both sides hand finished spans to a
//! queue another thread drains (the gateway's exporter; the SDK's batch processor with an
//! exporter that drops them), so what is timed is what a worker pays per request.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use switchyard::trace::{Active, Kind, Tracer, Value};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn gateway(c: &mut Criterion) {
    let (tracer, mut spans) = Tracer::new(1.0, 1 << 16);
    std::thread::spawn(move || while spans.blocking_recv().is_some() {});
    c.bench_function("gateway tracer: server + attempt span", |b| {
        b.iter(|| {
            let server = Active::server(&tracer, None, "POST /v1/chat/completions".into()).unwrap();
            server.set("http.request.method", Value::Static("POST"));
            server.set("http.route", Value::Str("/v1/chat/completions".into()));
            server.set("url.path", Value::Str("/v1/chat/completions".into()));
            server.set("gen_ai.operation.name", Value::Static("chat"));
            server.set_str("gen_ai.request.model", "gpt-4o-mini");
            server.set_str("switchyard.key", "team-a");
            let attempt = server.child("chat gpt-4o-mini", Kind::Client);
            attempt.set("gen_ai.system", Value::Static("openai"));
            attempt.set("gen_ai.operation.name", Value::Static("chat"));
            attempt.set_str("gen_ai.request.model", "gpt-4o-mini");
            attempt.set_str("switchyard.provider", "openai");
            attempt.set_int("switchyard.attempt", 1);
            black_box(attempt.traceparent());
            attempt.finish(None);
            server.set_int("switchyard.attempts", 1);
            server.set("gen_ai.system", Value::Static("openai"));
            server.set_str("gen_ai.response.model", "gpt-4o-mini");
            server.set_str("switchyard.provider", "openai");
            server.set_int("gen_ai.usage.input_tokens", 19);
            server.set_int("gen_ai.usage.output_tokens", 10);
            server.set_int("http.response.status_code", 200);
            server.finish(None);
        })
    });
}

fn opentelemetry_bridge(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    let _default = tracing::subscriber::set_default(subscriber);
    c.bench_function("tracing-opentelemetry: server + attempt span", |b| {
        b.iter(|| {
            let server = tracing::info_span!(
                "POST /v1/chat/completions",
                otel.kind = "server",
                http.request.method = "POST",
                http.route = "/v1/chat/completions",
                url.path = "/v1/chat/completions",
                gen_ai.operation.name = "chat",
                gen_ai.request.model = "gpt-4o-mini",
                switchyard.key = "team-a",
                switchyard.attempts = tracing::field::Empty,
                gen_ai.system = tracing::field::Empty,
                gen_ai.response.model = tracing::field::Empty,
                switchyard.provider = tracing::field::Empty,
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
                http.response.status_code = tracing::field::Empty,
            );
            {
                let attempt = tracing::info_span!(
                    parent: &server,
                    "chat gpt-4o-mini",
                    otel.kind = "client",
                    gen_ai.system = "openai",
                    gen_ai.operation.name = "chat",
                    gen_ai.request.model = "gpt-4o-mini",
                    switchyard.provider = "openai",
                    switchyard.attempt = 1,
                );
                black_box(&attempt);
            }
            server.record("switchyard.attempts", 1);
            server.record("gen_ai.system", "openai");
            server.record("gen_ai.response.model", "gpt-4o-mini");
            server.record("switchyard.provider", "openai");
            server.record("gen_ai.usage.input_tokens", 19);
            server.record("gen_ai.usage.output_tokens", 10);
            server.record("http.response.status_code", 200);
            drop(server);
        })
    });
}

criterion_group!(benches, gateway, opentelemetry_bridge);
criterion_main!(benches);
