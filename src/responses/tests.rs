//! Golden translations both ways, from the bodies real clients send (PROTOCOLS.md §10.7) and
//! the shapes OpenAI answers with (§10.2, §10.3).

use serde_json::{Value, json};

use super::request::{ResponsesRequest, to_messages};
use super::response::{self, Head};
use super::stream::EventStream;
use crate::error::{ErrorKind, GatewayError};

fn parse(body: Value) -> ResponsesRequest {
    ResponsesRequest::parse(body.to_string().as_bytes()).unwrap()
}

fn chat(req: &ResponsesRequest) -> Value {
    let mut messages = Vec::new();
    if let Some(text) = &req.instructions {
        messages.push(json!({"role": "system", "content": text}));
    }
    let messages = to_messages(messages, &req.input).unwrap();
    serde_json::from_slice(&req.chat_body(messages)).unwrap()
}

fn refused(body: Value) -> GatewayError {
    let req = ResponsesRequest::parse(body.to_string().as_bytes());
    match req {
        Err(e) => e,
        Ok(req) => to_messages(Vec::new(), &req.input).unwrap_err(),
    }
}

#[test]
fn the_agents_sdk_request_becomes_a_chat_request() {
    let req = parse(json!({
        "instructions": "You are a helpful assistant.", "model": "qwen-plus",
        "input": [{"content": "Weather in Paris?", "role": "user"}],
        "include": [],
        "tools": [{"name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}},
                   "required": ["city"], "type": "object", "additionalProperties": false},
                   "strict": true, "type": "function", "description": "Get weather."}],
        "stream": true,
    }));
    assert!(req.stream && req.store);
    assert_eq!(
        chat(&req),
        json!({
            "model": "qwen-plus",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Weather in Paris?"},
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Get weather.", "strict": true,
                "parameters": {"properties": {"city": {"type": "string"}}, "required": ["city"],
                               "type": "object", "additionalProperties": false},
            }}],
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
    assert_eq!(req.input[0]["type"], "message");
    assert!(req.input[0]["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(req.echo["tools"][0]["name"], "get_weather");
    assert_eq!(req.echo["tool_choice"], "auto");
    assert_eq!(req.echo["parallel_tool_calls"], true);
}

#[test]
fn the_ai_sdk_request_keeps_parts_sampling_and_tool_choice() {
    let req = parse(json!({
        "model": "qwen-plus",
        "input": [{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"},
                                               {"type": "input_image", "image_url": "https://x/y.png"}]}],
        "temperature": 0.5,
        "tools": [{"type": "function", "name": "weather", "description": "w",
                   "parameters": {"type": "object"}}],
        "tool_choice": "auto",
        "max_output_tokens": 64,
        "reasoning": {"effort": "low"},
        "metadata": {"team": "a"},
        "store": false,
    }));
    let body = chat(&req);
    assert_eq!(
        body["messages"][1]["content"],
        json!([{"type": "text", "text": "Weather in Paris?"},
               {"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
    );
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["reasoning_effort"], "low");
    assert!(
        body["tools"][0]["function"].get("strict").is_none(),
        "strict only if set"
    );
    assert!(
        body.get("metadata").is_none() && body.get("store").is_none(),
        "never forwarded"
    );
    assert!(body.get("stream").is_none());
    assert_eq!(
        req.echo["tools"][0]["strict"], true,
        "echoed with OpenAI's default"
    );
    assert_eq!(req.echo["metadata"], json!({"team": "a"}));
    assert_eq!(req.echo["store"], false);
}

#[test]
fn a_replayed_tool_round_trip_becomes_assistant_tool_calls_and_a_tool_message() {
    // pydantic-ai's body: a call with `status: null`, then its output.
    let req = parse(json!({
        "model": "m",
        "input": [
            {"content": "What is the capital of PotatoLand?", "role": "user"},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
            {"arguments": "{\"country\":\"PotatoLand\"}", "call_id": "call_Y", "name": "get_capital",
             "status": null, "type": "function_call"},
            {"arguments": "{}", "call_id": "call_Z", "name": "get_time", "type": "function_call"},
            {"call_id": "call_Y", "output": "Potato City", "type": "function_call_output"},
            {"call_id": "call_Z", "output": [{"type": "input_text", "text": "noon"}], "type": "function_call_output"},
        ],
    }));
    let messages = chat(&req)["messages"].clone();
    assert_eq!(
        messages,
        json!([
            {"role": "user", "content": "What is the capital of PotatoLand?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_Y", "type": "function", "function": {"name": "get_capital", "arguments": "{\"country\":\"PotatoLand\"}"}},
                {"id": "call_Z", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_Y", "content": "Potato City"},
            {"role": "tool", "tool_call_id": "call_Z", "content": "noon"},
        ])
    );
    assert!(req.input[2]["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(req.input[1]["id"], "msg_1", "a client's own ids are kept");
}

#[test]
fn text_formats_translate_to_response_format() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let req = parse(
        json!({"model": "m", "input": "json please", "text": {"format": {
        "type": "json_schema", "name": "answer", "schema": schema, "strict": true}}}),
    );
    assert_eq!(
        chat(&req)["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}})
    );
    let req =
        parse(json!({"model": "m", "input": "json", "text": {"format": {"type": "json_object"}}}));
    assert_eq!(
        chat(&req)["response_format"],
        json!({"type": "json_object"})
    );
    let req = parse(json!({"model": "m", "input": "hi", "text": {"format": {"type": "text"}}}));
    assert!(chat(&req).get("response_format").is_none());
}

#[test]
fn what_the_gateway_cannot_do_is_a_400_naming_the_field() {
    let cases = [
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "input": "x", "background": true}),
            "background",
        ),
        (
            json!({"model": "m", "input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (
            json!({"model": "m", "input": "x", "prompt": {"id": "pmpt_1"}}),
            "prompt",
        ),
        (
            json!({"model": "m", "input": "x", "max_output_tokens": 10}),
            "max_output_tokens",
        ),
        (json!({"input": "x"}), "model"),
        (json!({"model": "m"}), "input"),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}),
            "input[0].content[0]",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}]}),
            "input",
        ),
        (
            json!({"model": "m", "input": [{"type": "computer_call_output", "call_id": "c"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}, "tools": [{"type": "function", "name": "f"}]}),
            "tool_choice",
        ),
    ];
    for (body, param) in cases {
        let e = refused(body.clone());
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{body}");
        let event = e.to_sse_event();
        let rendered: Value =
            serde_json::from_slice(event.strip_prefix(b"data: ").unwrap().trim_ascii()).unwrap();
        assert_eq!(rendered["error"]["param"], param, "{body}: {rendered}");
    }
    let e = refused(
        json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}]}),
    );
    assert!(
        e.message()
            .contains("No tool call found for function call output with call_id call_x")
    );
}

