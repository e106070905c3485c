use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::request::{Target, from_chat, from_completion, is_adaptive};
use super::response::{WireUsage, to_chat};
use super::stream::StreamRelay;
use super::*;
use crate::anthropic::request::{MessagesRequest, Purpose};
use crate::providers::Adapter;
use crate::providers::types::{Relayed, ResponseContext};
use crate::request::Form;

fn target(model: &str, max_output_tokens: Option<u32>) -> Target<'_> {
    Target {
        model,
        max_output_tokens,
        stream: false,
    }
}

fn messages_of(chat: Value, model: &str) -> Value {
    let body = from_chat(chat.to_string().as_bytes(), &target(model, Some(8192))).unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn ctx(include_usage: bool, native: bool) -> ResponseContext {
    ResponseContext {
        client_model: "alias".into(),
        include_usage,
        created: 1_700_000_000,
        form: Form::Chat,
        messages: native.then(|| {
            std::sync::Arc::new(crate::request::Native {
                // The client's body, as a Messages request's always has one.
                body: Bytes::from_static(br#"{"model":"alias"}"#),
                model_span: 9..16,
                beta: None,
                system_turns: false,
                foreign_thinking: false,
                message_id: "msg_1".into(),
                thinking: false,
            })
        }),
    }
}

#[test]
fn a_chat_conversation_becomes_messages_with_system_on_top_and_tool_results_first() {
    let chat = json!({
        "model": "alias",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ]},
            {"role": "assistant", "content": "Let me look. ", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "zoom", "arguments": "{\"x\":1}"}},
                {"id": "call.2", "type": "function", "function": {"name": "crop", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "zoomed"},
            {"role": "tool", "tool_call_id": "call.2", "content": [{"type": "text", "text": "cropped"}]},
            {"role": "developer", "content": "Mid-way instruction."},
            {"role": "user", "content": "And now?"},
        ],
        "stop": "END",
        "temperature": 0.2,
        "user": "u-1",
    });
    let m = messages_of(chat, "claude-sonnet-4-5");
    assert_eq!(
        m["system"],
        json!([{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Mid-way instruction."}])
    );
    let turns = m["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{turns:#?}");
    assert_eq!(
        turns[0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(
        turns[0]["content"][2]["source"],
        json!({"type": "url", "url": "https://example.com/a.jpg"})
    );
    assert_eq!(turns[1]["role"], "assistant");
    // Trailing whitespace in a final assistant text is refused by Anthropic: trimmed.
    assert_eq!(
        turns[1]["content"][0],
        json!({"type": "text", "text": "Let me look."})
    );
    assert_eq!(
        turns[1]["content"][1],
        json!({"type": "tool_use", "id": "call_1", "name": "zoom", "input": {"x": 1}})
    );
    assert_eq!(
        turns[1]["content"][2],
        json!({"type": "tool_use", "id": "call_2", "name": "crop", "input": {}})
    );
    assert_eq!(turns[2]["role"], "user");
    assert_eq!(
        turns[2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "call_1", "content": "zoomed"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "cropped"},
            {"type": "text", "text": "And now?"},
        ])
    );
    assert_eq!(m["stop_sequences"], json!(["END"]));
    assert_eq!(m["temperature"], json!(0.2));
    assert_eq!(m["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(
        m["max_tokens"],
        json!(8192),
        "the model's max_output_tokens"
    );
    assert!(m.get("stream").is_none());
}

#[test]
fn max_tokens_is_the_clients_else_the_models_else_the_default() {
    let chat = |extra: Value| {
        let mut c = json!({"model": "a", "messages": [{"role": "user", "content": "hi"}]});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c.to_string()
    };
    let max = |body: String, cap: Option<u32>| {
        let out = from_chat(body.as_bytes(), &target("m", cap)).unwrap();
        serde_json::from_slice::<Value>(&out).unwrap()["max_tokens"].clone()
    };
    assert_eq!(
        max(chat(json!({"max_tokens": 50000})), Some(8192)),
        json!(50000),
        "never changed"
    );
    assert_eq!(
        max(chat(json!({"max_completion_tokens": 7})), Some(8192)),
        json!(7)
    );
    assert_eq!(max(chat(json!({})), Some(8192)), json!(8192));
    assert_eq!(
        max(chat(json!({})), None),
        json!(request::DEFAULT_MAX_TOKENS)
    );
}

#[test]
fn tools_and_tool_choice_map_to_anthropics() {
    let chat = json!({
        "model": "a",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "get", "description": "Get it", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
    });
    let m = messages_of(chat.clone(), "m");
    assert_eq!(
        m["tools"],
        json!([{"name": "get", "description": "Get it", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}])
    );
    assert_eq!(
        m["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    let mut named = chat.clone();
    named["tool_choice"] = json!({"type": "function", "function": {"name": "get"}});
    named.as_object_mut().unwrap().remove("parallel_tool_calls");
    assert_eq!(
        messages_of(named, "m")["tool_choice"],
        json!({"type": "tool", "name": "get"})
    );
    let mut auto = chat;
    auto.as_object_mut().unwrap().remove("tool_choice");
    auto.as_object_mut().unwrap().remove("parallel_tool_calls");
    assert!(
        messages_of(auto, "m").get("tool_choice").is_none(),
        "Anthropic's default"
    );
}

#[test]
fn reasoning_effort_becomes_thinking_as_the_model_takes_it() {
    let chat = json!({
        "model": "a",
        "messages": [{"role": "user", "content": "hi"}],
        "reasoning_effort": "medium",
        "temperature": 0.3,
        "max_tokens": 10000,
    });
    let old = messages_of(chat.clone(), "claude-sonnet-4-5-20250929");
    assert_eq!(
        old["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert!(
        old.get("temperature").is_none(),
        "sampling stays default with thinking"
    );
    let new = messages_of(chat.clone(), "claude-opus-4-6");
    assert_eq!(new["thinking"], json!({"type": "adaptive"}));
    assert_eq!(new["output_config"]["effort"], json!("medium"));
    let mut none = chat;
    none["reasoning_effort"] = json!("none");
    let m = messages_of(none, "claude-opus-4-6");
    assert!(m.get("thinking").is_none());
    assert_eq!(m["temperature"], json!(0.3));

    for (model, adaptive) in [
        ("claude-opus-4-6", true),
        ("claude-sonnet-5", true),
        ("claude-sonnet-4-5-20250929", false),
        ("claude-sonnet-4-20250514", false),
        ("claude-3-7-sonnet-20250219", false),
        ("qwen3-max", false),
    ] {
        assert_eq!(is_adaptive(model), adaptive, "{model}");
    }
}

#[test]
fn what_messages_cannot_carry_is_a_400_naming_the_field() {
    let base = || json!({"model": "a", "messages": [{"role": "user", "content": "hi"}]});
    for (field, value, param) in [
        ("n", json!(2), "n"),
        ("logprobs", json!(true), "logprobs"),
        ("logit_bias", json!({"1": 2}), "logit_bias"),
        ("modalities", json!(["text", "audio"]), "modalities"),
    ] {
        let mut chat = base();
        chat[field] = value;
        let e = from_chat(chat.to_string().as_bytes(), &target("m", None)).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let event = String::from_utf8(e.to_sse_event().to_vec()).unwrap();
        assert!(event.contains(&format!("\"param\":\"{param}\"")), "{event}");
    }
    let bad_args = json!({"model": "a", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]},
    ]});
    let e = from_chat(bad_args.to_string().as_bytes(), &target("m", None)).unwrap_err();
    let event = String::from_utf8(e.to_sse_event().to_vec()).unwrap();
    assert!(
        event.contains("\"param\":\"messages[1].tool_calls[0].function.arguments\""),
        "{event}"
    );
}

#[test]
fn a_legacy_completion_is_one_user_turn() {
    let body = json!({"model": "a", "prompt": "Once upon", "stop": ["\n"]});
    let out = from_completion(body.to_string().as_bytes(), &target("m", Some(999))).unwrap();
    let m: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        m["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Once upon"}]}])
    );
    assert_eq!(
        m["max_tokens"],
        json!(16),
        "OpenAI's default for completions"
    );
    assert_eq!(m["stop_sequences"], json!(["\n"]));
    let echo = json!({"model": "a", "prompt": "x", "echo": true});
    assert!(from_completion(echo.to_string().as_bytes(), &target("m", None)).is_err());
}

