//! Golden tests of every translation, on the recorded exchanges quoted in PROTOCOLS.md §5
//! (cnblogs/dashscope-sdk RawHttpData, Model Studio docs).

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::stream::StreamRelay;
use super::*;
use crate::error::ErrorKind;
use crate::providers::Relayed;
use crate::request::Form;
use crate::sse::SseDecoder;

fn ctx(include_usage: bool) -> ResponseContext {
    ResponseContext {
        messages: None,
        client_model: "qwen-alias".into(),
        include_usage,
        created: 1_700_000_000,
        form: Form::Chat,
    }
}

#[test]
fn chat_request_becomes_native() {
    let openai = json!({
        "model": "qwen-alias",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in"}, {"type": "text", "text": "Hangzhou?"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "parallel_tool_calls": true, "response_format": {"type": "json_object"},
        "max_completion_tokens": 256, "max_tokens": 999, "top_p": 1.0, "temperature": 0.7, "seed": 42, "stop": ["\n\n"], "n": 1,
        "frequency_penalty": 0.5, "logit_bias": {"1": 2}, "user": "u-1", "stream_options": {"include_usage": true},
        "enable_thinking": false, "enable_search": true
    });
    let native: Value = serde_json::from_slice(
        &build_chat(openai.to_string().as_bytes(), "qwen-plus", true).unwrap(),
    )
    .unwrap();
    assert_eq!(
        native,
        json!({
            "model": "qwen-plus",
            "input": {"messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in\nHangzhou?"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
            ]},
            "parameters": {
                "result_format": "message", "incremental_output": true, "max_tokens": 256, "top_p": 0.999,
                "temperature": 0.7, "seed": 42, "stop": ["\n\n"], "n": 1,
                "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
                "tool_choice": "auto", "parallel_tool_calls": true, "response_format": {"type": "json_object"},
                "enable_thinking": false, "enable_search": true
            }
        })
    );
}

#[test]
fn system_messages_after_the_first_turn_join_the_leading_one() {
    let chat = json!({"model": "m", "messages": [
        {"role": "system", "content": "You are Claude Code."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "again"},
    ]});
    let native: Value = serde_json::from_slice(
        &build_chat(chat.to_string().as_bytes(), "qwen-plus", false).unwrap(),
    )
    .unwrap();
    assert_eq!(
        native["input"]["messages"],
        json!([
            {"role": "system", "content": "You are Claude Code.\n\nBe brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ])
    );
    // Without a leading one, the later system message becomes it.
    let chat = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"}, {"role": "system", "content": "Be brief."}]});
    let native: Value = serde_json::from_slice(
        &build_chat(chat.to_string().as_bytes(), "qwen-plus", false).unwrap(),
    )
    .unwrap();
    assert_eq!(
        native["input"]["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );
}

#[test]
fn image_parts_are_refused_not_dropped() {
    let openai = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]});
    let e = build_chat(openai.to_string().as_bytes(), "qwen-plus", false).unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn a_body_too_costly_to_translate_is_refused_before_it_is_read_as_a_tree() {
    let zeros = vec!["0"; 1_000_000].join(",");
    let body =
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x","x":[{zeros}]}}]}}"#);
    let e = build_chat(body.as_bytes(), "qwen-plus", false).unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(e.message().contains("too many JSON values"), "{e}");
}

#[test]
fn non_stream_answer_becomes_a_chat_completion() {
    // CNB single-generation-message-nosse
    let native = br#"{"output":{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":"1+1 equals 2."}}]},"usage":{"total_tokens":47,"output_tokens":39,"input_tokens":8},"request_id":"e764bfe3-c0b7-97a0-ae57-cd99e1580960"}"#;
    let (body, usage) = parse_chat_response(native, &ctx(false)).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        json!({
            "id": "chatcmpl-e764bfe3-c0b7-97a0-ae57-cd99e1580960", "object": "chat.completion", "created": 1_700_000_000, "model": "qwen-alias",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "1+1 equals 2.", "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 8, "completion_tokens": 39, "total_tokens": 47}
        })
    );
    assert_eq!(usage, Some(Usage::tokens(8, 39)));
    // The context cache's hits and a thinking model's reasoning, as the native usage says them.
    let cached = br#"{"output":{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":"2"}}]},"usage":{"input_tokens":1200,"output_tokens":40,"prompt_tokens_details":{"cached_tokens":1024},"output_tokens_details":{"reasoning_tokens":30}},"request_id":"r"}"#;
    let (_, usage) = parse_chat_response(cached, &ctx(false)).unwrap();
    assert_eq!(
        usage,
        Some(Usage {
            cached_input_tokens: 1024,
            reasoning_tokens: 30,
            ..Usage::tokens(1200, 40)
        })
    );
}

#[test]
fn forced_tool_call_with_stop_becomes_tool_calls() {
    // CNB single-generation-message-with-tools-nosse
    let native = br#"{"output":{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_current_weather","arguments":"{\"location\": \"Hangzhou\"}"},"index":0,"id":"call_cec4c19d27624537b583af","type":"function"}]}}]},"usage":{"total_tokens":219,"output_tokens":8,"input_tokens":211,"prompt_tokens_details":{"cached_tokens":64}},"request_id":"67300049"}"#;
    let (body, _) = parse_chat_response(native, &ctx(false)).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "call_cec4c19d27624537b583af", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Hangzhou\"}"}}])
    );
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 64);
}