#[test]
fn a_completion_becomes_a_response_with_items_usage_and_echo() {
    let req = parse(json!({"model": "alias", "input": "hi", "instructions": "brief"}));
    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}],
        }}],
        "usage": {"prompt_tokens": 14, "completion_tokens": 50, "total_tokens": 64,
                  "prompt_tokens_details": {"cached_tokens": 4}},
    });
    let output = response::from_completion(completion.to_string().as_bytes()).unwrap();
    let head = Head::new(req.model.clone(), req.echo.clone());
    let object = head.finished(&output);
    assert!(object["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(object["object"], "response");
    assert_eq!(object["status"], "completed");
    assert_eq!(object["model"], "alias", "the client's model name");
    assert_eq!(object["instructions"], "brief");
    assert_eq!(object["error"], Value::Null);
    let message = &object["output"][0];
    assert_eq!(message["type"], "message");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        message["content"],
        json!([{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}])
    );
    let call = &object["output"][1];
    assert_eq!(
        (call["type"].as_str(), call["call_id"].as_str()),
        (Some("function_call"), Some("call_1"))
    );
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(call["arguments"], "{\"a\":1}");
    assert_eq!(
        object["usage"],
        json!({"input_tokens": 14, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
               "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 64})
    );

    let cut = json!({"choices": [{"index": 0, "finish_reason": "length",
                     "message": {"role": "assistant", "content": "Once upon"}}]});
    let output = response::from_completion(cut.to_string().as_bytes()).unwrap();
    let object = head.finished(&output);
    assert_eq!(object["status"], "incomplete");
    assert_eq!(
        object["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(object["output"][0]["status"], "incomplete");
    assert_eq!(
        object["usage"]["total_tokens"], 0,
        "usage is always there, zeros if unknown"
    );
}

/// Every event of a translated stream, decoded.
fn events(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let (name, data) = event.split_once('\n').unwrap();
            let value: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(
                name.strip_prefix("event: ").unwrap(),
                value["type"],
                "{event}"
            );
            value
        })
        .collect()
}

fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
    json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
        .into_bytes()
}

#[test]
fn a_text_stream_emits_the_event_sequence_clients_require() {
    let mut stream = EventStream::new(Head::new(
        "m".into(),
        parse(json!({"model": "m", "input": "hi"})).echo,
    ));
    let mut out = Vec::new();
    stream.start(&mut out);
    for c in [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo"}), None),
        chunk(json!({}), Some("stop")),
    ] {
        stream.on_chunk(&c, &mut out);
    }
    let usage = json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
    stream.on_chunk(usage.to_string().as_bytes(), &mut out);
    let output = stream.finish(&mut out);
    stream.completed(&output, &mut out);

    let events = events(&out);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64);
    }
    assert_eq!(events[0]["response"]["status"], "in_progress");
    assert_eq!(events[0]["response"]["output"], json!([]));
    let item_id = events[2]["item"]["id"].clone();
    for e in &events[3..=7] {
        assert_eq!(e["item_id"], item_id, "{e}");
        assert_eq!(e["output_index"], 0);
    }
    assert_eq!(events[6]["text"], "Hello");
    let done = &events[9]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["id"], item_id);
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["usage"]["input_tokens"], 3);
    assert_eq!(done["usage"]["output_tokens"], 2);
}