#[test]
fn a_message_becomes_a_chat_completion_with_all_input_counted() {
    let message = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "Hmm.", "signature": "abc"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"q": "x"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 1000,
                  "cache_creation_input_tokens": 300, "output_tokens_details": {"thinking_tokens": 5}},
    });
    let (body, usage) = to_chat(message.to_string().as_bytes(), &ctx(false, false)).unwrap();
    let chat: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(chat["model"], "alias");
    assert_eq!(chat["id"], "chatcmpl-msg_1");
    let reply = &chat["choices"][0]["message"];
    assert_eq!(reply["content"], "Checking.");
    assert_eq!(reply["reasoning_content"], "Hmm.");
    assert_eq!(
        reply["tool_calls"][0]["function"],
        json!({"name": "get", "arguments": "{\"q\":\"x\"}"})
    );
    assert_eq!(chat["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        chat["usage"]["prompt_tokens"], 1310,
        "input + cache reads + cache writes"
    );
    assert_eq!(
        chat["usage"]["prompt_tokens_details"]["cached_tokens"],
        1000
    );
    assert_eq!(usage.input_tokens, 1310);
    assert_eq!(usage.cached_input_tokens, 1000);
    assert_eq!(usage.cache_write_tokens, 300);
    assert_eq!(usage.output_tokens, 20);
    assert_eq!(usage.reasoning_tokens, 5);
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ] {
        assert_eq!(response::finish_reason(Some(stop)), finish);
    }
}