#[test]
fn result_format_text_answers_are_understood() {
    let native = br#"{"output":{"finish_reason":"stop","text":"1+1=2"},"usage":{"total_tokens":30,"output_tokens":14,"input_tokens":16},"request_id":"7e3d"}"#;
    let (body, _) = parse_chat_response(native, &ctx(false)).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "1+1=2");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

/// Runs native SSE bytes through the line-mode decoder and the relay, like `RelayStream`.
fn relay_all(
    native: &[u8],
    include_usage: bool,
    split: usize,
) -> Result<(Vec<Value>, bool), crate::error::GatewayError> {
    let mut decoder = SseDecoder::new(1 << 20).with_data_line_ends_frame(true);
    let mut relay = StreamRelay::new(ctx(include_usage), "qwen".into());
    let mut out = Vec::new();
    let mut done = false;
    let (a, b) = native.split_at(split);
    for part in [a, b] {
        decoder.push(part);
        while let Some(frame) = decoder.next_frame().unwrap() {
            let bytes = match relay.on_frame(frame)? {
                Relayed::Forward(bytes) => bytes,
                Relayed::Done(bytes) => {
                    done = true;
                    bytes
                }
            };
            out.extend_from_slice(&bytes);
        }
    }
    let text = String::from_utf8(out).unwrap();
    let chunks = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| {
            if d == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(d).unwrap()
            }
        })
        .collect();
    Ok((chunks, done))
}

fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

const INCREMENTAL: &[u8] = b"id:1\nevent:result\n:HTTP_STATUS/200\ndata:{\"output\":{\"choices\":[{\"message\":{\"content\":\"1\",\"role\":\"assistant\"},\"finish_reason\":\"null\"}]},\"usage\":{\"total_tokens\":9,\"input_tokens\":8,\"output_tokens\":1},\"request_id\":\"d272255f\"}\n\n\
id:2\nevent:result\n:HTTP_STATUS/200\ndata:{\"output\":{\"choices\":[{\"message\":{\"content\":\"+1\",\"role\":\"assistant\"},\"finish_reason\":\"null\"}]},\"usage\":{\"total_tokens\":10,\"input_tokens\":8,\"output_tokens\":2},\"request_id\":\"d272255f\"}\n\n\
id:3\nevent:result\n:HTTP_STATUS/200\ndata:{\"output\":{\"choices\":[{\"message\":{\"content\":\"=2\",\"role\":\"assistant\"},\"finish_reason\":\"null\"}]},\"usage\":{\"total_tokens\":11,\"input_tokens\":8,\"output_tokens\":3},\"request_id\":\"d272255f\"}\n\n\
id:4\nevent:result\n:HTTP_STATUS/200\ndata:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"role\":\"assistant\"},\"finish_reason\":\"stop\"}]},\"usage\":{\"total_tokens\":12,\"input_tokens\":8,\"output_tokens\":4},\"request_id\":\"d272255f\"}\n\n";