#[test]
fn streamed_tool_calls_are_sequential_items_with_dense_indices() {
    let mut stream = EventStream::new(Head::new(
        "m".into(),
        parse(json!({"model": "m", "input": "hi"})).echo,
    ));
    let mut out = Vec::new();
    stream.start(&mut out);
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut c = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        if let Some(name) = name {
            c["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [c]}), None)
    };
    for c in [
        call(0, Some("call_a"), Some("search"), ""),
        call(0, None, None, "{\"q\":"),
        call(0, None, None, "1}"),
        call(1, Some("call_b"), Some("weather"), "{}"),
        chunk(json!({}), Some("tool_calls")),
    ] {
        stream.on_chunk(&c, &mut out);
    }
    let output = stream.finish(&mut out);
    stream.completed(&output, &mut out);
    let events = events(&out);
    let added: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.added")
        .collect();
    assert_eq!(added.len(), 2);
    assert_eq!(added[0]["output_index"], 0);
    assert_eq!(added[1]["output_index"], 1);
    assert_eq!(
        added[0]["item"]["arguments"], "",
        "added with empty arguments"
    );
    assert_eq!(added[0]["item"]["call_id"], "call_a");
    for delta in events
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
    {
        let index = delta["output_index"].as_u64().unwrap() as usize;
        assert_eq!(
            delta["item_id"], added[index]["item"]["id"],
            "a delta names its item"
        );
    }
    // Item 0 is done before item 1 is added.
    let position = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred).unwrap();
    let done0 = position(&|e| e["type"] == "response.output_item.done" && e["output_index"] == 0);
    let added1 = position(&|e| e["type"] == "response.output_item.added" && e["output_index"] == 1);
    assert!(done0 < added1);
    let completed = &events.last().unwrap()["response"];
    assert_eq!(completed["output"][0]["arguments"], "{\"q\":1}");
    assert_eq!(completed["output"][0]["status"], "completed");
    assert_eq!(completed["output"][1]["name"], "weather");
    assert_eq!(
        completed["usage"]["total_tokens"], 0,
        "no usage sent: zeros, never null"
    );
}

#[test]
fn a_failure_after_the_start_is_an_error_event_then_response_failed() {
    let mut stream = EventStream::new(Head::new(
        "m".into(),
        parse(json!({"model": "m", "input": "hi"})).echo,
    ));
    let mut out = Vec::new();
    stream.start(&mut out);
    stream.on_chunk(&chunk(json!({"content": "partial"}), None), &mut out);
    let error = GatewayError::new(ErrorKind::UpstreamFailed, "the upstream closed the stream");
    stream.failed(&error, &mut out);
    let events = events(&out);
    let n = events.len();
    assert_eq!(events[n - 2]["type"], "error");
    assert_eq!(events[n - 2]["code"], "server_error");
    assert_eq!(
        events[n - 2]["error"]["message"],
        "the upstream closed the stream"
    );
    assert_eq!(events[n - 1]["type"], "response.failed");
    assert_eq!(events[n - 1]["response"]["status"], "failed");
    assert_eq!(events[n - 1]["response"]["error"]["code"], "server_error");
    assert_eq!(
        events[n - 1]["response"]["output"][0]["content"][0]["text"],
        "partial"
    );
}
