//! Micro-benchmarks of the per-request work the gateway adds on top of forwarding bytes:
//! reading the few fields it needs and splicing `model`, relaying an SSE stream frame by frame,
//! picking a route, checking a key, rendering an error. `cargo bench --bench hot_path`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;
use switchyard::config::KeyConfig;
use switchyard::error::{ErrorKind, GatewayError};
use switchyard::limits::keys::KeyStore;
use switchyard::providers::openai::{StreamRelay, splice};
use switchyard::request::ChatRequest;
use switchyard::routing::wrr::SmoothWrr;
use switchyard::secret::Secret;
use switchyard::sse::SseDecoder;

const CHAT: &[u8] = br#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello! Please reply with a short greeting."}],"max_tokens":16,"temperature":0}"#;

/// The bench rig's streamed answer: 12 chunks, a usage chunk and `[DONE]`.
fn stream_body() -> Vec<u8> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-mock0001\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_mock\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let mut out = chunk(r#"{"role":"assistant","content":""}"#, "null");
    for w in [
        "Hello",
        "!",
        " This",
        " is",
        " a",
        " fixed",
        " streamed",
        " response",
        ".",
    ] {
        out += &chunk(&format!(r#"{{"content":"{w}"}}"#), "null");
    }
    out += &chunk("{}", "\"stop\"");
    out += "data: {\"id\":\"chatcmpl-mock0001\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":9,\"total_tokens\":21}}\n\ndata: [DONE]\n\n";
    out.into_bytes()
}

fn request_path(c: &mut Criterion) {
    let body = Bytes::from_static(CHAT);
    c.bench_function("chat: parse fields + splice model", |b| {
        b.iter(|| {
            let req = ChatRequest::parse(black_box(body.clone())).unwrap();
            black_box(splice(
                &req.body,
                &req.model_span,
                br#""gpt-4o-mini-2024-07-18""#,
            ))
        })
    });
    c.bench_function("chat: parse fields, same model (no copy)", |b| {
        b.iter(|| {
            let req = ChatRequest::parse(black_box(body.clone())).unwrap();
            black_box(splice(&req.body, &req.model_span, br#""gpt-4o-mini""#))
        })
    });
}

fn stream_relay(c: &mut Criterion) {
    let stream = stream_body();
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    // As upstreams deliver it: one TCP read per event.
    let reads: Vec<&[u8]> = stream.split_inclusive(|&b| b == b'\n').collect();
    group.bench_function("decode + relay 12-event stream", |b| {
        b.iter(|| {
            let mut decoder = SseDecoder::new(1 << 20);
            let mut relay = StreamRelay::default();
            for read in &reads {
                decoder.push(read);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    black_box(relay.on_frame(frame).unwrap());
                }
            }
            black_box(relay.usage)
        })
    });
    group.finish();
}

fn routing_and_auth(c: &mut Criterion) {
    let mut wrr = SmoothWrr::new(3);
    c.bench_function("swrr pick (3 routes)", |b| {
        b.iter(|| black_box(wrr.pick(&[5, 1, 1], |_| true)))
    });

    let keys: Vec<KeyConfig> = (0..10)
        .map(|i| KeyConfig {
            name: format!("team-{i}"),
            key: Some(Secret::new(format!("sk-team-{i}-0123456789abcdef"))),
            key_sha256: None,
            rpm: None,
            tpm: None,
            admin: false,
            models: None,
        })
        .collect();
    let store = KeyStore::build(&keys).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        "Bearer sk-team-7-0123456789abcdef".parse().unwrap(),
    );
    c.bench_function("authenticate (10 keys, constant time)", |b| {
        b.iter(|| black_box(store.authenticate(&headers).unwrap()))
    });

    let error = GatewayError::new(
        ErrorKind::ModelNotFound,
        "The model `x` does not exist or you do not have access to it.",
    );
    c.bench_function("render error envelope", |b| {
        b.iter(|| black_box(error.to_response()))
    });
}

criterion_group!(benches, request_path, stream_relay, routing_and_auth);
criterion_main!(benches);