#[test]
fn incremental_stream_becomes_openai_chunks_at_every_split() {
    let (whole, done) = relay_all(INCREMENTAL, true, 0).unwrap();
    assert!(done);
    assert_eq!(
        whole[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(content(&whole), "1+1=2");
    let finish = &whole[whole.len() - 3];
    assert_eq!(
        finish["choices"][0],
        json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"})
    );
    let usage = &whole[whole.len() - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12})
    );
    assert_eq!(whole.last().unwrap(), &json!("[DONE]"));
    for chunk in &whole[..whole.len() - 1] {
        assert_eq!(chunk["id"], "chatcmpl-d272255f");
        assert_eq!(chunk["model"], "qwen-alias");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["created"], 1_700_000_000);
    }
    for split in 0..=INCREMENTAL.len() {
        assert_eq!(
            relay_all(INCREMENTAL, true, split).unwrap().0,
            whole,
            "split at {split}"
        );
    }
    let (without_usage, _) = relay_all(INCREMENTAL, false, 0).unwrap();
    assert!(
        without_usage.iter().all(|c| c.get("usage").is_none()),
        "no usage chunk unless asked"
    );
}

#[test]
fn events_without_blank_lines_are_still_events() {
    let squashed: Vec<u8> = String::from_utf8(INCREMENTAL.to_vec())
        .unwrap()
        .replace("\n\n", "\n")
        .into_bytes();
    let (chunks, done) = relay_all(&squashed, false, 0).unwrap();
    assert!(done);
    assert_eq!(content(&chunks), "1+1=2");
}

#[test]
fn cumulative_stream_never_repeats_text() {
    let event = |text: &str, finish: &str| {
        format!(
            "id:1\nevent:result\n:HTTP_STATUS/200\ndata:{{\"output\":{{\"choices\":[{{\"message\":{{\"content\":\"{text}\",\"role\":\"assistant\"}},\"finish_reason\":\"{finish}\"}}]}},\"usage\":{{\"input_tokens\":8,\"output_tokens\":4}},\"request_id\":\"r\"}}\n\n"
        )
    };
    let native: String = [
        event("1", "null"),
        event("1+", "null"),
        event("1+1", "null"),
        event("1+1=2", "null"),
        event("1+1=2", "stop"),
    ]
    .concat();
    let (chunks, done) = relay_all(native.as_bytes(), false, 0).unwrap();
    assert!(done);
    assert_eq!(content(&chunks), "1+1=2", "deltas must never repeat text");
}

#[test]
fn parallel_tool_call_fragments_keep_index_and_name_only_the_first() {
    // CNB single-generation-message-with-parallel-tools-sse (abridged)
    let native = concat!(
        "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"tool_calls\":[{\"index\":0,\"id\":\"call_29a8\",\"type\":\"function\",\"function\":{\"name\":\"get_current_weather\",\"arguments\":\"{\\\"location\\\": \\\"\"}}],\"role\":\"assistant\"},\"index\":0,\"finish_reason\":\"null\"}]},\"usage\":{\"input_tokens\":250,\"output_tokens\":10},\"request_id\":\"98b7\"}\n",
        "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"tool_calls\":[{\"index\":0,\"id\":\"\",\"type\":\"function\",\"function\":{\"arguments\":\"Hangzhou\\\"}\"}}],\"role\":\"assistant\"},\"index\":0,\"finish_reason\":\"null\"}]},\"usage\":{\"input_tokens\":250,\"output_tokens\":20},\"request_id\":\"98b7\"}\n",
        "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"tool_calls\":[{\"index\":1,\"id\":\"call_026e\",\"type\":\"function\",\"function\":{\"name\":\"get_current_weather\",\"arguments\":\"{\\\"location\\\":\"}}],\"role\":\"assistant\"},\"index\":0,\"finish_reason\":\"null\"}]},\"usage\":{\"input_tokens\":250,\"output_tokens\":30},\"request_id\":\"98b7\"}\n",
        "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"tool_calls\":[{\"index\":1,\"id\":\"\",\"type\":\"function\",\"function\":{\"arguments\":\" \\\"Shanghai\\\"}\"}}],\"role\":\"assistant\"},\"index\":0,\"finish_reason\":\"tool_calls\"}]},\"usage\":{\"total_tokens\":287,\"input_tokens\":250,\"output_tokens\":37},\"request_id\":\"98b7\"}\n",
    );
    let (chunks, done) = relay_all(native.as_bytes(), true, 0).unwrap();
    assert!(done);
    let fragments: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(
        fragments[0],
        &json!({"index": 0, "id": "call_29a8", "type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \""}})
    );
    assert_eq!(
        fragments[1],
        &json!({"index": 0, "function": {"arguments": "Hangzhou\"}"}})
    );
    assert_eq!(fragments[2]["id"], "call_026e");
    assert_eq!(
        fragments[3],
        &json!({"index": 1, "function": {"arguments": " \"Shanghai\"}"}})
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(
        finish[0]["choices"][0]["delta"],
        json!({}),
        "finish_reason comes on its own empty delta"
    );
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[chunks.len() - 2]["usage"]["total_tokens"], 287);
}