fn frame(event: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// A tool-using answer with thinking, as api.anthropic.com streams it.
fn tool_stream() -> Vec<Bytes> {
    vec![
        frame(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_9", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 1}}}),
        ),
        frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Plan."}}),
        ),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}}),
        ),
        frame(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        frame("ping", json!({"type": "ping"})),
        frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        ),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Let me check."}}),
        ),
        frame(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_a", "name": "get", "input": {}}}),
        ),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"q\":"}}),
        ),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "\"x\"}"}}),
        ),
        frame(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        frame(
            "content_block_start",
            json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_b", "name": "put", "input": {}}}),
        ),
        frame(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        ),
        frame(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 3}),
        ),
        frame(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 42}}),
        ),
        frame("message_stop", json!({"type": "message_stop"})),
    ]
}

/// The chat chunks a translated stream sends, as JSON, and whether it ended.
fn relay_all(relay: &mut StreamRelay, frames: Vec<Bytes>) -> (Vec<Value>, bool) {
    let mut chunks = Vec::new();
    let mut done = false;
    for f in frames {
        let out = match relay.on_frame(f).unwrap() {
            Relayed::Forward(b) => b,
            Relayed::Done(b) => {
                done = true;
                b
            }
        };
        for line in String::from_utf8(out.to_vec()).unwrap().lines() {
            match line.strip_prefix("data: ") {
                Some("[DONE]") => {}
                Some(json) => chunks.push(serde_json::from_str(json).unwrap()),
                None => assert!(line.is_empty(), "{line:?}"),
            }
        }
    }
    (chunks, done)
}

#[test]
fn a_messages_stream_becomes_chat_chunks_with_tool_calls_indexed_from_zero() {
    let mut relay = StreamRelay::new(ctx(true, false));
    let (chunks, done) = relay_all(&mut relay, tool_stream());
    assert!(done);
    assert!(
        chunks
            .iter()
            .all(|c| c["id"] == "chatcmpl-msg_9" && c["model"] == "alias")
    );
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0).map(|c| &c["delta"]))
        .collect();
    let text: String = deltas
        .iter()
        .filter_map(|d| d["content"].as_str())
        .collect();
    assert_eq!(text, "Let me check.");
    let reasoning: String = deltas
        .iter()
        .filter_map(|d| d["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "Plan.");
    let mut arguments = ["".to_owned(), "".to_owned()];
    let mut ids = Vec::new();
    for d in &deltas {
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            let i = call["index"].as_u64().unwrap() as usize;
            arguments[i].push_str(call["function"]["arguments"].as_str().unwrap_or_default());
            if let Some(id) = call["id"].as_str() {
                ids.push((i, id.to_owned(), call["function"]["name"].clone()));
            }
        }
    }
    assert_eq!(arguments, ["{\"q\":\"x\"}", "{}"]);
    assert_eq!(
        ids,
        [
            (0, "toolu_a".into(), json!("get")),
            (1, "toolu_b".into(), json!("put"))
        ]
    );
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|c| &c["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json!("tool_calls")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
    assert_eq!(usage["prompt_tokens"], 105);
    assert_eq!(usage["completion_tokens"], 42);
    assert_eq!(relay.usage().unwrap().cached_input_tokens, 100);

    let mut quiet = StreamRelay::new(ctx(false, false));
    let (chunks, _) = relay_all(&mut quiet, tool_stream());
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "not asked for"
    );
    assert_eq!(quiet.usage().unwrap().output_tokens, 42, "still counted");
}

