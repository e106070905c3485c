//! A mock Anthropic Messages API on 127.0.0.1 (PROTOCOLS.md §12): `x-api-key` and
//! `anthropic-version` required as api.anthropic.com requires them, `message` answers with
//! Anthropic's usage (input excluding the cache), streams with an `event:` line on every frame,
//! a `ping`, no `[DONE]`, a `tool_use` block when tools are offered (Claude Code's `Bash` when it
//! is one of them) until the last turn carries its result, `{"type":"error"}` bodies
//! with Anthropic's statuses (529 overloaded), an in-stream `event: error`, and the free
//! `GET /v1/models?limit=1` a probe uses.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use crate::mock_server::{Body, Mock, Recorded, Script, Scripted, json_response, sse_response};

/// What every answer reports: 12 new input tokens, 100 read from the cache, 20 written to it.
pub const INPUT: u64 = 12;
pub const CACHE_READ: u64 = 100;
pub const CACHE_WRITE: u64 = 20;
pub const OUTPUT: u64 = 7;

#[derive(Debug, Clone)]
pub enum Behavior {
    Normal,
    /// This status with Anthropic's error body of this type.
    Status(u16, &'static str),
    /// A stream that sends `message_start`, then `event: error` of this type.
    ErrorEvent(&'static str),
    /// A stream cut (the connection dropped) after this many events.
    CutAfter(usize),
    /// The answer's text quotes the `x-api-key` it was sent (an echo server, a debug proxy).
    EchoKey,
}

pub struct State {
    name: String,
    script: Script<Behavior>,
}

pub type MockAnthropic = Mock<State>;

impl Mock<State> {
    pub async fn start(name: &str) -> Self {
        let state = State {
            name: name.to_owned(),
            script: Script::new(Behavior::Normal),
        };
        Mock::serve(state, handle).await
    }

    /// As configured for a `kind: anthropic` provider (no `/v1`, like api.anthropic.com).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Scripted for State {
    type Behavior = Behavior;

    fn script(&self) -> &Script<Behavior> {
        &self.script
    }
}

fn error(status: u16, kind: &str, message: &str) -> Response<Body> {
    json_response(
        StatusCode::from_u16(status).unwrap(),
        &json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock"}),
    )
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let headers = req.headers().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    if headers.get("x-api-key").is_none() {
        return Ok(error(
            401,
            "authentication_error",
            "x-api-key header is required",
        ));
    }
    if headers
        .get("anthropic-version")
        .is_none_or(|v| v != "2023-06-01")
    {
        return Ok(error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    if req.method() == http::Method::GET && path == "/v1/models" && query == "limit=1" {
        state.script.probed();
        return Ok(json_response(
            StatusCode::OK,
            &json!({"data": [{"type": "model", "id": "claude-up", "display_name": "Claude", "created_at": "2025-01-01T00:00:00Z"}],
                    "has_more": true, "first_id": "claude-up", "last_id": "claude-up"}),
        ));
    }
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let behavior = state.script.take(Recorded {
        path: path.clone(),
        headers,
        body: body.clone(),
    });
    if path != "/v1/messages" {
        return Ok(error(404, "not_found_error", "mock: unknown path"));
    }
    if let Behavior::Status(status, kind) = behavior {
        return Ok(error(status, kind, &format!("mock {kind}")));
    }
    for field in ["model", "max_tokens", "messages"] {
        if body.get(field).is_none() {
            return Ok(error(
                400,
                "invalid_request_error",
                &format!("{field}: Field required"),
            ));
        }
    }
    let (tools, (tool, input)) = (calls_tool(&body), tool_to_call(&body));
    let text = match behavior {
        Behavior::EchoKey => format!("Hello from {} with key {key}", state.name),
        _ => format!("Hello from {}", state.name),
    };
    let usage = json!({"input_tokens": INPUT, "cache_read_input_tokens": CACHE_READ,
                       "cache_creation_input_tokens": CACHE_WRITE, "output_tokens": OUTPUT});
    let stop = if tools { "tool_use" } else { "end_turn" };
    if body["stream"] != true {
        let mut content = vec![json!({"type": "text", "text": text})];
        if tools {
            content.push(json!({"type": "tool_use", "id": "toolu_mock1", "name": tool, "input": serde_json::from_str::<Value>(input).unwrap()}));
        }
        return Ok(json_response(
            StatusCode::OK,
            &json!({"id": "msg_mock1", "type": "message", "role": "assistant", "model": body["model"],
                    "content": content, "stop_reason": stop, "stop_sequence": null, "usage": usage}),
        ));
    }
    let mut events = vec![(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_mock1", "type": "message", "role": "assistant",
            "model": body["model"], "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": INPUT, "cache_read_input_tokens": CACHE_READ, "cache_creation_input_tokens": CACHE_WRITE, "output_tokens": 1}}}),
    )];
    if let Behavior::ErrorEvent(kind) = behavior {
        events.push((
            "error",
            json!({"type": "error", "error": {"type": kind, "message": format!("mock {kind}")}}),
        ));
        return Ok(sse(events));
    }
    let (first, second) = text.split_at(6);
    events.extend([
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        ("ping", json!({"type": "ping"})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": first}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": second}})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
    ]);
    if tools {
        let (head, tail) = input.split_at(input.len() / 2);
        events.extend([
            ("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_mock1", "name": tool, "input": {}}})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": head}})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": tail}})),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        ]);
    }
    events.extend([
        ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": OUTPUT}})),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    if let Behavior::CutAfter(n) = behavior {
        let mut frames: Vec<_> = sse_frames(events).into_iter().take(n).collect();
        frames.push(Err(std::io::Error::other("cut")));
        return Ok(sse_response(frames, "text/event-stream; charset=utf-8"));
    }
    Ok(sse(events))
}

/// Tools are offered and the last turn does not carry a tool's result: the model calls one.
fn calls_tool(body: &Value) -> bool {
    let answered = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"));
    body["tools"].as_array().is_some_and(|t| !t.is_empty()) && !answered
}

/// Claude Code's `Bash` (a command it runs and answers with) when offered, else `get_weather`.
fn tool_to_call(body: &Value) -> (&'static str, &'static str) {
    let offers_bash = body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["name"] == "Bash"));
    match offers_bash {
        true => (
            "Bash",
            r#"{"command":"echo switchyard-tool-ok","description":"Print a marker"}"#,
        ),
        false => ("get_weather", r#"{"city":"Paris"}"#),
    }
}

fn sse(events: Vec<(&str, Value)>) -> Response<Body> {
    sse_response(sse_frames(events), "text/event-stream; charset=utf-8")
}

fn sse_frames(events: Vec<(&str, Value)>) -> Vec<Result<Frame<Bytes>, std::io::Error>> {
    events
        .into_iter()
        .map(|(name, data)| {
            Ok(Frame::data(Bytes::from(format!(
                "event: {name}\ndata: {data}\n\n"
            ))))
        })
        .collect()
}