#[test]
fn in_stream_error_event_maps_by_its_http_status_comment() {
    // CNB parameter-error-sse: HTTP 200, event:error, :HTTP_STATUS/400
    let native = b"id:1\nevent:error\n:HTTP_STATUS/400\ndata:{\"code\":\"InvalidParameter\",\"message\":\"Role must be user or assistant and Content length must be greater than 0\",\"request_id\":\"7671ecd8\"}\n\n";
    let e = relay_all(native, false, 0).unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(!e.is_retryable());
    assert!(e.message().contains("Role must be user"));
    let throttled = b"id:1\nevent:error\n:HTTP_STATUS/429\ndata:{\"code\":\"Throttling.RateQuota\",\"message\":\"Requests rate limit exceeded\"}\n\n";
    let e = relay_all(throttled, false, 0).unwrap_err();
    assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(e.is_retryable());
}

#[test]
fn error_bodies_map_to_the_openai_status_and_retryability() {
    let table = [
        (
            401,
            r#"{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"a1"}"#,
            ErrorKind::UpstreamAuth,
            502,
            true,
        ),
        (
            429,
            r#"{"code":"Throttling.RateQuota","message":"Requests rate limit exceeded"}"#,
            ErrorKind::UpstreamRateLimited,
            429,
            true,
        ),
        (
            429,
            r#"{"code":"Throttling.AllocationQuota","message":"Allocated quota exceeded"}"#,
            ErrorKind::UpstreamRateLimited,
            429,
            true,
        ),
        (
            400,
            r#"{"code":"DataInspectionFailed","message":"Input data may contain inappropriate content."}"#,
            ErrorKind::UpstreamRejected,
            400,
            false,
        ),
        (
            400,
            r#"{"code":"InvalidParameter","message":"Required parameter(s) missing"}"#,
            ErrorKind::UpstreamRejected,
            400,
            false,
        ),
        (
            500,
            r#"{"code":"InternalError.Algo","message":"oops"}"#,
            ErrorKind::UpstreamFailed,
            502,
            true,
        ),
        (
            503,
            "<html>busy</html>",
            ErrorKind::UpstreamFailed,
            502,
            true,
        ),
    ];
    for (status, body, kind, client_status, retryable) in table {
        let e = parse_error(
            "qwen",
            StatusCode::from_u16(status).unwrap(),
            None,
            body.as_bytes(),
        );
        assert_eq!(
            (e.kind(), e.status().as_u16(), e.is_retryable()),
            (kind, client_status, retryable),
            "{body}"
        );
    }
    let e = parse_error(
        "qwen",
        StatusCode::BAD_REQUEST,
        None,
        br#"{"code":"DataInspectionFailed","message":"x"}"#,
    );
    let response = e.to_response();
    assert_eq!(response.status(), 400);
    assert_eq!(
        snake_case("BadRequest.EmptyInput"),
        "bad_request_empty_input"
    );
}