#[test]
fn a_pass_through_stream_is_forwarded_as_it_came_with_the_model_renamed() {
    let mut relay = StreamRelay::new(ctx(false, true));
    let frames = tool_stream();
    let mut out = Vec::new();
    let mut done = false;
    for (i, f) in frames.iter().cloned().enumerate() {
        let bytes = match relay.on_frame(f).unwrap() {
            Relayed::Forward(b) => b,
            Relayed::Done(b) => {
                done = true;
                b
            }
        };
        assert_eq!(
            bytes.is_empty(),
            i == 0,
            "message_start waits for the next event"
        );
        out.extend_from_slice(&bytes);
    }
    assert!(done);
    let out = String::from_utf8(out).unwrap();
    let (start, rest) = out.split_once("\n\n").unwrap();
    let rest_sent: Vec<u8> = frames[1..].concat();
    assert_eq!(
        rest.as_bytes(),
        &rest_sent[..],
        "every frame but message_start byte for byte"
    );
    let data: Value =
        serde_json::from_str(start.strip_prefix("event: message_start\ndata: ").unwrap()).unwrap();
    assert_eq!(data["message"]["model"], "alias");
    assert_eq!(data["message"]["id"], "msg_9");
    let usage = relay.usage().unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (105, 42));
}

/// Anthropic reports an overload as an `error` right after `message_start`: nothing has been
/// said yet, so the error comes before the commit point (another route may serve the request).
#[test]
fn an_error_right_after_the_start_comes_before_anything_is_sent() {
    for native in [false, true] {
        let mut relay = StreamRelay::new(ctx(true, native));
        let start = tool_stream().remove(0);
        assert_eq!(
            relay.on_frame(start).unwrap(),
            Relayed::Forward(Bytes::new())
        );
        let ping = frame("ping", json!({"type": "ping"}));
        assert_eq!(
            relay.on_frame(ping).unwrap(),
            Relayed::Forward(Bytes::new())
        );
        let overloaded = frame(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
        assert!(relay.on_frame(overloaded).unwrap_err().is_retryable());
    }
}

#[test]
fn an_error_event_is_retryable_unless_it_is_the_requests_fault() {
    let mut relay = StreamRelay::new(ctx(false, false));
    let overloaded = frame(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    assert!(relay.on_frame(overloaded).unwrap_err().is_retryable());
    let invalid = frame(
        "error",
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}}),
    );
    let e = relay.on_frame(invalid).unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn upstream_errors_are_classified_as_the_sdks_retry_them() {
    let body = |kind: &str| {
        json!({"type": "error", "error": {"type": kind, "message": "why"}}).to_string()
    };
    for (status, kind, retryable) in [
        (529, "overloaded_error", true),
        (500, "api_error", true),
        (504, "timeout_error", true),
        (429, "rate_limit_error", true),
        (400, "invalid_request_error", false),
        (404, "not_found_error", false),
    ] {
        let e = Adapter::Anthropic.parse_error(
            "claude",
            StatusCode::from_u16(status).unwrap(),
            None,
            body(kind).as_bytes(),
        );
        assert_eq!(e.is_retryable(), retryable, "{status}: {e}");
    }
    let e = Adapter::Anthropic.parse_error(
        "claude",
        StatusCode::BAD_REQUEST,
        None,
        body("invalid_request_error").as_bytes(),
    );
    assert!(
        e.message().contains("why"),
        "the upstream's words reach the client: {e}"
    );
}

