//! A mock OpenAI-compatible upstream on 127.0.0.1 (PROTOCOLS.md §1–§4, §8). It records every
//! request it sees and can be told to fail: a status with an OpenAI error body, a hang, a
//! stream cut mid-way, an in-stream error event.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use crate::mock_server::{
    self, Body, Mock, Recorded, Script, Scripted, sse_response, sse_response_then_stall,
};

/// What the mock does with the next request (queued), or with every request (default).
#[derive(Debug, Clone)]
pub enum Behavior {
    Normal,
    /// Answer with this status and an OpenAI error body; headers added as given.
    Status(u16, Vec<(&'static str, &'static str)>),
    /// Accept the request and never answer.
    Hang,
    /// Stream: send this many chunks, then drop the connection without `[DONE]`.
    CutAfter(usize),
    /// Stream: send this many chunks, then an in-stream `data: {"error":…}` event.
    ErrorEventAfter(usize),
    /// Stream: send this many chunks, then nothing more, keeping the connection open.
    StallAfter(usize),
    /// Report no usage: none in answers, and `include_usage` ignored (older servers do this).
    WithoutUsage,
    /// Stream: the upstream's own verdict on the request as the first event (a content filter).
    VerdictFirst,
    /// A prompt-cache hit on a reasoning model: usage of 2,006 prompt tokens (1,920 of them
    /// cached) and 300 completion tokens (128 of them reasoning), in an answer or a stream's
    /// usage chunk.
    CacheHit,
}

/// The usage `Behavior::CacheHit` reports.
pub fn cache_hit_usage() -> Value {
    json!({"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
           "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
           "completion_tokens_details": {"reasoning_tokens": 128, "audio_tokens": 0}})
}

pub struct State {
    name: String,
    script: Script<Behavior>,
    probe_status: Mutex<u16>,
}

pub type MockOpenAi = Mock<State>;

impl Mock<State> {
    /// `name` appears in every reply so tests can tell which upstream served.
    pub async fn start(name: &str) -> Self {
        let state = State {
            name: name.to_owned(),
            script: Script::new(Behavior::Normal),
            probe_status: Mutex::new(200),
        };
        Mock::serve(state, handle).await
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Status the models list (the health probe) answers with.
    pub fn set_probe_status(&self, status: u16) {
        *self.state.probe_status.lock().unwrap() = status;
    }
}

impl Scripted for State {
    type Behavior = Behavior;

    fn script(&self) -> &Script<Behavior> {
        &self.script
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if req.method() == http::Method::GET {
        state.script.probed();
        let models = json!({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1686935002, "owned_by": "openai"}]});
        let status = StatusCode::from_u16(*state.probe_status.lock().unwrap()).unwrap();
        return Ok(json_response(status, &models));
    }
    let headers = req.headers().clone();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let behavior = state.script.take(Recorded {
        path: path.clone(),
        headers,
        body: body.clone(),
    });
    match behavior {
        Behavior::Status(code, extra) => {
            let status = StatusCode::from_u16(code).unwrap();
            let kind = match code {
                429 => "rate_limit_error",
                400..=499 => "invalid_request_error",
                _ => "server_error",
            };
            let err = json!({"error": {"message": format!("mock {} says {code}", state.name), "type": kind, "param": null, "code": format!("mock_{code}")}});
            let mut r = json_response(status, &err);
            for (k, v) in extra {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            return Ok(r);
        }
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        _ => {}
    }
    if path.ends_with("/embeddings") {
        return Ok(json_response(StatusCode::OK, &embeddings(&body)));
    }
    if path.ends_with("/moderations") {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"id": "modr-mock", "model": body["model"], "results": [{"flagged": false,
                "categories": {"violence": false}, "category_scores": {"violence": 0.0001},
                "category_applied_input_types": {"violence": ["text"]}}]}),
        ));
    }
    if path.ends_with("/images/generations") {
        let n = body["n"].as_u64().unwrap_or(1);
        let data: Vec<Value> = (0..n)
            .map(|_| json!({"b64_json": "iVBORw0KGgo="}))
            .collect();
        return Ok(json_response(
            StatusCode::OK,
            &json!({"created": 1713833628, "data": data,
                    "usage": {"input_tokens": 50, "output_tokens": 50, "total_tokens": 100}}),
        ));
    }
    if path.ends_with("/rerank") {
        // vLLM's shape: every result with its document, usage in tokens.
        let docs = body["documents"].as_array().cloned().unwrap_or_default();
        let results: Vec<Value> = (0..docs.len())
            .map(|i| json!({"index": i, "relevance_score": 1.0 / (i + 1) as f64, "document": {"text": docs[i]}}))
            .collect();
        return Ok(json_response(
            StatusCode::OK,
            &json!({"id": "rerank-mock", "model": body["model"], "usage": {"total_tokens": 42}, "results": results}),
        ));
    }
    if path.ends_with("/v1/completions") {
        return Ok(text_completion(&state.name, &body));
    }
    if body["stream"] == true {
        return Ok(stream_response(&state.name, &body, behavior));
    }
    let mut answer = completion(&state.name, &body);
    match behavior {
        Behavior::WithoutUsage => {
            answer.as_object_mut().unwrap().remove("usage");
        }
        Behavior::CacheHit => answer["usage"] = cache_hit_usage(),
        _ => {}
    }
    Ok(json_response(StatusCode::OK, &answer))
}