#[test]
fn embeddings_are_batched_and_reassembled_in_order() {
    let embed = |texts: &[String], model: &str, dimensions: Option<u32>| {
        let body = json!({"model": "e", "input": texts}).to_string();
        let req = crate::request::EmbeddingsRequest::parse(bytes::Bytes::from(body)).unwrap();
        build_embeddings(&req.body, &req.input, model, dimensions)
    };
    let texts: Vec<String> = (0..23).map(|i| format!("t{i}")).collect();
    let calls = embed(&texts, "text-embedding-v4", Some(256)).unwrap();
    assert_eq!(calls.len(), 3);
    let first: Value = serde_json::from_slice(&calls[0]).unwrap();
    assert_eq!(first["input"]["texts"].as_array().unwrap().len(), 10);
    assert_eq!(first["input"]["texts"][9], "t9");
    assert_eq!(first["parameters"], json!({"dimension": 256}));
    assert_eq!(
        embed(&vec!["a".into(); 23], "text-embedding-v2", None)
            .unwrap()
            .len(),
        1
    );
    // More texts than OpenAI takes in one request: refused before any is copied.
    assert_eq!(
        embed(&vec!["a".into(); 2049], "text-embedding-v4", None)
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        build_embeddings(
            br#"{"input":[1,2]}"#,
            &EmbeddingInput::Tokens(2),
            "text-embedding-v4",
            None
        )
        .unwrap_err()
        .status(),
        400
    );

    // Each batch answers with its own text_index, out of order.
    let answer = |indices: &[usize]| {
        let embeddings: Vec<Value> = indices
            .iter()
            .rev()
            .map(|i| json!({"text_index": i, "embedding": [*i as f32, 1.0]}))
            .collect();
        Bytes::from(json!({"output": {"embeddings": embeddings}, "usage": {"total_tokens": indices.len()}, "request_id": "r"}).to_string())
    };
    let bodies = [
        answer(&(0..10).collect::<Vec<_>>()),
        answer(&(0..10).collect::<Vec<_>>()),
        answer(&[0, 1, 2]),
    ];
    let (body, usage) = parse_embeddings(&bodies, 10, "embed-alias", false).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let indices: Vec<u64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, (0..23).collect::<Vec<u64>>());
    assert_eq!(
        v["data"][12]["embedding"],
        json!([2.0, 1.0]),
        "batch 2, text 2"
    );
    assert_eq!(v["model"], "embed-alias");
    assert_eq!(usage, Some(Usage::tokens(23, 0)));

    let (body, _) = parse_embeddings(&[answer(&[0])], 10, "e", true).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode(
        [0.0f32, 1.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    assert_eq!(v["data"][0]["embedding"], json!(expected));
}

#[test]
fn thinking_models_stream_reasoning_then_content() {
    // CNB single-generation-message-reasoning-sse (abridged): reasoning_content with content "".
    let native = concat!(
        "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"reasoning_content\":\"The user\",\"role\":\"assistant\"},\"finish_reason\":\"null\"}]},\"usage\":{\"input_tokens\":24,\"output_tokens\":2,\"output_tokens_details\":{\"reasoning_tokens\":2}},\"request_id\":\"r\"}\n",
        "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"reasoning_content\":\" asks 1+1.\",\"role\":\"assistant\"},\"finish_reason\":\"null\"}]},\"usage\":{\"input_tokens\":24,\"output_tokens\":6,\"output_tokens_details\":{\"reasoning_tokens\":6}},\"request_id\":\"r\"}\n",
        "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"2\",\"reasoning_content\":\"\",\"role\":\"assistant\"},\"finish_reason\":\"null\"}]},\"usage\":{\"input_tokens\":24,\"output_tokens\":7,\"output_tokens_details\":{\"reasoning_tokens\":6}},\"request_id\":\"r\"}\n",
        "data:{\"output\":{\"choices\":[{\"message\":{\"content\":\"\",\"reasoning_content\":\"\",\"role\":\"assistant\"},\"finish_reason\":\"stop\"}]},\"usage\":{\"input_tokens\":24,\"output_tokens\":7,\"output_tokens_details\":{\"reasoning_tokens\":6}},\"request_id\":\"r\"}\n",
    );
    let (chunks, done) = relay_all(native.as_bytes(), true, 0).unwrap();
    assert!(done);
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "The user asks 1+1.");
    assert_eq!(content(&chunks), "2");
    assert_eq!(
        chunks[chunks.len() - 2]["usage"]["completion_tokens_details"]["reasoning_tokens"],
        6
    );
}
