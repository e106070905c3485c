use serde_json::{Value, json};

use super::request::{MessagesRequest, Purpose};
use super::response::from_completion;
use super::stream::EventStream;
use crate::usage::counts::Usage;

fn message_of(completion: &Value, thinking: bool, usage: Option<Usage>) -> Value {
    let json = from_completion(
        completion.to_string().as_bytes(),
        "msg_1".into(),
        "alias",
        thinking,
        usage,
    )
    .unwrap();
    serde_json::from_slice(&json).unwrap()
}

fn chat_of(body: Value) -> Value {
    let body = body.to_string();
    let req = MessagesRequest::parse(body.as_bytes(), Purpose::Create).unwrap();
    serde_json::from_slice(&req.chat_body().unwrap()).unwrap()
}

/// Every `event:`/`data:` pair of a stream, as (name, data).
fn events(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|frame| {
            let (event, data) = frame.split_once('\n').expect("event and data lines");
            let name = event
                .strip_prefix("event: ")
                .expect("every frame has its event line");
            let data = data.strip_prefix("data: ").unwrap();
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "data.type names the event");
            (name.to_owned(), data)
        })
        .collect()
}

/// Blocks indexed from 0, strictly in order, one open at a time, deltas only to the open one.
fn assert_well_formed(events: &[(String, Value)]) {
    assert_eq!(events[0].0, "message_start");
    let mut open: Option<u64> = None;
    let mut next = 0;
    for (name, data) in events {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open, None, "a block starts while another is open");
                assert_eq!(data["index"], next);
                open = Some(next);
                next += 1;
            }
            "content_block_delta" => assert_eq!(data["index"].as_u64(), open),
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open);
                open = None;
            }
            "message_delta" | "message_stop" => assert_eq!(open, None),
            _ => {}
        }
    }
    assert_eq!(events.last().unwrap().0, "message_stop");
}

#[test]
fn a_claude_code_request_becomes_a_chat_request() {
    let chat = chat_of(json!({
        "model": "qwen-plus", "max_tokens": 32000, "stream": true,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "List files"}, {"type": "text", "text": " "}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should", "signature": "EqQB"},
                {"type": "text", "text": "Running ls."},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a.txt"}]},
                {"type": "text", "text": "Now read it"}]},
            {"role": "system", "content": "Be brief."},
        ],
        "tools": [{"name": "Bash", "description": "Run", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
                  {"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "thinking": {"type": "adaptive"}, "context_management": {"edits": []},
        "metadata": {"user_id": "user_0123_account_x_session_y"}, "stop_sequences": ["END"],
        "some_field_from_next_month": {"x": 1},
    }));
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "system", "content": "You are Claude Code."},
            {"role": "user", "content": "List files"},
            {"role": "assistant", "content": "Running ls.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"},
            {"role": "user", "content": "Now read it"},
            {"role": "system", "content": "Be brief."},
        ])
    );
    assert_eq!(
        chat["tools"],
        json!([{"type": "function", "function": {"name": "Bash", "description": "Run", "parameters": {"type": "object"}}}]),
        "custom tools only; cache_control dropped"
    );
    assert_eq!(chat["tool_choice"], "auto");
    assert_eq!(chat["parallel_tool_calls"], false);
    assert_eq!(chat["max_tokens"], 32000);
    assert_eq!(chat["stream_options"], json!({"include_usage": true}));
    assert_eq!(chat["stop"], json!(["END"]));
    assert_eq!(chat["user"].as_str().unwrap().len(), 64);
    assert!(chat.get("some_field_from_next_month").is_none());
    assert!(chat.get("thinking").is_none());
}

#[test]
fn required_fields_and_untranslatable_blocks_are_400s_naming_the_field() {
    for (body, field) in [
        (json!({"max_tokens": 1, "messages": []}), "model"),
        (json!({"model": "m", "messages": []}), "max_tokens"),
        (json!({"model": "m", "max_tokens": 1}), "messages"),
        (
            json!({"model": "m", "max_tokens": "lots", "messages": []}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": "hi"}),
            "messages",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 7}]}),
            "messages.0.content",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "tool", "content": "x"}]}),
            "messages.0.role",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "container_upload", "file_id": "f"}]}]}),
            "messages.0.content.0.type",
        ),
    ] {
        let body = body.to_string();
        let e = MessagesRequest::parse(body.as_bytes(), Purpose::Create)
            .and_then(MessagesRequest::chat_body)
            .unwrap_err();
        assert_eq!(e.status().as_u16(), 400, "{body}");
        assert!(e.to_string().contains(field), "{field}: {e}");
    }
    // count_tokens has no max_tokens.
    let counted = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    assert!(MessagesRequest::parse(counted.to_string().as_bytes(), Purpose::CountTokens).is_ok());
}