/// OpenAI answers carry a request id; the gateway must not forward or depend on it.
fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = mock_server::json_response(status, v);
    r.headers_mut()
        .insert("x-request-id", "req_mock".parse().unwrap());
    r
}

/// A request that offers tools gets a tool call, unless it already carries the tool's result:
/// then the answer is text (so an agent's tool loop ends, as with a real model).
fn has_tools(body: &Value) -> bool {
    let answered = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .is_some_and(|m| m["role"] == "tool");
    body["tools"].as_array().is_some_and(|t| !t.is_empty()) && !answered
}

/// The call the mock makes when offered tools, its arguments in stream fragments: Claude Code's
/// `Bash` (a command it runs, whose output the next request carries), else `get_weather`.
fn tool_to_call(body: &Value) -> (&'static str, &'static [&'static str]) {
    let offers_bash = body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == "Bash"));
    match offers_bash {
        true => (
            "Bash",
            &[
                "{\"command\":",
                "\"echo switchyard-tool-ok\",",
                "\"description\":\"Print a marker\"}",
            ],
        ),
        false => ("get_weather", &["{\"", "city", "\":\"", "Paris", "\"}"]),
    }
}

fn completion(name: &str, body: &Value) -> Value {
    let message = if has_tools(body) {
        let (tool, parts) = tool_to_call(body);
        json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
            {"id": "call_abc123", "type": "function", "function": {"name": tool, "arguments": parts.concat()}}]})
    } else {
        json!({"role": "assistant", "content": format!("Hello from {name}"), "refusal": null, "annotations": []})
    };
    json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
        "model": body["model"], "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": if has_tools(body) { "tool_calls" } else { "stop" }}],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default"
    })
}

/// The chunks of a stream (PROTOCOLS.md §1.4): text, or a tool call split across fragments.
pub fn stream_chunks(name: &str, body: &Value) -> Vec<String> {
    let model = body["model"].as_str().unwrap_or("gpt-4o-mini");
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": model,
            "system_fingerprint": "fp_44709d6fcb", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        .to_string()
    };
    let mut chunks = Vec::new();
    if has_tools(body) {
        let (name, parts) = tool_to_call(body);
        chunks.push(chunk(json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_4XzlGBLtUe9dy3GVNV4jhq7h", "type": "function", "function": {"name": name, "arguments": ""}}], "refusal": null}), Value::Null));
        for part in parts {
            chunks.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                Value::Null,
            ));
        }
        chunks.push(chunk(json!({}), json!("tool_calls")));
    } else {
        chunks.push(chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
        for word in ["Hello", " from", " ", name] {
            chunks.push(chunk(json!({"content": word}), Value::Null));
        }
        chunks.push(chunk(json!({}), json!("stop")));
    }
    if body["stream_options"]["include_usage"] == true {
        chunks.push(json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": model,
            "choices": [], "usage": {"prompt_tokens": 44, "completion_tokens": 16, "total_tokens": 60, "completion_tokens_details": {"reasoning_tokens": 0}}}).to_string());
    }
    chunks
}

