//! Chat answers as Responses (PROTOCOLS.md §10.2, §10.6 "Response"): the output items of a
//! `chat.completion`, the usage, and the response object around them. Pure.

use serde_json::{Map, Value, json};

use super::ids;
use crate::error::{ErrorKind, GatewayError};

/// What identifies a response before its answer is known.
#[derive(Debug, Clone)]
pub struct Head {
    pub id: String,
    pub created_at: u64,
    /// The model the client asked for.
    pub model: String,
    /// The request's echoed fields.
    pub echo: Map<String, Value>,
}

/// How an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Completed,
    /// Cut short by `max_output_tokens` (chat `length`) or a content filter.
    Incomplete(&'static str),
}

/// The output items and usage of a whole answer.
#[derive(Debug, Clone)]
pub struct Output {
    pub items: Vec<Value>,
    pub ending: Ending,
    pub usage: Value,
}

// === impl Head ===

impl Head {
    pub fn new(model: String, echo: Map<String, Value>) -> Self {
        Self {
            id: ids::new("resp"),
            created_at: crate::clock::unix_now(),
            model,
            echo,
        }
    }

    /// The response object with `status` (`in_progress`, `completed`, `incomplete`, `failed`).
    pub fn object(&self, status: &str, output: &[Value], usage: Option<&Value>) -> Value {
        let mut object = Map::with_capacity(self.echo.len() + 12);
        object.insert("id".into(), json!(self.id));
        object.insert("object".into(), json!("response"));
        object.insert("created_at".into(), json!(self.created_at));
        object.insert("status".into(), json!(status));
        if matches!(status, "completed" | "incomplete") {
            object.insert("completed_at".into(), json!(crate::clock::unix_now()));
        }
        object.insert("error".into(), Value::Null);
        object.insert("incomplete_details".into(), Value::Null);
        object.insert("model".into(), json!(self.model));
        object.insert("output".into(), Value::Array(output.to_vec()));
        object.insert("usage".into(), usage.cloned().unwrap_or(Value::Null));
        for (k, v) in &self.echo {
            object.insert(k.clone(), v.clone());
        }
        Value::Object(object)
    }

    /// The finished response object for `output`.
    pub fn finished(&self, output: &Output) -> Value {
        let mut object = match output.ending {
            Ending::Completed => self.object("completed", &output.items, Some(&output.usage)),
            Ending::Incomplete(_) => self.object("incomplete", &output.items, Some(&output.usage)),
        };
        if let Ending::Incomplete(reason) = output.ending {
            object["incomplete_details"] = json!({"reason": reason});
        }
        object
    }

    /// A response that failed after it started (a stream cut after the commit point).
    pub fn failed(&self, items: &[Value], error: &GatewayError) -> Value {
        let mut object = self.object("failed", items, None);
        object["error"] = json!({"code": response_error_code(error), "message": error.message()});
        object
    }
}

/// The output of a non-stream `chat.completion` (already in OpenAI's shape: every adapter
/// answers so): a message item for its text, a function call item per tool call, in order.
pub fn from_completion(body: &[u8]) -> Result<Output, GatewayError> {
    let completion: Value = serde_json::from_slice(body).map_err(|e| {
        GatewayError::new(
            ErrorKind::UpstreamFailed,
            format!("the upstream's answer is not JSON: {e}"),
        )
    })?;
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let ending = ending(choice["finish_reason"].as_str());
    let item_status = match ending {
        Ending::Completed => "completed",
        Ending::Incomplete(_) => "incomplete",
    };
    let mut items = Vec::new();
    let text = message["content"].as_str().filter(|t| !t.is_empty());
    let refusal = message["refusal"].as_str().filter(|t| !t.is_empty());
    if text.is_some() || refusal.is_some() {
        let mut content = Vec::new();
        if let Some(text) = text {
            content.push(output_text(text));
        }
        if let Some(refusal) = refusal {
            content.push(json!({"type": "refusal", "refusal": refusal}));
        }
        items.push(json!({
            "id": ids::new("msg"), "type": "message", "status": item_status,
            "role": "assistant", "content": content,
        }));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        items.push(function_call(
            call["id"].as_str(),
            call["function"]["name"].as_str().unwrap_or_default(),
            call["function"]["arguments"].as_str().unwrap_or_default(),
            "completed",
        ));
    }
    Ok(Output {
        items,
        ending,
        usage: usage(completion.get("usage")),
    })
}

/// How a chat `finish_reason` ends a response.
pub fn ending(finish_reason: Option<&str>) -> Ending {
    match finish_reason {
        Some("length") => Ending::Incomplete("max_output_tokens"),
        Some("content_filter") => Ending::Incomplete("content_filter"),
        _ => Ending::Completed,
    }
}

pub fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A function call item; an upstream that sent no call id gets one (clients key results by it).
pub fn function_call(call_id: Option<&str>, name: &str, arguments: &str, status: &str) -> Value {
    let call_id = match call_id.filter(|c| !c.is_empty()) {
        Some(c) => c.to_owned(),
        None => ids::new("call"),
    };
    json!({
        "id": ids::new("fc"), "type": "function_call", "status": status,
        "call_id": call_id, "name": name, "arguments": arguments,
    })
}

/// Chat usage as Responses usage: every field present (zeros where the upstream said nothing),
/// as the AI SDK's schema requires.
pub fn usage(chat: Option<&Value>) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let empty = Value::Null;
    let u = chat.unwrap_or(&empty);
    let (input, output) = (n(&u["prompt_tokens"]), n(&u["completion_tokens"]));
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": n(&u["prompt_tokens_details"]["cached_tokens"]),
            "cache_write_tokens": n(&u["prompt_tokens_details"]["cache_write_tokens"]),
        },
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": n(&u["completion_tokens_details"]["reasoning_tokens"]),
        },
        "total_tokens": u["total_tokens"].as_u64().unwrap_or(input + output),
    })
}

/// A `ResponseErrorCode` for a failure after the response started.
pub fn response_error_code(error: &GatewayError) -> &'static str {
    match error.kind() {
        ErrorKind::RateLimited | ErrorKind::UpstreamRateLimited => "rate_limit_exceeded",
        _ => "server_error",
    }
}