#[test]
fn a_completion_becomes_a_message_with_anthropic_usage() {
    let completion = json!({"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Checking.", "reasoning_content": "Think",
        "tool_calls": [{"id": "call:1", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}}]}}]});
    let usage = Usage {
        cached_input_tokens: 1920,
        reasoning_tokens: 10,
        ..Usage::tokens(2006, 300)
    };
    let message = message_of(&completion, false, Some(usage));
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["model"], "alias");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Checking."},
               {"type": "tool_use", "id": "call_1", "name": "get", "input": {"a": 1}}]),
        "reasoning only when the client enabled thinking; ids made Anthropic-safe"
    );
    // Anthropic's input_tokens excludes what the cache served.
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 86, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1920, "output_tokens": 300})
    );
    let thinking = message_of(&completion, true, None);
    assert_eq!(thinking["content"][0]["type"], "thinking");
    assert_eq!(thinking["content"][0]["thinking"], "Think");
    for (finish, reason) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
    ] {
        let c = json!({"choices": [{"finish_reason": finish, "message": {"content": "x"}}]});
        let m = message_of(&c, false, None);
        assert_eq!(m["stop_reason"], reason);
    }
}

#[test]
fn a_stream_with_thinking_text_and_interleaved_tool_calls_is_well_formed() {
    let mut stream = EventStream::new("msg_1".into(), "alias".into(), true);
    let mut out = Vec::new();
    stream.start(&mut out);
    for chunk in [
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"choices": [{"index": 0, "delta": {"reasoning_content": "Let me"}}]}),
        json!({"choices": [{"index": 0, "delta": {"reasoning_content": " see."}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "Two calls."}}]}),
        // Two calls whose fragments interleave.
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "a", "arguments": "{\"x\""}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "b", "arguments": "{}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 40}}}),
    ] {
        stream.on_chunk(chunk.to_string().as_bytes(), &mut out);
    }
    // The usage the relay read from the last chunk.
    let usage = Usage {
        cached_input_tokens: 40,
        ..Usage::tokens(50, 20)
    };
    stream.finish(Some(usage), &mut out);
    let events = events(&out);
    assert_well_formed(&events);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(events[2].1["content_block"]["type"], "thinking");
    assert_eq!(events[5].1["delta"]["type"], "signature_delta");
    assert_eq!(events[8].1["delta"]["text"], "Two calls.");
    assert_eq!(events[10].1["content_block"]["id"], "call_a");
    assert_eq!(events[11].1["delta"]["partial_json"], "{\"x\":1}");
    assert_eq!(events[13].1["content_block"]["name"], "b");
    let delta = &events[16].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta["usage"],
        json!({"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 40, "output_tokens": 20})
    );
}

