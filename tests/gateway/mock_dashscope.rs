//! A mock DashScope *native* upstream on 127.0.0.1 (PROTOCOLS.md §5, §8): `id:`/`event:`/
//! `:HTTP_STATUS/`/`data:` framing, no `[DONE]`, usage on every event, incremental or cumulative
//! output, tool-call fragments the DashScope way, `{code,message,request_id}` errors, in-stream
//! `event:error` under HTTP 200, and text embeddings with the 10-texts-per-call limit.
//! It answers the same words and token counts as `mock_openai` so drop-in clients can run
//! unchanged against either.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use crate::mock_server::{Body, Mock, Recorded, Script, Scripted, json_response, sse_response};

#[derive(Debug, Clone)]
pub enum Behavior {
    Normal,
    /// Ignore `incremental_output` and repeat the whole text in every event.
    Cumulative,
    /// Like Normal, but events are not separated by blank lines.
    NoBlankLines,
    /// A non-200 JSON error body with this native code.
    Status(u16, &'static str),
    /// HTTP 200 with one `event:error` frame carrying `:HTTP_STATUS/<status>`.
    ErrorEvent(u16, &'static str),
    /// Stream: this many events, then the connection drops.
    CutAfter(usize),
}

pub struct State {
    name: String,
    script: Script<Behavior>,
}

pub type MockDashScope = Mock<State>;

impl Mock<State> {
    pub async fn start(name: &str) -> Self {
        let state = State {
            name: name.to_owned(),
            script: Script::new(Behavior::Normal),
        };
        Mock::serve(state, handle).await
    }

    /// The native `/api/v1` root, as configured for a `kind: dashscope` provider.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
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
    if req.method() == http::Method::GET && path == "/compatible-mode/v1/models" {
        state.script.probed();
        return Ok(json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": [{"id": "qwen-plus", "object": "model", "created": 1, "owned_by": "system"}]}),
        ));
    }
    let headers = req.headers().clone();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "))
    {
        return Ok(error(
            StatusCode::UNAUTHORIZED,
            "InvalidApiKey",
            "Invalid API-key provided.",
        ));
    }
    let behavior = state.script.take(Recorded {
        path: path.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });
    if let Behavior::Status(code, native) = behavior {
        return Ok(error(
            StatusCode::from_u16(code).unwrap(),
            native,
            &format!("mock {native}"),
        ));
    }
    if path == "/api/v1/services/embeddings/text-embedding/text-embedding" {
        return Ok(embeddings(&body));
    }
    if path == "/api/v1/services/rerank/text-rerank/text-rerank" {
        return Ok(rerank(&body));
    }
    if path != "/api/v1/services/aigc/text-generation/generation" {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "mock: unknown path",
        ));
    }
    let stream = headers
        .get("x-dashscope-sse")
        .is_some_and(|v| v == "enable")
        || headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
    if let Behavior::ErrorEvent(status, code) = behavior {
        if !stream {
            return Ok(error(
                StatusCode::from_u16(status).unwrap(),
                code,
                &format!("mock {code}"),
            ));
        }
        let frame = format!(
            "id:1\nevent:error\n:HTTP_STATUS/{status}\ndata:{}\n\n",
            json!({"code": code, "message": format!("mock {code}"), "request_id": "rid-err"})
        );
        return Ok(sse(vec![Ok(Frame::data(Bytes::from(frame)))]));
    }
    if body["parameters"]["result_format"] == "text" {
        return Ok(text_mode(&state.name, stream));
    }
    let tools = body["parameters"]["tools"]
        .as_array()
        .is_some_and(|t| !t.is_empty());
    if !stream {
        let message = if tools {
            json!({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}, "index": 0, "id": "call_ds_1", "type": "function"}]})
        } else {
            json!({"role": "assistant", "content": format!("Hello from {}", state.name)})
        };
        let answer = json!({"output": {"choices": [{"finish_reason": "stop", "message": message}]},
            "usage": {"total_tokens": 29, "output_tokens": 10, "input_tokens": 19}, "request_id": "rid-1"});
        return Ok(json_response(StatusCode::OK, &answer));
    }
    let incremental = body["parameters"]["incremental_output"] == true
        && !matches!(behavior, Behavior::Cumulative);
    let separator = if matches!(behavior, Behavior::NoBlankLines) {
        "\n"
    } else {
        "\n\n"
    };
    let events = stream_events(&state.name, tools, incremental);
    let total = events.len();
    let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = Vec::new();
    for (i, data) in events.into_iter().enumerate() {
        if matches!(behavior, Behavior::CutAfter(n) if n == i) {
            frames.push(Err(std::io::Error::other("cut")));
            break;
        }
        let output_tokens = if i + 1 == total { 16 } else { i + 1 };
        let mut data = data;
        data["usage"] = json!({"total_tokens": 44 + output_tokens, "input_tokens": 44, "output_tokens": output_tokens});
        data["request_id"] = json!("rid-stream");
        frames.push(Ok(Frame::data(Bytes::from(format!(
            "id:{}\nevent:result\n:HTTP_STATUS/200\ndata:{data}{separator}",
            i + 1
        )))));
    }
    Ok(sse(frames))
}

