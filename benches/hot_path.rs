//! Micro-benchmarks of the per-request work the gateway adds on top of forwarding bytes:
//! reading the few fields it needs and splicing `model`, relaying an SSE stream frame by frame,
//! picking a route, checking a key, rendering an error. `cargo bench --bench hot_path`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;
use switchyard::config::KeyConfig;
use switchyard::error::{ErrorKind, GatewayError};
use switchyard::limits::keys::KeyStore;
use switchyard::providers::dashscope::stream::StreamRelay as DashScopeRelay;
use switchyard::providers::openai::{StreamRelay, splice};
use switchyard::providers::{ResponseContext, dashscope};
use switchyard::request::{ChatRequest, Form};
use switchyard::responses::request::{ResponsesRequest, to_messages};
use switchyard::responses::response::Head;
use switchyard::responses::stream::EventStream;
use switchyard::routing::wrr::SmoothWrr;
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
    // A long prompt: what the gateway reads grows with the body only through the scans.
    let long = serde_json::json!({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "All work and no play makes Jack a dull boy. ".repeat(1_500)}
    ]})
    .to_string();
    let long = Bytes::from(long);
    let mut group = c.benchmark_group("chat: parse fields, 66 KB prompt");
    group.throughput(Throughput::Bytes(long.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| black_box(ChatRequest::parse(black_box(long.clone())).unwrap()))
    });
    group.finish();
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
            let mut relay = StreamRelay::new(true);
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

    // Keys are found by the digest of what the caller sent: the same cost for 10 or 100,000.
    for count in [10, 100_000] {
        let keys: Vec<KeyConfig> = (0..count)
            .map(|i| KeyConfig::plain(format!("team-{i}"), format!("sk-team-{i}-0123456789abcdef")))
            .collect();
        let store = KeyStore::build(&keys).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            "Bearer sk-team-7-0123456789abcdef".parse().unwrap(),
        );
        c.bench_function(&format!("authenticate ({count} keys)"), |b| {
            b.iter(|| black_box(store.authenticate(&headers).unwrap()))
        });
    }

    let error = GatewayError::new(
        ErrorKind::ModelNotFound,
        "The model `x` does not exist or you do not have access to it.",
    );
    c.bench_function("render error envelope", |b| {
        b.iter(|| black_box(error.to_response()))
    });
}

/// DashScope: what a native event costs between arriving and leaving as an OpenAI chunk. The
/// relay forwards each event as soon as it is decoded, so this is the latency it adds.
fn dashscope_translation(c: &mut Criterion) {
    let event = |i: usize, text: &str, finish: &str| {
        format!(
            "id:{i}\nevent:result\n:HTTP_STATUS/200\ndata:{{\"output\":{{\"choices\":[{{\"message\":{{\"content\":\"{text}\",\"role\":\"assistant\"}},\"finish_reason\":\"{finish}\"}}]}},\"usage\":{{\"total_tokens\":{},\"input_tokens\":8,\"output_tokens\":{i}}},\"request_id\":\"d272255f-82d7-9cc7-93c5-17ff77024349\"}}\n\n",
            8 + i
        )
    };
    let first = event(1, "Hello", "null");
    let middle = event(2, " world", "null");
    let ctx = ResponseContext {
        messages: None,
        client_model: "qwen-plus".into(),
        include_usage: true,
        created: 1_700_000_000,
        form: Form::Chat,
    };
    c.bench_function(
        "dashscope: one native event -> OpenAI chunk (decode + translate)",
        |b| {
            b.iter_batched(
                || {
                    let mut relay = DashScopeRelay::new(ctx.clone(), "qwen".into());
                    relay.on_frame(Bytes::from(first.clone())).unwrap();
                    (
                        relay,
                        SseDecoder::new(1 << 20).with_data_line_ends_frame(true),
                    )
                },
                |(mut relay, mut decoder)| {
                    decoder.push(middle.as_bytes());
                    let frame = decoder.next_frame().unwrap().unwrap();
                    black_box(relay.on_frame(frame).unwrap())
                },
                BatchSize::SmallInput,
            )
        },
    );
    let native = br#"{"output":{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":"1+1 equals 2."}}]},"usage":{"total_tokens":47,"output_tokens":39,"input_tokens":8},"request_id":"e764bfe3-c0b7-97a0-ae57-cd99e1580960"}"#;
    c.bench_function("dashscope: non-stream answer -> chat.completion", |b| {
        b.iter(|| black_box(dashscope::parse_chat_response(native, &ctx).unwrap()))
    });
    let request = CHAT;
    c.bench_function("dashscope: OpenAI request -> native request", |b| {
        b.iter(|| black_box(dashscope::build_chat(request, "qwen-plus", true).unwrap()))
    });
}

/// The Responses API's own work: a request into a chat request, and one chat chunk into its
/// events (what a streamed delta waits for: nothing is buffered beyond it).
fn responses_translation(c: &mut Criterion) {
    let body = br#"{"model":"gpt-4o-mini","instructions":"You are a helpful assistant.","input":[{"role":"user","content":"Hello! Please reply with a short greeting."}],"max_output_tokens":16,"temperature":0,"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]}"#;
    c.bench_function("responses: request -> chat body", |b| {
        b.iter(|| {
            let req = ResponsesRequest::parse(black_box(body)).unwrap();
            let messages = to_messages(Vec::new(), &req.input).unwrap();
            black_box(req.chat_body(messages))
        })
    });
    let req = ResponsesRequest::parse(body).unwrap();
    let chunk = br#"{"id":"chatcmpl-mock0001","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" greeting"},"logprobs":null,"finish_reason":null}]}"#;
    c.bench_function("responses: one chat chunk -> its events", |b| {
        let mut events = EventStream::new(Head::new(req.model.clone(), req.echo.clone()));
        let mut out = Vec::with_capacity(4096);
        events.start(&mut out);
        events.on_chunk(chunk, &mut out);
        b.iter(|| {
            out.clear();
            events.on_chunk(black_box(chunk), &mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(
    benches,
    request_path,
    stream_relay,
    routing_and_auth,
    dashscope_translation,
    responses_translation
);
criterion_main!(benches);