#[test]
fn reasoning_is_left_out_unless_thinking_was_asked_for() {
    let mut stream = EventStream::new("msg_2".into(), "alias".into(), false);
    let mut out = Vec::new();
    stream.start(&mut out);
    for chunk in [
        json!({"choices": [{"index": 0, "delta": {"reasoning_content": "hidden"}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}),
    ] {
        stream.on_chunk(chunk.to_string().as_bytes(), &mut out);
    }
    stream.finish(None, &mut out);
    let events = events(&out);
    assert_well_formed(&events);
    assert!(!String::from_utf8_lossy(&out).contains("hidden"));
    assert_eq!(events[2].1["content_block"]["type"], "text");
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "end_turn");
}

/// The chat request a Messages request becomes is not parsed again: the fields its writer
/// knows are what a parse of it finds.
#[test]
fn the_written_chat_request_is_what_a_parse_of_it_finds() {
    for (model, stream, max_tokens) in [("gpt-4o-mini", true, 32000), ("qwen \"plus\" é", false, 7)]
    {
        let body = json!({"model": model, "max_tokens": max_tokens, "stream": stream,
                          "system": "s", "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let written = MessagesRequest::parse(body.as_bytes(), Purpose::Create)
            .unwrap()
            .into_chat()
            .unwrap();
        let parsed = crate::request::ChatRequest::parse(written.body.clone()).unwrap();
        assert_eq!(written.model, parsed.model);
        assert_eq!(written.model_span, parsed.model_span);
        assert_eq!(
            (
                written.stream,
                written.include_usage,
                written.has_stream_options
            ),
            (
                parsed.stream,
                parsed.include_usage,
                parsed.has_stream_options
            )
        );
        assert_eq!(written.max_tokens, parsed.max_tokens);
        assert_eq!(written.form, parsed.form);
    }
}

#[test]
fn strings_are_written_as_serde_json_writes_them() {
    let long = "a".repeat(23);
    for text in [
        "",
        "plain",
        "é 中文 \u{7f}",
        "quote \" here",
        "back\\slash",
        "tab\there",
        "\u{1}",
        &long,
        "exactly8",
        "eight..\"",
        "seventeen chars!\n",
        "\u{80}\u{ff} \u{2028} x\u{1f}",
    ] {
        let mut out = Vec::new();
        super::json_string(&mut out, text);
        assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
    }
}

/// Chunks are read where the stream's layout puts `delta` and `finish_reason`, and found by a
/// search wherever else a server writes them.
#[test]
fn the_delta_and_finish_reason_are_found_in_any_layout() {
    let mut stream = EventStream::new("msg_3".into(), "alias".into(), false);
    let mut out = Vec::new();
    stream.start(&mut out);
    for chunk in [
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"b"},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"longer-id","choices":[{"finish_reason":null, "index":0, "delta": {"content":"c"}}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
    ] {
        stream.on_chunk(chunk.as_bytes(), &mut out);
    }
    stream.finish(None, &mut out);
    let all = events(&out);
    let text: String = all
        .iter()
        .filter_map(|(_, e)| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "abc");
    let delta = all.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "max_tokens");

    let mut before = EventStream::new("msg_4".into(), "alias".into(), false);
    let mut out = Vec::new();
    before.on_chunk(
        br#"{"choices":[{"finish_reason":"length","index":0,"delta":{"content":"x"}}]}"#,
        &mut out,
    );
    before.finish(None, &mut out);
    let all = events(&out);
    let delta = all.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "max_tokens");
}

/// A text delta is copied as the upstream escaped it only when that is valid JSON as it stands:
/// the client reads the same text either way, and a raw control character or an unknown escape
/// is never forwarded (the deserializer then refuses the chunk, as before).
#[test]
fn text_copied_as_escaped_reads_as_the_text() {
    let texts = [
        "plain",
        "quote \" backslash \\ slash / tab \t newline \n",
        "\u{e9}\u{1f600} \u{2028}",
        "\u{1}\u{1f}",
    ];
    for text in texts {
        let mut stream = EventStream::new("msg_5".into(), "alias".into(), false);
        let mut out = Vec::new();
        stream.start(&mut out);
        // As serde_json escapes it, and with `\/` and `\u` escapes a server may use instead.
        let escaped = serde_json::to_string(text).unwrap();
        let other = escaped.replace('/', "\\/").replace("\\n", "\\u000a");
        for json in [&escaped, &other] {
            let chunk = format!(
                r#"{{"choices":[{{"index":0,"delta":{{"content":{json}}},"finish_reason":null}}]}}"#
            );
            stream.on_chunk(chunk.as_bytes(), &mut out);
        }
        stream.finish(None, &mut out);
        let all = events(&out);
        assert_well_formed(&all);
        let read: String = all
            .iter()
            .filter_map(|(_, e)| e["delta"]["text"].as_str())
            .collect();
        assert_eq!(read, format!("{text}{text}"));
    }
    for invalid in [
        "\"raw \u{1} byte\"",
        r#""bad \x escape""#,
        r#""short \u12""#,
    ] {
        let mut stream = EventStream::new("msg_6".into(), "alias".into(), false);
        let mut out = Vec::new();
        let chunk = format!(
            r#"{{"choices":[{{"index":0,"delta":{{"content":{invalid}}},"finish_reason":null}}]}}"#
        );
        stream.on_chunk(chunk.as_bytes(), &mut out);
        stream.finish(None, &mut out);
        let all = events(&out);
        assert!(
            all.iter().all(|(name, _)| name != "content_block_delta"),
            "{invalid}"
        );
    }
}