fn native_of(body: &Value, first_party: bool) -> Value {
    let bytes = Bytes::from(body.to_string());
    let req = MessagesRequest::parse(&bytes, Purpose::Create).unwrap();
    let native = req.native(bytes.clone(), None, "msg_1".into());
    let out = passthrough(&native, b"\"claude-up\"", first_party).unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn a_pass_through_changes_only_the_model_unless_the_upstream_would_refuse_the_body() {
    let raw = r#"{"model" : "alias","max_tokens":10,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}],"future_field":{"x":1}}"#;
    let bytes = Bytes::from(raw);
    let req = MessagesRequest::parse(&bytes, Purpose::Create).unwrap();
    let out = passthrough(
        &req.native(bytes.clone(), None, "msg_1".into()),
        b"\"claude-up\"",
        true,
    )
    .unwrap();
    assert_eq!(
        out,
        raw.replace("\"alias\"", "\"claude-up\""),
        "byte for byte"
    );

    let history = json!({
        "model": "alias", "max_tokens": 10, "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "qwen's reasoning", "signature": crate::anthropic::SIGNATURE},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ]},
            {"role": "system", "content": "reminder"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
        ],
    });
    let mended = native_of(&history, false);
    assert_eq!(mended["model"], "claude-up");
    assert_eq!(
        mended["messages"][1]["content"],
        json!([{"type": "tool_use", "id": "t1", "name": "f", "input": {}}])
    );
    assert!(
        mended.get("thinking").is_none(),
        "the tool-using turn lost its thinking block"
    );
    assert_eq!(
        mended["system"],
        json!([{"type": "text", "text": "reminder"}]),
        "hoisted"
    );
    assert_eq!(mended["messages"].as_array().unwrap().len(), 3);
    let anthropic = native_of(&history, true);
    assert_eq!(
        anthropic["messages"].as_array().unwrap().len(),
        4,
        "Anthropic takes system turns"
    );

    let mut genuine = history.clone();
    genuine["messages"][1]["content"][0]["signature"] = json!("EqQBCgIYAhIM");
    genuine["messages"].as_array_mut().unwrap().remove(2);
    let kept = native_of(&genuine, true);
    assert_eq!(
        kept["messages"], genuine["messages"],
        "Anthropic's own signatures stay"
    );
    assert_eq!(kept["thinking"], genuine["thinking"]);
}

#[test]
fn a_native_answer_carries_the_clients_model_name() {
    let body =
        Bytes::from_static(br#"{"id":"msg_1","type":"message","model":"claude-up","content":[]}"#);
    let (renamed, usage) = response::native(body, br#""alias""#);
    assert_eq!(
        renamed,
        Bytes::from_static(br#"{"id":"msg_1","type":"message","model":"alias","content":[]}"#)
    );
    assert_eq!(usage, None);
    let body = Bytes::from_static(
        br#"{"model":"x","content":[{"type":"tool_use","input":{"model":"keep"}}],"usage":{"input_tokens":3,"cache_read_input_tokens":4,"output_tokens":5}}"#,
    );
    let (renamed, usage) = response::native(body, br#""alias""#);
    assert_eq!(
        renamed,
        Bytes::from_static(
            br#"{"model":"alias","content":[{"type":"tool_use","input":{"model":"keep"}}],"usage":{"input_tokens":3,"cache_read_input_tokens":4,"output_tokens":5}}"#
        )
    );
    assert_eq!(
        usage.map(|u| (u.input_tokens, u.cached_input_tokens, u.output_tokens)),
        Some((7, 4, 5))
    );
}

#[test]
fn the_base_url_may_be_given_with_or_without_v1() {
    for base in [
        "https://api.anthropic.com",
        "https://api.anthropic.com/",
        "https://api.anthropic.com/v1",
    ] {
        let spec = http_spec(base.into());
        assert_eq!(spec.base_url, "https://api.anthropic.com");
        assert_eq!(
            spec.probe_url,
            "https://api.anthropic.com/v1/models?limit=1"
        );
    }
    let dashscope = http_spec("https://dashscope.aliyuncs.com/apps/anthropic".into());
    assert_eq!(
        dashscope.base_url,
        "https://dashscope.aliyuncs.com/apps/anthropic"
    );
    assert!(is_first_party("https://api.anthropic.com"));
    assert!(!is_first_party(
        "https://dashscope.aliyuncs.com/apps/anthropic"
    ));
    assert!(!is_first_party("http://127.0.0.1:9000"));
}

/// The walk that reads pass-through usage reads what the deserializer reads (every field
/// optional, nested thinking tokens, members in any order, unknown ones skipped).
#[test]
fn usage_is_read_by_a_walk_as_the_deserializer_reads_it() {
    for usage in [
        r#"{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":13}"#,
        r#"{"input_tokens":3,"cache_creation_input_tokens":2048,"cache_read_input_tokens":90112,"cache_creation":{"ephemeral_5m_input_tokens":2048,"ephemeral_1h_input_tokens":0},"output_tokens":503,"service_tier":"standard","server_tool_use":null}"#,
        r#"{ "output_tokens" : 9 , "output_tokens_details" : { "thinking_tokens" : 4 } }"#,
        r#"{"output_tokens":9}"#,
        r#"{}"#,
    ] {
        let walked = WireUsage::read(usage.as_bytes()).unwrap();
        let parsed: WireUsage = serde_json::from_str(usage).unwrap();
        assert_eq!(format!("{walked:?}"), format!("{parsed:?}"), "{usage}");
    }
    assert!(WireUsage::read(b"null").is_none());
    assert!(WireUsage::read(br#"{"input_tokens":3"#).is_none());
}