fn stream_response(name: &str, body: &Value, behavior: Behavior) -> Response<Body> {
    let mut chunks = stream_chunks(name, body);
    match behavior {
        Behavior::WithoutUsage => chunks.retain(|c| !c.contains("\"usage\"")),
        Behavior::CacheHit => {
            for c in chunks.iter_mut().filter(|c| c.contains("\"usage\"")) {
                let mut v: Value = serde_json::from_str(c).unwrap();
                v["usage"] = cache_hit_usage();
                *c = v.to_string();
            }
        }
        _ => {}
    }
    let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = Vec::new();
    let data = |s: &str| Ok(Frame::data(Bytes::from(format!("data: {s}\n\n"))));
    match behavior {
        Behavior::CutAfter(n) => {
            frames.extend(chunks.iter().take(n).map(|c| data(c)));
            frames.push(Err(std::io::Error::other("cut")));
        }
        Behavior::ErrorEventAfter(n) => {
            frames.extend(chunks.iter().take(n).map(|c| data(c)));
            frames.push(data(r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#));
        }
        Behavior::VerdictFirst => {
            frames.push(data(r#"{"error":{"message":"The response was filtered due to the prompt triggering content management policy.","type":"invalid_request_error","param":"prompt","code":"content_filter"}}"#));
        }
        Behavior::StallAfter(n) => {
            frames.extend(chunks.iter().take(n).map(|c| data(c)));
            return sse_response_then_stall(frames, "text/event-stream");
        }
        _ => {
            frames.extend(chunks.iter().map(|c| data(c)));
            frames.push(data("[DONE]"));
        }
    }
    sse_response(frames, "text/event-stream")
}

/// A legacy `text_completion` (PROTOCOLS.md §11.2–§11.3): the last text and the finish reason
/// in one chunk, `"usage": null` on the others, the usage chunk only if asked for.
fn text_completion(name: &str, body: &Value) -> Response<Body> {
    let model = body["model"].clone();
    let chunk = |text: &str, finish: Value, usage: Value| {
        json!({"id": "cmpl-D8ZFN477TMm6AoQohx2jSTOJMh60M", "object": "text_completion", "created": 1770934485,
               "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}], "model": model, "usage": usage})
    };
    let usage = json!({"prompt_tokens": 14, "completion_tokens": 16, "total_tokens": 30});
    if body["stream"] != true {
        return json_response(
            StatusCode::OK,
            &chunk(&format!(" Hello from {name}"), json!("length"), usage),
        );
    }
    let pieces = [" Hello", " from", " ", name];
    let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = Vec::new();
    let data = |v: Value| Ok(Frame::data(Bytes::from(format!("data: {v}\n\n"))));
    for (i, piece) in pieces.iter().enumerate() {
        let finish = if i + 1 == pieces.len() {
            json!("length")
        } else {
            Value::Null
        };
        frames.push(data(chunk(piece, finish, Value::Null)));
    }
    if body["stream_options"]["include_usage"] == true {
        frames.push(data(
            json!({"id": "cmpl-D8ZFN477TMm6AoQohx2jSTOJMh60M", "object": "text_completion",
            "created": 1770934485, "model": model, "usage": usage, "choices": []}),
        ));
    }
    frames.push(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))));
    sse_response(frames, "text/event-stream")
}

fn embeddings(body: &Value) -> Value {
    let dims = body["dimensions"].as_u64().unwrap_or(3) as usize;
    let inputs = match &body["input"] {
        Value::Array(items) if items.iter().all(Value::is_number) => 1,
        Value::Array(items) => items.len(),
        _ => 1,
    };
    let vector: Vec<f32> = (0..dims)
        .map(|i| [0.0023064255f32, -0.009327292, 1.0][i % 3])
        .collect();
    let data: Vec<Value> = (0..inputs)
        .map(|index| {
            let embedding = match body["encoding_format"].as_str() {
                Some("base64") => json!(
                    base64::engine::general_purpose::STANDARD.encode(
                        vector
                            .iter()
                            .flat_map(|f| f.to_le_bytes())
                            .collect::<Vec<_>>()
                    )
                ),
                _ => json!(vector),
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 8, "total_tokens": 8}})
}