/// `result_format: text` (PROTOCOLS.md §11.4): `output.text` and `output.finish_reason`, the
/// string "null" until the last event.
fn text_mode(name: &str, stream: bool) -> Response<Body> {
    let usage =
        |out: u64| json!({"total_tokens": 16 + out, "output_tokens": out, "input_tokens": 16});
    if !stream {
        let answer = json!({"output": {"finish_reason": "stop", "text": format!("Hello from {name}")},
            "usage": usage(4), "request_id": "rid-text"});
        return json_response(StatusCode::OK, &answer);
    }
    let mut pieces: Vec<(String, &str)> = ["Hello", " from", " ", name]
        .iter()
        .map(|p| (p.to_string(), "null"))
        .collect();
    pieces.push((String::new(), "stop"));
    let frames = pieces
        .into_iter()
        .enumerate()
        .map(|(i, (text, finish))| {
            let data = json!({"output": {"finish_reason": finish, "text": text},
                "usage": usage(i as u64 + 1), "request_id": "rid-text"});
            Ok(Frame::data(Bytes::from(format!(
                "id:{}\nevent:result\n:HTTP_STATUS/200\ndata:{data}\n\n",
                i + 1
            ))))
        })
        .collect();
    sse(frames)
}

/// The `output` of each event: text in four pieces (or cumulative), or a tool call in fragments.
fn stream_events(name: &str, tools: bool, incremental: bool) -> Vec<Value> {
    let event = |message: Value, finish: &str| json!({"output": {"choices": [{"message": message, "index": 0, "finish_reason": finish}]}});
    if tools {
        let parts = ["{\"", "city", "\":\"", "Paris", "\"}"];
        return parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let call = match i {
                    0 => json!({"index": 0, "id": "call_ds_1", "type": "function", "function": {"name": "get_weather", "arguments": part}}),
                    _ => json!({"index": 0, "id": "", "type": "function", "function": {"arguments": part}}),
                };
                let finish = if i + 1 == parts.len() { "tool_calls" } else { "null" };
                event(json!({"content": "", "tool_calls": [call], "role": "assistant"}), finish)
            })
            .collect();
    }
    let pieces = [
        "Hello".to_owned(),
        " from".to_owned(),
        " ".to_owned(),
        name.to_owned(),
    ];
    let mut so_far = String::new();
    let mut events: Vec<Value> = pieces
        .iter()
        .map(|p| {
            so_far.push_str(p);
            let text = if incremental {
                p.clone()
            } else {
                so_far.clone()
            };
            event(json!({"content": text, "role": "assistant"}), "null")
        })
        .collect();
    let last = if incremental { String::new() } else { so_far };
    events.push(event(json!({"content": last, "role": "assistant"}), "stop"));
    events
}

/// Native text-rerank (PROTOCOLS.md §13.5.4): documents scored in reverse order, best first.
fn rerank(body: &Value) -> Response<Body> {
    let docs = body["input"]["documents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let top_n = body["parameters"]["top_n"]
        .as_u64()
        .map_or(docs.len(), |n| n as usize);
    let with_docs = body["parameters"]["return_documents"] == true;
    let results: Vec<Value> = (0..docs.len())
        .rev()
        .take(top_n)
        .map(|i| {
            let mut r =
                json!({"index": i, "relevance_score": 0.9 - 0.1 * (docs.len() - 1 - i) as f64});
            if with_docs {
                r["document"] = json!({"text": docs[i]});
            }
            r
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"output": {"results": results}, "usage": {"total_tokens": 79}, "request_id": "ds-rerank-1"}),
    )
}

fn embeddings(body: &Value) -> Response<Body> {
    let texts = body["input"]["texts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let model = body["model"].as_str().unwrap_or("");
    if texts.len() > 10 && !model.contains("v2") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "batch size is invalid, it should not be larger than 10",
        );
    }
    let dims = body["parameters"]["dimension"].as_u64().unwrap_or(3) as usize;
    let vector: Vec<f32> = (0..dims)
        .map(|i| [0.0023064255f32, -0.009327292, 1.0][i % 3])
        .collect();
    // Answer out of order, as nothing promises the order.
    let embeddings: Vec<Value> = (0..texts.len())
        .rev()
        .map(|i| json!({"text_index": i, "embedding": vector}))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"output": {"embeddings": embeddings}, "usage": {"total_tokens": texts.len() * 2}, "request_id": "rid-emb"}),
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"code": code, "message": message, "request_id": "rid-error"}),
    )
}

fn sse(frames: Vec<Result<Frame<Bytes>, std::io::Error>>) -> Response<Body> {
    sse_response(frames, "text/event-stream;charset=UTF-8")
}
